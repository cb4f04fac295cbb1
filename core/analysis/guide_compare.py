"""Two guides on one batch: how much each masks, where they agree, and who is right where they differ.

Both masks come from :func:`core.analysis.inspect.mask_batch` (the training rule) on the same batch at the
same settings; only the guide's embeddings differ, so two guides with different tokenizers and
dimensions (MiniLM 384-d, MPNet 768-d) compare cell for cell. Agreement is the Jaccard index of the
two sets of masked candidate cells (1.0 when neither masks anything). Every cell that one guide
masks and the other keeps becomes a line of :attr:`GuideComparison.disagreements`, with both
guides' scores and thresholds and the cell's ground-truth relation (:mod:`core.method.groundtruth`), so
a reader sees which guide was right there; with ground truth, each mask's precision (false negatives
masked / masked), recall (false negatives masked / present) and its two cost shares (related hard
negatives, unrelated) come from :meth:`core.analysis.inspect.Batch.quality`. Two guides that both
mask a cell agree on it; that makes it a false negative only where the ground truth says so.

    comparison = compare_guides(batch, cache_a.embed, cache_b.embed, MarginSettings(), ("minilm", "mpnet"))
    comparison.summary            # per guide: masked share, weak rows, precision, recall, only-here cells
    comparison.agreement["all"]   # Jaccard of the two masked sets
    comparison.disagreements      # the cells one guide masks and the other keeps
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.method.groundtruth import ALL, FALSE_NEGATIVE, RELATED, RELATIONS, UNRELATED
from core.analysis.inspect import Batch, Embed, Embedded, embed_batch, mask_batch
from core.method.masking import BatchMask, MarginSettings

DISAGREEMENT_COLUMNS = (
    "masked_by", "block", "row", "text", "candidate", "relation", "score_a", "threshold_a",
    "score_b", "threshold_b", "candidate_role", "dataset_row", "candidate_row",
)
SUMMARY_COLUMNS = (
    "guide", "candidates", "masked", "masked_fraction", "weak_rows", "false_negatives", "caught", "precision", "recall",
    "related", "unrelated", "share_related", "share_unrelated", "only_this_guide", "only_this_guide_false_negatives",
)


@dataclass(frozen=True)
class GuideComparison:
    """Two guides' masks of one batch and what sets them apart (see the module docstring).

    ``names`` are the guides as the user named them; ``disagreements.masked_by`` holds one of them.
    ``summary`` has one row per guide (:data:`SUMMARY_COLUMNS`; the ground-truth columns and
    ``only_this_guide_false_negatives``, the share of its only-here cells that are false negatives,
    are NaN without ground truth). ``agreement`` maps each block and
    ``all`` to the Jaccard index of the masked cells.
    """

    batch: Batch
    settings: MarginSettings
    names: tuple[str, str]
    a: BatchMask
    b: BatchMask
    agreement: dict[str, float]
    summary: pd.DataFrame
    disagreements: pd.DataFrame

    @property
    def has_ground_truth(self) -> bool:
        return self.batch.truth is not None


def jaccard(a: BatchMask, b: BatchMask) -> dict[str, float]:
    """Jaccard index of the masked candidate cells of two masks of one batch, per block and ``all``."""
    sizes = {}
    for block in a.blocks:
        ma, mb = a.masked_candidates(block), b.masked_candidates(block)
        sizes[block] = (int((ma & mb).sum()), int((ma | mb).sum()))
    sizes[ALL] = tuple(sum(s[k] for s in sizes.values()) for k in (0, 1))
    return {block: both / either if either else 1.0 for block, (both, either) in sizes.items()}


def compare_masks(batch: Batch, a: BatchMask, b: BatchMask, settings: MarginSettings,
                  names: tuple[str, str]) -> GuideComparison:
    """Compare two masks of ``batch`` made at ``settings`` by the guides ``names``."""
    if a.blocks != b.blocks:
        raise ValueError(f"masks of different blocks: {a.blocks} vs {b.blocks}")
    if names[0] == names[1]:
        names = (f"{names[0]} (A)", f"{names[1]} (B)")
    truth = batch.relations(a.blocks)
    disagreements = _disagreements(batch, a, b, names, truth)
    return GuideComparison(batch, settings, names, a, b, jaccard(a, b),
                           _summary(batch, (a, b), names, disagreements), disagreements)


def compare_embedded(batch: Batch, guide_a: Embedded, guide_b: Embedded, settings: MarginSettings,
                     names: tuple[str, str]) -> GuideComparison:
    """Mask ``batch`` with each guide's embeddings (e.g. cached by a page) and compare the masks."""
    return compare_masks(batch, mask_batch(batch, guide_a, settings), mask_batch(batch, guide_b, settings),
                         settings, names)


