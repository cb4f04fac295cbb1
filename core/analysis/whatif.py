"""Margin what-if: how much of each block the guide would mask at every margin, and how right it is.

Each batch is embedded by the guide once (cache lookups). Every margin of the sweep, for both
strategies (and with and without a positive floor), is then counted from the same guide scores:
per row, the candidate scores are sorted once and :func:`torch.searchsorted` counts how many lie
strictly above each threshold of the [rows, margins] grid that :func:`core.method.masking.thresholds`
gives, the rule training applies. That is O(C log C + M log C) per row instead of a [rows,
candidates, margins] comparison. Cells :func:`guided_mask` masks whatever the margin (candidates
whose text equals the row's anchor or positive) count as masked at every margin, and cells that
are no candidate (target, self-similarity) never. With ground truth (:mod:`core.method.groundtruth`)
the same counts are split by relation, giving precision (false negatives masked / masked), the two
cost shares beside it (related hard negatives, unrelated) and recall (false negatives masked /
present) against the margin.
Fractions pool all batches: masked cells / candidate cells.

A larger margin lowers every threshold, so each masked count is non-decreasing in the margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from core.method.groundtruth import FALSE_NEGATIVE, RELATED, RELATIONS, UNRELATED, relations, stack_truths
from core.analysis.inspect import Batch, Embed, embed_batch, one_thread
from core.analysis.margin_grid import RULE_OFF, effective_scores
from core.method.masking import STRATEGIES, MarginSettings, guided_mask, thresholds

ALL = "all"
Progress = Callable[[int, int], None]


def margin_sweep(
    batches: list[Batch],
    guide: Embed,
    margins: Sequence[float],
    contrast_anchors: bool = True,
    contrast_positives: bool = True,
    *,
    positive_floor: float | None = None,
    by_task: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Masked fraction, precision and recall per (strategy, floor, task, margin, block).

    Rows: every strategy x margin x block (a-p, a-a, p-p, a-n and ``all`` pooled) for
    ``task == "all"`` and the floor off (``positive_floor`` NaN). With ``positive_floor`` the same
    rows again at that floor; with ``by_task`` (and batches that know their rows' tasks) the same
    rows per task, by each row's task.

    Columns: strategy, margin, positive_floor, task, block, masked, candidates, masked_fraction,
    ``masked_<relation>`` (masked candidates of each ground-truth relation), false_negatives (present),
    precision (false negatives masked / masked), share_related and share_unrelated (the costs: related
    hard negatives, unrelated), recall (false negatives masked / present; NaN where none is present).
    Without ground truth the relation columns are NaN and ``table.attrs["ground_truth"]`` is False:
    say "no ground truth", never show zeros.

    ``progress(done, total)`` is called after each batch (e.g. for a progress bar).
    """
    margins = [float(m) for m in margins]
    grid = torch.tensor(margins, dtype=torch.float32)
    floors = [None] + ([float(positive_floor)] if positive_floor is not None else [])
    combos = [(s, f) for s in STRATEGIES for f in floors]
    truth = bool(batches) and all(b.truth is not None for b in batches)
    settings = MarginSettings("absolute", RULE_OFF, contrast_anchors, contrast_positives)
    embedded = []
    for done, batch in enumerate(batches, start=1):
        embedded.append(embed_batch(batch, guide))  # encodes (if at all) at full speed
        if progress is not None:
            progress(done, len(batches))
    counts: dict[tuple[str, str], torch.Tensor] = {}  # (task, block) -> masked [L, K]
    totals: dict[tuple[str, str], torch.Tensor] = {}  # (task, block) -> candidates [L]
    shapes: dict[tuple[int, int], list[int]] = {}  # batches of one size are masked together
    for k, batch in enumerate(batches):
        shapes.setdefault((len(batch), len(batch.negatives)), []).append(k)
    with one_thread():
        for group in shapes.values():
            part = [batches[k] for k in group]
            emb = [embedded[k] for k in group]
            base = guided_mask(  # every batch of the group at once: [N, B, C] blocks
                torch.stack([e.anchor for e in emb]), torch.stack([e.positive for e in emb]),
                [torch.stack([e.negatives[c] for e in emb]) for c in range(len(part[0].negatives))], settings,
                anchor_texts=[b.anchors for b in part], positive_texts=[b.positives for b in part],
                negative_texts=[[b.negatives[c] for b in part] for c in range(len(part[0].negatives))])
            g = base.positive_scores[..., None]
            # [N * B, K]: every (strategy, floor) combination's thresholds over the margins, side by side
            t = torch.cat([thresholds(g, MarginSettings(s, grid, positive_floor=f))  # type: ignore[arg-type]
                           for s, f in combos], dim=-1).flatten(0, 1)
            rel = relations(stack_truths([b.truth for b in part]), base.blocks) if truth else None
            tasks = [x for b in part for x in (b.tasks if by_task and b.tasks is not None else [ALL] * len(b))]
            names, row_task = np.unique(np.asarray(tasks, dtype=object), return_inverse=True)
            row_task = torch.from_numpy(row_task.astype(np.int64))
            for block in base.blocks:
                masked, cand = _block_counts(
                    effective_scores(base.guide_scores[block], base.masked[block], base.candidates[block]).flatten(0, 1),
                    None if rel is None else rel[block].flatten(0, 1), t)
                # per task: one index_add over the rows (not a boolean copy per task)
                by_row = torch.zeros(len(names), *masked[:, 0].shape, dtype=torch.int64)
                by_row.index_add_(0, row_task, masked.transpose(0, 1).to(torch.int64))
                cand_by = torch.zeros(len(names), cand.shape[0], dtype=torch.int64).index_add_(0, row_task, cand.T)
                per_task = [(str(n), m, c) for n, m, c in zip(names, by_row, cand_by) if n != ALL]
                for task, m, c in [(ALL, by_row.sum(0), cand_by.sum(0)), *per_task]:
                    key = (task, block)
                    counts[key] = counts.get(key, 0) + m
                    totals[key] = totals.get(key, 0) + c
    table = _table(counts, totals, combos, margins, truth)
    table.attrs["ground_truth"] = truth
    return table


