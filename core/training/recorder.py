"""The run directory written as training goes: status, one metrics and batch line per step, masks.

:class:`RunRecorder` is the trainer callback that writes it (layout in :mod:`core.training.runs`),
watches for ``STOP`` and for a run that learns nothing; :class:`RecordingTrainer` keeps the
dataset row ids of each batch it trains on, which the recorder writes to ``batches.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sentence_transformers import SentenceTransformerTrainer
from transformers import TrainerCallback

from core.corpus.data import truth_columns
from core.errors import GistlabWarning
from core.method import distributed
from core.method.groundtruth import ground_truth, relations, step_quality
from core.method.masking import BatchMask
from core.training.lifecycle import new_status
from core.training.runs import BATCHES, MASK_SCHEMA, MASKS, METRICS, STOP
from core.training.status import RunState, now

LEARNS_NOTHING_STEPS = 5  # steps in a row fully masked (or with loss exactly 0) before the run warns
FLUSH_SECONDS = 5.0  # how often masks.parquet is rewritten while a run trains


class RecordingTrainer(SentenceTransformerTrainer):
    """The library's trainer, keeping the dataset row ids of the batch it last trained on (the
    global batch of all processes when ``gather_rows``)."""

    last_rows: list[int] = []
    gather_rows = False

    def create_scheduler(self, num_training_steps, optimizer=None):
        """The library's schedule, but a warmup never covers every step: a linear warmup's first
        step has learning rate 0, and ``ceil(0.1 x 1)`` is 1, so a one-step run would not train at all."""
        if self.args.get_warmup_steps(num_training_steps) >= num_training_steps:
            self.args.warmup_steps = max(num_training_steps - 1, 0)
        return super().create_scheduler(num_training_steps, optimizer)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            labels = inputs["label"]
            self.last_rows = distributed.gather_rows(labels) if self.gather_rows else labels.tolist()
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def mask_table(step: int, mask: BatchMask, rows: list[int], negative_names: list[str]) -> pa.Table:
    """The masked cells of one step as rows of :data:`core.training.runs.MASK_SCHEMA`."""
    rows_np, batch = np.asarray(rows, dtype=np.int64), len(rows)
    parts = []
    for block in mask.blocks:
        i, c = (t.cpu().numpy() for t in mask.masked_candidates(block).nonzero(as_tuple=True))
        if block == "a-n":
            candidate_rows, columns = rows_np[c % batch], np.asarray(negative_names, dtype=object)[c // batch]
        else:
            candidate_rows = rows_np[c]
            columns = np.full(len(c), "anchor" if block == "a-a" else "positive", dtype=object)
        parts.append({
            "step": np.full(len(i), step), "row": i, "candidate": c, "block": np.full(len(i), block, dtype=object),
            "guide_score": mask.guide_scores[block].cpu().numpy()[i, c],
            "threshold": mask.thresholds.cpu().numpy()[i],
            "anchor_row": rows_np[i], "candidate_row": candidate_rows, "candidate_column": columns,
        })
    if not parts:
        return MASK_SCHEMA.empty_table()
    return pa.Table.from_pydict({k: np.concatenate([p[k] for p in parts]) for k in MASK_SCHEMA.names},
                                schema=MASK_SCHEMA)


class RunRecorder(TrainerCallback):
    """Writes the run directory as training goes: status, one metrics and batch line per step, masks.

    Also the stop switch: after every step it looks for ``STOP`` in the run directory and, if
    there, asks the trainer to end (the model is then saved as for a finished run). And the
    "learns nothing" alarm: :data:`LEARNS_NOTHING_STEPS` steps in a row (or the whole run, if
    shorter) with >= 99% of candidates masked or a loss of exactly 0 set ``status.warning``
    and print one warning line.
    """

    def __init__(self, out: Path, negative_names: list[str], pairs=None) -> None:
        self.out, self.negative_names = out, negative_names
        truth = truth_columns(pairs) if pairs is not None else []
        self.truth = pairs.select_columns(truth) if truth else None  # ground truth of the data, if any
        self.stop_requested = False
        self.trainer = None
        self.step_mask: Callable[[], BatchMask | None] = lambda: None
        self.masks: list[pa.Table] = []  # steps not yet flushed
        self._parts = 0
        self.status = new_status()
        self._idle_steps = 0  # steps in a row that taught the student nothing
        for name in (METRICS, BATCHES):
            (out / name).write_text("")
        self.status.write(out)
        self._step_seconds = 0.0
        self._flushed = time.monotonic()

    def attach(self, trainer, step_mask: Callable[[], BatchMask | None]) -> None:
        self.trainer, self.step_mask = trainer, step_mask

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()
        self.status.total_steps = state.max_steps
        self.status.write(self.out)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._step_seconds = time.perf_counter() - self._step_started
        if (self.out / STOP).exists():
            self.stop_requested = control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.record_step(state.global_step, state.epoch, logs)

    def record_step(self, step: int, epoch: float, logs: dict) -> None:
        """Append this step's metrics and batch, keep its masks, flush them every few seconds."""
        rows = list(self.trainer.last_rows)
        mask = self.step_mask()
        metrics = {"step": step, "epoch": epoch, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                   "grad_norm": logs.get("grad_norm"),
                   "masked_fraction": mask.masked_fraction() if mask is not None else 0.0}
        if mask is not None:
            metrics |= {f"masked_{block}": value for block, value in mask.block_fractions().items()}
            metrics |= {"weak_rows": mask.weak_row_count()} | self.mask_quality(mask, rows)
            self.masks.append(mask_table(step, mask, rows, self.negative_names))
        metrics |= {"step_seconds": self._step_seconds, "elapsed": time.perf_counter() - self._started}
        _append_line(self.out / METRICS, metrics)
        _append_line(self.out / BATCHES, {"step": step, "rows": rows})
        self.status.steps_done = step
        self.watch_learning(step, metrics)
        self.status.write(self.out)
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.flush()

    def watch_learning(self, step: int, metrics: dict) -> None:
        """Warn once when the run stops learning: every candidate masked, or a loss of exactly 0."""
        idle = metrics["masked_fraction"] >= 0.99 or metrics["loss"] == 0.0
        self._idle_steps = self._idle_steps + 1 if idle else 0
        needed = min(LEARNS_NOTHING_STEPS, self.status.total_steps or LEARNS_NOTHING_STEPS)
        if self._idle_steps < needed or self.status.warning:
            return
        self.status.warning = (
            f"learns nothing: steps {step - self._idle_steps + 1}-{step} masked "
            f"{metrics['masked_fraction']:.0%} of in-batch candidates with loss {metrics['loss']:g}; "
            "lower --margin, or check the data for duplicated texts")
        warnings.warn(self.status.warning, GistlabWarning, stacklevel=2)

    def mask_quality(self, mask: BatchMask, rows: list[int]) -> dict:
        """Precision and recall of the step's mask against the data's ground truth
        (core.method.groundtruth.step_quality); nothing when the data has none (~2 ms a step)."""
        if self.truth is None:
            return {}
        truth = ground_truth(self.truth[rows], self.negative_names)
        return step_quality(mask, relations(truth, mask.blocks)) if truth is not None else {}

    def flush(self) -> None:
        """Write the steps kept since the last flush as one more part of ``masks.parquet`` (a folder
        of Parquet files, each renamed into place whole). A flush costs its own rows only, and memory
        holds one flush's steps: a batch of 1024 masks ~0.5 M cells a step."""
        if self.masks:
            folder = self.out / MASKS
            folder.mkdir(exist_ok=True)
            name = f"part-{self._parts:05d}.parquet"
            pq.write_table(pa.concat_tables(self.masks), folder / f".{name}.tmp")  # hidden from readers
            os.replace(folder / f".{name}.tmp", folder / name)
            self._parts, self.masks = self._parts + 1, []
        self._flushed = time.monotonic()

    def finish(self, state: RunState, error: str | None = None) -> None:
        """Flush the masks and say how the run ended; a consumed STOP request is removed."""
        self.flush()
        (self.out / STOP).unlink(missing_ok=True)
        self.status.state, self.status.error, self.status.ended = state, error, now()
        self.status.write(self.out)


def _append_line(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
