"""One batch's masks at every margin of a grid, from one pass over its guide scores.

The Inspect page sends these with its heatmaps so the maps can follow a slider in the browser: the
browser only picks which precomputed mask to show. The rule is :mod:`core.method.masking`'s, applied
once: :func:`guided_mask` with the rule switched off (margin :data:`RULE_OFF`, no floor) gives the
guide scores and the cells masked whatever the margin (self-similarities, texts identical to the
row's anchor or positive); :func:`thresholds` gives every row's threshold at every margin ([B, M],
floor included); a cell is masked at margin m when its score is strictly above the row's threshold
at m. :func:`effective_scores` folds the always-masked cells (+inf) and the cells that are no
candidate (-inf) into the scores, so the what-if sweep (core.analysis.whatif) counts the same cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch

from core.analysis.inspect import Batch, Embedded, mask_batch
from core.method.margin import MARGIN_RANGE
from core.method.masking import MarginSettings, thresholds

# Cosines lie in [-1, 1], so with margin -3 no score passes t_i = g_i + 3: the mask is then only
# the cells guided_mask masks whatever the margin (identical texts, self-similarities).
RULE_OFF = -3.0


def effective_scores(scores: torch.Tensor, always: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Scores as a threshold sees them: +inf where masked whatever the margin, -inf where no candidate."""
    return torch.where(candidates & always, math.inf, torch.where(candidates, scores, -math.inf))


def grid_masks(batch: Batch, guide: Embedded, settings: MarginSettings,
               margins: Sequence[float]) -> dict[str, torch.Tensor]:
    """Per block, bool [M, B, C]: the masked candidates (``BatchMask.masked_candidates``) at each of
    ``margins`` under ``settings``' strategy, blocks and floor (its own margin is not used)."""
    base = mask_batch(batch, guide, replace(settings, margin_strategy="absolute", margin=RULE_OFF,
                                            positive_floor=None))
    grid = torch.tensor([float(m) for m in margins], dtype=torch.float32)
    t = thresholds(base.positive_scores[:, None], replace(settings, margin=grid)).T  # [M, B]
    return {block: effective_scores(base.guide_scores[block], base.masked[block], base.candidates[block])[None]
            > t[..., None] for block in base.blocks}


def slider_margins(low: float = MARGIN_RANGE[0], high: float = MARGIN_RANGE[1],
                   step: float = MARGIN_RANGE[2]) -> tuple[float, ...]:
    """The margins a slider from ``low`` to ``high`` by ``step`` offers (default: the pages' margin slider)."""
    return tuple(round(low + k * step, 6) for k in range(round((high - low) / step) + 1))
