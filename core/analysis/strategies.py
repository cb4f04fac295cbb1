"""What each false-negative strategy does to one batch: the training arms as masks over the same cells.

A strategy is a training arm (:data:`core.training.config.LOSSES`) and, for the guided arms, its guide.
Each arm's margin settings come from :meth:`core.training.config.TrainConfig.arm_masking`, and every
mask from :func:`core.analysis.inspect.mask_batch` (the training rule), so the pages show what training
does:

- ``gist``: the frozen guide's embeddings at the shared margin settings;
- ``self-judge``: the student's own embeddings (Qwen3-Embedding: mask candidate j of row i when
  s_ij > s(i, positive_i) + judge_margin), the guide rule with the absolute margin -judge_margin;
- ``mnrl``: masks nothing: every false negative stays a negative (the baseline);
- ``mnrl-hard``: masks nothing and weights: the library's MNRL hardness adds strength x s_ij (the
  student's detached cosine) to a negative's logit, i.e. multiplies its term of the softmax's
  denominator by exp(strength x s_ij) (:func:`core.method.loss.hardness_penalty`);
- ``gist-hard``: gist's mask, then the same weights on what it keeps.

Two verdicts compare as two guides do (:func:`core.analysis.guide_compare.compare_masks`); the
weighting arms add their weights' spread to the summary.

    a = verdict(Strategy("gist", "bundled:minilm-l6"), batch, settings, guide=guide_emb)
    b = verdict(Strategy("self-judge"), batch, settings, student=student_emb)
    compare_strategies(batch, a, b, settings).summary
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from core.analysis.guide_compare import GuideComparison, compare_masks
from core.analysis.inspect import Batch, Embedded, mask_batch
from core.errors import GistlabError
from core.method.groundtruth import FALSE_NEGATIVE
from core.method.loss import hardness_penalty
from core.method.margin import JUDGE_MARGIN
from core.method.masking import BatchMask, MarginSettings, guided_mask
from core.training.config import TrainConfig

KINDS = ("gist", "self-judge", "mnrl", "mnrl-hard", "gist-hard")
"""The arms a page can show (gist-st masks as gist does: it compares implementations, not strategies)."""
LABELS = {
    "gist": "GIST: a guide masks",
    "self-judge": "Self-judge: the student masks",
    "mnrl": "MNRL: masks nothing",
    "mnrl-hard": "MNRL + hardness: weights, does not mask",
    "gist-hard": "GIST + hardness: a guide masks, then weights",
}
GUIDED = ("gist", "gist-hard")
STUDENT_JUDGED = ("self-judge", "mnrl-hard", "gist-hard")  # the student's cosines decide or weigh
WEIGHTING = ("mnrl-hard", "gist-hard")
WEIGHT_COLUMNS = ("weighted", "weight_median", "weight_max", "weight_median_false_negatives")


@dataclass(frozen=True)
class Strategy:
    """A training arm (``loss``), its guide spec for gist and gist-hard, and the self-judge's margin."""

    loss: str = "gist"
    guide: str | None = None
    judge_margin: float = JUDGE_MARGIN

    def __post_init__(self) -> None:
        if self.loss not in KINDS:
            raise GistlabError(f"Unknown strategy {self.loss!r}: choose one of {', '.join(KINDS)}.")
        if self.loss in GUIDED and not self.guide:
            raise GistlabError(f"The {self.loss} strategy needs a guide: name one, e.g. bundled:minilm-l6.")

    @property
    def name(self) -> str:
        """How tables name it: gist by its guide (as two guides compare), the others by their arm."""
        return {"gist": str(self.guide), "self-judge": "self-judge", "mnrl": "MNRL",
                "mnrl-hard": "MNRL + hardness", "gist-hard": f"{self.guide} + hardness"}[self.loss]

    def config(self, settings: MarginSettings) -> TrainConfig:
        """The training config of this arm at the shared ``settings`` (its weighting options at their defaults)."""
        return TrainConfig(loss=self.loss, guide=self.guide or TrainConfig.guide, masking=settings,
                           judge_margin=self.judge_margin)

    def masking(self, settings: MarginSettings) -> MarginSettings | None:
        """The settings this arm masks with at the shared ``settings`` (training's: None for the MNRL arms)."""
        return self.config(settings).arm_masking()


@dataclass(frozen=True)
class Verdict:
    """One strategy's verdict on a batch: its mask (nothing masked for mnrl and mnrl-hard), and for the
    weighting arms the factor each kept candidate's softmax term is multiplied by (float [B, C] per
    weighted block, NaN on masked cells and non-candidates; None for the arms that do not weight)."""

    strategy: Strategy
    mask: BatchMask
    weights: dict[str, torch.Tensor] | None = None


