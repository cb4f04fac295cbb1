"""Margin what-if: how much of each block the guide would mask at every margin, before training.

Each batch is embedded by the guide once; every margin of the sweep, for both strategies, is then
one broadcast comparison of the guide's scores against a [rows, margins] grid of thresholds
computed by :func:`core.masking.thresholds`, the rule training applies (on one torch thread, see
:func:`core.inspect.one_thread`). Cells :func:`guided_mask`
masks whatever the margin (candidates whose text equals the row's anchor or positive) are masked
at every margin here too. Fractions pool all batches: masked cells / candidate cells per block.

A larger margin lowers every threshold, so each curve is non-decreasing in the margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from core.inspect import Batch, Embed, embed_batch, mask_batch, one_thread
from core.masking import STRATEGIES, MarginSettings, thresholds

ALL = "all"
# Cosines lie in [-1, 1], so with margin -3 no score passes t_i = g_i + 3: the mask is then only
# the cells guided_mask masks whatever the margin (identical texts, self-similarities).
_RULE_OFF = -3.0


def margin_sweep(
    batches: list[Batch],
    guide: Embed,
    margins: Sequence[float],
    contrast_anchors: bool = True,
    contrast_positives: bool = True,
) -> pd.DataFrame:
    """Masked fraction per (strategy, margin, block), plus ``all`` blocks pooled.

    Columns: strategy, margin, block, masked, candidates, masked_fraction.
    """
    margins = [float(m) for m in margins]
    grid = torch.tensor(margins, dtype=torch.float32)
    masked: dict[tuple[str, str], torch.Tensor] = {}
    totals: dict[str, int] = {}
    embedded = [embed_batch(batch, guide) for batch in batches]  # encodes (if at all) at full speed
    with one_thread():
        for batch, guide_emb in zip(batches, embedded):
            base = mask_batch(
                batch, guide_emb, MarginSettings("absolute", _RULE_OFF, contrast_anchors, contrast_positives)
            )
            g = base.positive_scores[:, None]
            for strategy in STRATEGIES:
                # thresholds() broadcasts: [B, 1] positive scores against [M] margins -> [B, M]
                t = thresholds(g, MarginSettings(strategy, grid))  # type: ignore[arg-type]
                for block in base.blocks:
                    hit = (base.guide_scores[block][:, :, None] > t[:, None, :]) | base.masked[block][:, :, None]
                    hit &= base.candidates[block][:, :, None]
                    key = (strategy, block)
                    masked[key] = masked.get(key, 0) + hit.sum(dim=(0, 1))
            for block in base.blocks:
                totals[block] = totals.get(block, 0) + int(base.candidates[block].sum())

    records = []
    for strategy in STRATEGIES:
        blocks = [b for (s, b) in masked if s == strategy]
        pooled = sum(masked[(strategy, b)] for b in blocks)
        per_block = [(b, masked[(strategy, b)], totals[b]) for b in blocks]
        for block, counts, total in [*per_block, (ALL, pooled, sum(totals.values()))]:
            for m, n in zip(margins, counts.tolist()):
                records.append({"strategy": strategy, "margin": m, "block": block, "masked": int(n),
                                "candidates": total, "masked_fraction": n / max(total, 1)})
    return pd.DataFrame.from_records(records)
