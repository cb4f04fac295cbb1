"""Guided in-batch negative masking: the one rule that decides which candidates a guide removes.

GISTEmbed (Solatorio 2024) asks a frozen guide which in-batch candidates look at least as relevant
to a row as that row's own positive, and drops them from the contrastive softmax. This module is
that decision as pure functions over tensors. The loss, the CLI's audit and every app page call
:func:`guided_mask`, so what the UI shows is exactly what training masks.

Blocks (rows are the batch rows i = 0..B-1; columns are candidates):

- ``a-p``: anchor a_i vs every positive p_j. Column i is the target and is never masked.
- ``a-a``: anchor a_i vs every anchor a_j (only if ``contrast_anchors``).
- ``p-p``: positive p_i vs every positive p_j (only if ``contrast_positives``).
- ``a-n``: anchor a_i vs every negative in the batch, negative columns laid side by side
  (column ``k * B + j`` is negative column k of row j).

With g_i = cos_guide(a_i, p_i), a candidate c of row i is masked when cos_guide(row, c) > t_i with
t_i = g_i - margin (absolute) or t_i = g_i - |g_i| * margin (relative). The comparison is strict.

Positive floor (``MarginSettings.positive_floor``, default None = off, the library's rule exactly):
t_i = max(t_i, floor). A row whose guide disbelieves its own pair (g_i low, a *weak positive*)
would otherwise mask almost every candidate and drop out of the loss; with a floor it masks only
candidates the guide scores above the floor, i.e. genuinely close ones. Rows whose threshold is
already at or above the floor are untouched. :meth:`BatchMask.weak_rows` finds the weak rows.
Beyond that rule, self-similarities (a_i vs a_i, p_i vs p_i) and candidates whose text equals row
i's anchor or positive text are always masked: with a negative margin or duplicated texts the plain
rule keeps them, and the loss would then push a text away from itself. sentence-transformers'
``GISTEmbedLoss`` masks the self-similarities too since 6.3 ("no self-negative"; up to 6.2 it kept
them), but still keeps a copy of the same text in another row: that is where the two differ
(tests/test_loss.py checks both versions; docs/UPGRADES.md has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.method.margin import STRATEGIES, MarginSettings  # noqa: F401 (also imported from here)

BLOCKS = ("a-p", "a-a", "p-p", "a-n")
BLOCK_HELP = {
    "a-p": "anchor vs positives: each row's anchor against every positive in the batch; "
           "its own positive is the target, the other positives are its in-batch negatives.",
    "a-a": "anchor vs anchors: each row's anchor against the other rows' anchors "
           "(only with 'contrast anchors').",
    "p-p": "positive vs positives: each row's positive against the other rows' positives "
           "(only with 'contrast positives').",
    "a-n": "anchor vs negatives: each row's anchor against every hard negative in the batch "
           "(only when the data has negative columns).",
}
"""One short sentence per block name, for help tooltips wherever a page shows a-p / a-a / p-p / a-n."""
WEAK_SHARE = 0.9  # a row masking at least this share of its candidates is a weak positive


@dataclass
class BatchMask:
    """The guide's verdict on one batch.

    ``masked[block]`` is a bool [B, C] tensor (True = removed from the softmax) and
    ``guide_scores[block]`` the guide cosines behind it. ``candidates[block]`` marks the cells
    that are real in-batch negatives (everything but the a-p target and the a-a/p-p diagonal),
    the denominator of every fraction reported.
    """

    masked: dict[str, torch.Tensor]
    guide_scores: dict[str, torch.Tensor]
    candidates: dict[str, torch.Tensor]
    positive_scores: torch.Tensor
    thresholds: torch.Tensor

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(self.masked)

    def masked_candidates(self, block: str) -> torch.Tensor:
        """Bool [B, C]: masked cells that are real candidates (no target, no self-similarity)."""
        return self.masked[block] & self.candidates[block]

    def row_counts(self) -> dict[str, torch.Tensor]:
        """Masked candidates per row, per block (int [B] each)."""
        return {b: self.masked_candidates(b).sum(dim=1) for b in self.blocks}

    def block_fractions(self) -> dict[str, float]:
        """Masked share of each block's candidates."""
        return {
            b: float(self.masked_candidates(b).sum()) / max(int(self.candidates[b].sum()), 1)
            for b in self.blocks
        }

    def row_fractions(self) -> torch.Tensor:
        """Masked share of each row's candidates over every active block (float [B])."""
        masked = sum(self.masked_candidates(b).sum(dim=1) for b in self.blocks)
        total = sum(self.candidates[b].sum(dim=1) for b in self.blocks)
        return masked / total.clamp(min=1)

    def weak_rows(self, share: float = WEAK_SHARE) -> torch.Tensor:
        """Bool [B]: *weak-positive* rows, masking at least ``share`` of their candidates. Such a
        row's guide scores its own pair so low that almost nothing is left to contrast: it drops
        out of the loss, and the pair itself is suspect (see ``MarginSettings.positive_floor``)."""
        return self.row_fractions() >= share

    def weak_row_count(self, share: float = WEAK_SHARE) -> int:
        """How many rows are weak positives (:meth:`weak_rows`)."""
        return int(self.weak_rows(share).sum())

    def masked_fraction(self) -> float:
        """Masked share of all in-batch candidates, over every active block."""
        masked = sum(int(self.masked_candidates(b).sum()) for b in self.blocks)
        total = sum(int(self.candidates[b].sum()) for b in self.blocks)
        return masked / max(total, 1)