def unmasked(batch: Batch, settings: MarginSettings) -> BatchMask:
    """MNRL's mask of ``batch``: the cells of ``settings``' blocks, none masked; no judge, so no scores (NaN)."""
    blank = torch.zeros(len(batch), 1)
    cells = guided_mask(blank, blank, [blank] * len(batch.negatives), settings)
    nan = lambda t: torch.full(t.shape, float("nan"))  # noqa: E731
    return BatchMask({b: torch.zeros_like(m) for b, m in cells.masked.items()},
                     {b: nan(s) for b, s in cells.guide_scores.items()}, cells.candidates,
                     nan(cells.positive_scores), nan(cells.thresholds))


def hardness_weights(mask: BatchMask, student: Embedded, config: TrainConfig) -> dict[str, torch.Tensor]:
    """exp(penalty) of each candidate ``mask`` keeps in the blocks the library's MNRL weights
    (:func:`core.method.loss.hardness_penalty` at ``config``'s mode and strength on the student's
    cosines); NaN where the cell is masked, no candidate, or not weighted."""
    scores = guided_mask(student.anchor, student.positive, student.negatives).guide_scores
    eye = torch.eye(len(student.anchor), dtype=torch.bool)
    weights = {}
    for block in ("a-p", "a-n"):
        if block not in mask.blocks:
            continue
        own = eye if block == "a-p" else eye.repeat(1, len(student.negatives))  # row i's own columns
        on = hardness_penalty(block, torch.ones_like(scores[block]), own, config.hardness_mode, 1.0)  # 1: weighted
        penalty = hardness_penalty(block, scores[block], own, config.hardness_mode, config.hardness_strength)
        if on is None or penalty is None:
            continue
        kept = mask.candidates[block] & ~mask.masked[block] & (on > 0)
        weights[block] = torch.where(kept, penalty.exp(), torch.tensor(float("nan")))
    return weights


def verdict(strategy: Strategy, batch: Batch, settings: MarginSettings, guide: Embedded | None = None,
            student: Embedded | None = None) -> Verdict:
    """``strategy``'s verdict on ``batch`` at the shared ``settings``: ``guide`` is its guide's embeddings
    (gist, gist-hard), ``student`` the student's (self-judge, mnrl-hard, gist-hard)."""
    kind = strategy.loss
    if kind in GUIDED and guide is None:
        raise ValueError(f"{kind} needs its guide's embeddings")
    if kind in STUDENT_JUDGED and student is None:
        raise ValueError(f"{kind} needs the student's embeddings")
    arm = strategy.masking(settings)
    judge = student if kind == "self-judge" else guide
    mask = unmasked(batch, settings) if arm is None else mask_batch(batch, judge, arm)
    weights = hardness_weights(mask, student, strategy.config(settings)) if kind in WEIGHTING else None
    return Verdict(strategy, mask, weights)


def compare_strategies(batch: Batch, a: Verdict, b: Verdict, settings: MarginSettings) -> GuideComparison:
    """Two verdicts compared cell for cell as two guides are (masks, agreement, precision, recall, the
    pairs one masks and the other keeps), the summary with each weighting arm's weights (:func:`weight_summary`)."""
    result = compare_masks(batch, a.mask, b.mask, settings, (a.strategy.name, b.strategy.name))
    extra = pd.DataFrame([weight_summary(batch, v) for v in (a, b)], columns=list(WEIGHT_COLUMNS))
    return replace(result, summary=pd.concat([result.summary, extra], axis=1))


def weight_summary(batch: Batch, v: Verdict) -> dict[str, float]:
    """How many kept candidates a weighting arm weights, the median and largest factor, and the median
    factor on the false negatives it keeps (NaN without ground truth or none kept); NaN when it does not weight."""
    if v.weights is None:
        return dict.fromkeys(WEIGHT_COLUMNS, np.nan)
    values = torch.cat([w.flatten() for w in v.weights.values()]) if v.weights else torch.empty(0)
    values = values[~values.isnan()]
    truth = batch.relations(tuple(v.weights))
    fn = (torch.cat([w[truth[k] == FALSE_NEGATIVE] for k, w in v.weights.items()])
          if truth is not None and v.weights else torch.empty(0))
    fn = fn[~fn.isnan()]
    median = lambda t: float(t.median()) if len(t) else np.nan  # noqa: E731
    return {"weighted": len(values), "weight_median": median(values),
            "weight_max": float(values.max()) if len(values) else np.nan,
            "weight_median_false_negatives": median(fn)}