def compare_guides(batch: Batch, embed_a: Embed, embed_b: Embed, settings: MarginSettings,
                   names: tuple[str, str]) -> GuideComparison:
    """Embed ``batch`` with both guides (e.g. ``GuideCache.embed``) and compare their masks."""
    return compare_embedded(batch, embed_batch(batch, embed_a), embed_batch(batch, embed_b), settings, names)


def _disagreements(batch: Batch, a: BatchMask, b: BatchMask, names: tuple[str, str],
                   truth: dict[str, torch.Tensor] | None) -> pd.DataFrame:
    frames = []
    relation_names = np.array(RELATIONS, dtype=object)
    for block in a.blocks:
        ma, mb = a.masked_candidates(block), b.masked_candidates(block)
        cand_texts, roles, cand_rows = (np.array(x, dtype=object) for x in batch.candidates(block))
        row_texts = np.array(batch.row_texts(block), dtype=object)
        for name, only in ((names[0], ma & ~mb), (names[1], mb & ~ma)):
            i, c = only.nonzero(as_tuple=True)
            frames.append(pd.DataFrame({
                "masked_by": name, "block": block, "row": i.numpy(), "text": row_texts[i.numpy()],
                "candidate": cand_texts[c.numpy()],
                "relation": None if truth is None else relation_names[truth[block][i, c].long().numpy()],
                "score_a": a.guide_scores[block][i, c].numpy(), "threshold_a": a.thresholds[i].numpy(),
                "score_b": b.guide_scores[block][i, c].numpy(), "threshold_b": b.thresholds[i].numpy(),
                "candidate_role": roles[c.numpy()], "dataset_row": np.asarray(batch.rows)[i.numpy()],
                "candidate_row": cand_rows[c.numpy()].astype(int),
            }))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return table.reindex(columns=list(DISAGREEMENT_COLUMNS))


def _summary(batch: Batch, masks: tuple[BatchMask, BatchMask], names: tuple[str, str],
             disagreements: pd.DataFrame) -> pd.DataFrame:
    records = []
    for name, mask in zip(names, masks):
        quality = batch.quality(mask)
        truth_columns = ("false_negatives", "caught", "precision", "recall", "share_related", "share_unrelated")
        pooled = (quality[(quality["task"] == ALL) & (quality["block"] == ALL)].iloc[0]
                  if quality is not None else dict.fromkeys(truth_columns, np.nan))
        related, unrelated = ((sum(int(pooled[f"masked_{RELATIONS[r]}"]) for r in RELATED),
                               int(pooled[f"masked_{RELATIONS[UNRELATED]}"])) if quality is not None else (np.nan, np.nan))
        only = disagreements[disagreements["masked_by"] == name]
        caught = ((only["relation"] == RELATIONS[FALSE_NEGATIVE]).mean() if len(only) else np.nan) \
            if batch.truth is not None else np.nan
        records.append({
            "guide": name,
            "candidates": sum(int(mask.candidates[b].sum()) for b in mask.blocks),
            "masked": sum(int(mask.masked_candidates(b).sum()) for b in mask.blocks),
            "masked_fraction": mask.masked_fraction(), "weak_rows": mask.weak_row_count(),
            **{column: pooled[column] for column in truth_columns}, "related": related, "unrelated": unrelated,
            "only_this_guide": len(only), "only_this_guide_false_negatives": caught,
        })
    return pd.DataFrame.from_records(records, columns=list(SUMMARY_COLUMNS))


CELL_STATES = ("kept by both", "A only", "B only", "masked by both")


def cell_states(comparison: GuideComparison, block: str) -> np.ndarray:
    """Float [B, C] for a heatmap of ``block``: the index of each cell's state in :data:`CELL_STATES`
    (bit 0: guide A masks it, bit 1: guide B does), NaN where the cell is no candidate (a row's own
    positive, a self-similarity)."""
    a = comparison.a.masked_candidates(block).numpy()
    b = comparison.b.masked_candidates(block).numpy()
    states = a.astype(float) + 2.0 * b
    states[~comparison.a.candidates[block].numpy()] = np.nan
    return states
