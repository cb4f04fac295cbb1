"""A recorded run's masks judged again by the current ground truth, step by step.

Runs recorded before issue 22 wrote ``mask_precision`` under an older definition (same meaning,
word *or* category counted as backed); their ``masks.parquet`` and ``batches.jsonl`` still hold
every masked cell and every batch, so the one definition of :mod:`core.method.groundtruth` (false
negatives by the task's relation, the related and unrelated shares beside them) can be computed
for them after the fact, with no model: the mask is read, not recomputed.

    table = run_quality("assets/demo/gist")   # one row per step: core.method.groundtruth.step_quality
    table[["fn_present", "fn_caught", "fn_precision", "related_share"]].mean()
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from core.analysis.inspect import open_run_batches
from core.method.groundtruth import step_quality
from core.method.masking import BatchMask


def recorded_mask(masks: pd.DataFrame, batch, blocks: list[str]) -> BatchMask:
    """The :class:`BatchMask` of one step from its rows of ``masks.parquet`` (scores left at 0): the
    masked cells as recorded, the candidates as :func:`core.method.masking.guided_mask` defines them."""
    n = len(batch)
    widths = {b: n * len(batch.negatives) if b == "a-n" else n for b in blocks}
    masked = {b: torch.zeros(n, w, dtype=torch.bool) for b, w in widths.items()}
    for block, part in masks.groupby("block"):
        if block in masked:
            masked[block][torch.tensor(part["row"].to_numpy()), torch.tensor(part["candidate"].to_numpy())] = True
    eye = torch.eye(n, dtype=torch.bool)
    candidates = {b: (~eye if b in ("a-p", "a-a", "p-p") else torch.ones(n, w, dtype=torch.bool))
                  for b, w in widths.items()}
    zeros = {b: torch.zeros(n, w) for b, w in widths.items()}
    return BatchMask(masked, zeros, candidates, torch.zeros(n), torch.zeros(n))


def run_quality(run: str | Path) -> pd.DataFrame | None:
    """One row per recorded step of a guided run: :func:`core.method.groundtruth.step_quality` of its
    recorded mask against the run's data (None when the data has no ground truth or nothing was recorded).

    A step whose metrics say it masked something but whose cells are not in ``masks.parquet`` (a copy
    that kept only some steps' masks, like the bundled demo) is left out, not judged as masking nothing."""
    from core.training.runs import read_masks, read_metrics, recorded_steps

    masks = read_masks(run)
    if masks.empty:
        return None
    masked = dict(zip(*(read_metrics(run)[c].tolist() for c in ("step", "masked_fraction"))))
    kept = set(masks["step"].tolist())
    steps = [s for s in recorded_steps(run) if s in kept or masked.get(s, 1.0) == 0]
    if not steps:
        return None
    batches, config = open_run_batches(run, steps)
    settings = config.masking
    blocks = ["a-p", *(["a-a"] if settings.contrast_anchors else []), *(["p-p"] if settings.contrast_positives else [])]
    records = []
    for step, batch in zip(steps, batches):
        if batch.truth is None:
            return None
        mask = recorded_mask(masks[masks["step"] == step], batch, blocks + (["a-n"] if batch.negatives else []))
        records.append({"step": step, **step_quality(mask, batch.relations(mask.blocks))})
    return pd.DataFrame.from_records(records)