def cosine_matrix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``x`` with every row of ``y`` (of each batch: [..., N, D])."""
    return F.normalize(x, p=2, dim=-1) @ F.normalize(y, p=2, dim=-1).transpose(-1, -2)


def thresholds(positive_scores: torch.Tensor, settings: MarginSettings) -> torch.Tensor:
    """Per-row threshold t_i: a candidate scoring strictly above it is masked (raised to the
    positive floor, if set). Broadcasts: [B, 1] scores with a tensor margin [M] give [B, M]."""
    if settings.margin_strategy == "absolute":
        t = positive_scores - settings.margin
    else:
        t = positive_scores - positive_scores.abs() * settings.margin
    return t if settings.positive_floor is None else t.clamp(min=settings.positive_floor)


def _text_ids(*columns: list) -> list[torch.Tensor]:
    """Map texts to integer ids shared across columns, so equality is one tensor comparison.
    A column is a list of texts [B], or of batches' texts [N][B] (ids [N, B])."""
    vocab: dict[str, int] = {}

    def ids(col: list) -> torch.Tensor:
        if col and isinstance(col[0], (list, tuple)):
            return torch.stack([ids(c) for c in col])
        return torch.tensor([vocab.setdefault(t, len(vocab)) for t in col], dtype=torch.long)

    return [ids(col) for col in columns]


def guided_mask(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: list[torch.Tensor] | tuple[torch.Tensor, ...] = (),
    settings: MarginSettings = MarginSettings(),
    anchor_texts: list[str] | None = None,
    positive_texts: list[str] | None = None,
    negative_texts: list[list[str]] | None = None,
) -> BatchMask:
    """Decide, from guide embeddings, which in-batch candidates are masked for each row.

    Args:
        anchor, positive: guide embeddings [B, D] of the batch's anchors and positives.
        negatives: guide embeddings [B, D] of each hard-negative column (0..k columns).
        settings: margin strategy, margin and which blocks take part.
        anchor_texts, positive_texts, negative_texts: the raw texts, same order; when given,
            a candidate identical to row i's anchor or positive text is always masked.

    Several batches of one size at once (the what-if sweep): embeddings [N, B, D] and texts
    nested per batch ([N][B]) give masks, scores and thresholds with a leading N dimension; each
    batch is masked on its own. :class:`BatchMask`'s counting methods expect a single batch.

    Returns:
        A :class:`BatchMask` with the mask, guide scores and candidates of every active block.
    """
    anchor, positive = anchor.float(), positive.float()
    negatives = [n.float() for n in negatives]
    batch = anchor.shape[-2]
    eye = torch.eye(batch, dtype=torch.bool, device=anchor.device)

    scores = {"a-p": cosine_matrix(anchor, positive)}
    if settings.contrast_anchors:
        scores["a-a"] = cosine_matrix(anchor, anchor)
    if settings.contrast_positives:
        scores["p-p"] = cosine_matrix(positive, positive)
    if negatives:
        scores["a-n"] = cosine_matrix(anchor, torch.cat(negatives, dim=-2))

    positive_scores = scores["a-p"].diagonal(dim1=-2, dim2=-1).clone()
    row_threshold = thresholds(positive_scores, settings)

    masked = {b: s > row_threshold[..., None] for b, s in scores.items()}
    candidates = {b: torch.ones_like(m) for b, m in masked.items()}
    for block in ("a-a", "p-p"):
        if block in masked:
            masked[block] |= eye
            candidates[block] &= ~eye
    candidates["a-p"] &= ~eye

    if anchor_texts is not None and positive_texts is not None:
        neg_cols = list(negative_texts or [])
        ids = _text_ids(anchor_texts, positive_texts, *neg_cols)
        a_ids, p_ids = ids[0].to(anchor.device), ids[1].to(anchor.device)
        column_ids = {"a-p": p_ids, "a-a": a_ids, "p-p": p_ids}
        if neg_cols:
            column_ids["a-n"] = torch.cat(ids[2:], dim=-1).to(anchor.device)
        for block in masked:
            cols = column_ids[block][..., None, :]
            masked[block] |= (cols == a_ids[..., None]) | (cols == p_ids[..., None])

    masked["a-p"] &= ~eye  # the target is never masked
    return BatchMask(masked, scores, candidates, positive_scores, row_threshold)