def _block_counts(effective: torch.Tensor, codes: torch.Tensor | None,
                  t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, masked candidates at every threshold and candidates, by relation.

    ``effective`` [rows, C] (see :func:`core.analysis.margin_grid.effective_scores`), relation ``codes`` [rows, C] or None,
    thresholds ``t`` [rows, K]. Returns masked [L, rows, K] and candidates [L, rows], L = the
    relations then ``all`` (only ``all`` without ground truth). One sort and one searchsorted: a
    cell counts at threshold t when its score is strictly above t.
    """
    layers = [] if codes is None else [codes == r for r in range(len(RELATIONS))]
    layers.append(torch.ones_like(effective, dtype=torch.bool))
    stacked = torch.stack([effective.masked_fill(~keep, -math.inf) for keep in layers])  # [L, rows, C]
    ordered = stacked.sort(dim=-1).values
    below = torch.searchsorted(ordered, t.expand(len(layers), *t.shape).contiguous(), right=True, out_int32=True)
    return ordered.shape[-1] - below, (stacked > -math.inf).sum(dim=-1)


def _table(counts: dict, totals: dict, combos: list, margins: list[float], truth: bool) -> pd.DataFrame:
    """The long table of :func:`margin_sweep` from the pooled counts, built as one frame (column
    arrays joined once: many small frames with text columns cost seconds)."""
    n = len(margins)
    columns: dict[str, list] = {}

    def add(**values) -> None:
        for key, value in values.items():
            columns.setdefault(key, []).append(np.broadcast_to(np.asarray(value), (n,)))

    for task in dict.fromkeys(task for task, _ in counts):
        blocks = [b for tk, b in counts if tk == task]
        pooled = (sum(counts[(task, b)] for b in blocks), sum(totals[(task, b)] for b in blocks))
        for block, (masked, total) in [*((b, (counts[(task, b)], totals[(task, b)])) for b in blocks),
                                       (ALL, pooled)]:
            for k, (strategy, floor) in enumerate(combos):
                m = masked[:, k * n:(k + 1) * n].numpy().astype(np.int64)  # [L, M]
                cand, present = int(total[-1]), int(total[FALSE_NEGATIVE]) if truth else 0
                add(strategy=strategy, margin=margins, positive_floor=math.nan if floor is None else floor,
                    task=task, block=block, masked=m[-1], candidates=cand, masked_fraction=m[-1] / max(cand, 1))
                nan = np.full(n, np.nan)
                add(**{f"masked_{name}": m[r] if truth else nan for r, name in enumerate(RELATIONS)})
                with np.errstate(invalid="ignore", divide="ignore"):
                    masked_any = np.where(m[-1] > 0, m[-1], np.nan)
                    add(false_negatives=present if truth else np.nan,
                        precision=m[FALSE_NEGATIVE] / masked_any if truth else nan,
                        share_related=sum(m[r] for r in RELATED) / masked_any if truth else nan,
                        share_unrelated=m[UNRELATED] / masked_any if truth else nan,
                        recall=m[FALSE_NEGATIVE] / present if truth and present else nan)
    return pd.DataFrame({key: np.concatenate(parts) for key, parts in columns.items()})
