"""A run directory, read back: the single source of truth for the CLI and every app page.

Layout (written by :mod:`core.train`):

- ``config.json``: the :class:`core.train.TrainConfig` of the run.
- ``status.json``: ``state`` (running / completed / stopped / interrupted / failed), ``error``,
  ``started`` / ``ended`` (ISO times), ``steps_done``, ``total_steps``, ``pid``.
- ``metrics.jsonl``: one JSON line per optimizer step (step, loss, masked_fraction, ...).
- ``batches.jsonl``: one JSON line per step with the dataset row ids of the batch it trained on.
- ``masks.parquet``: every masked (row, candidate) cell of every step.
- ``model/``: the final model with its model card; ``results/``: evaluations; ``STOP``: a request
  to end the run cleanly after its current step.

Readers never lock: the writer replaces JSON and Parquet files atomically and only appends to
the JSONL files, so a half-written last line is the only partial state a reader can meet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

from core.errors import GistlabError
from core.workspace import subdir

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
BATCHES = "batches.jsonl"
MASKS = "masks.parquet"
MODEL = "model"
RESULTS = "results"
STOP = "STOP"
RUN_FILES = (CONFIG, STATUS, METRICS, BATCHES, MASKS, MODEL, RESULTS, STOP)
MASK_SCHEMA = pa.schema([
    ("step", pa.int32()),             # optimizer step, from 1
    ("row", pa.int32()),              # batch row i (its anchor; its positive in block p-p)
    ("candidate", pa.int32()),        # column in the block, as core.masking lays it out
    ("block", pa.string()),           # a-p, a-a, p-p, a-n
    ("guide_score", pa.float32()),    # the guide's cosine of row and candidate
    ("threshold", pa.float32()),      # row i's threshold: masked because guide_score > threshold
    ("anchor_row", pa.int64()),       # dataset row id of batch row i
    ("candidate_row", pa.int64()),    # dataset row id the candidate text comes from
    ("candidate_column", pa.string()),  # which text column it is: anchor, positive, negative...
])
STATES = ("running", "completed", "stopped", "interrupted", "failed")
DIED = "died"  # read-side only: status says running but its process is gone


class RunNotFound(GistlabError, FileNotFoundError):
    """A run directory that was deleted, or a folder that holds no run."""


def runs_root() -> Path:
    """Where runs go unless ``--out`` says otherwise: ``<workspace>/runs``."""
    return subdir("runs")


def trained_model(run: str | Path) -> Path | None:
    """The run's saved model folder, or None while it is training, failed, or was shipped without weights."""
    model = Path(run) / MODEL
    return model if (model / "modules.json").is_file() else None


def resolve(run: str | Path) -> Path:
    """A run's folder from a path or from a name under :func:`runs_root`; RunNotFound if none."""
    path = Path(run).expanduser()
    if not path.is_dir() and not path.is_absolute() and (runs_root() / path).is_dir():
        path = runs_root() / path
    if not path.is_dir():
        raise RunNotFound(f"Run {str(run)!r} does not exist (deleted?): pick a run from `gistlab runs` or the Train page.")
    if not (path / CONFIG).is_file() and not (path / STATUS).is_file():
        raise RunNotFound(f"{path} is not a training run (no {CONFIG} or {STATUS}): point at a run folder.")
    return path


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temp file + rename), so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _read_json(run: str | Path, name: str) -> dict:
    path = resolve(run) / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunNotFound(f"{path} is missing: the run has not started writing yet, or was deleted.") from None
    except ValueError:
        raise GistlabError(f"{path} is not valid JSON: the run folder is damaged.") from None


def read_config(run: str | Path) -> dict:
    """The run's config as saved (``TrainConfig.from_dict`` turns it back into a config)."""
    return _read_json(run, CONFIG)


def read_status(run: str | Path) -> dict:
    """The run's status; a ``running`` run whose process is gone reads as ``died``."""
    from core.jobs import is_alive

    status = _read_json(run, STATUS)
    if status.get("state") == "running" and not is_alive(int(status.get("pid") or 0)):
        status = {**status, "state": DIED,
                  "error": "the training process ended without saying how (killed or crashed)"}
    return status


def _read_jsonl(path: Path) -> list[dict]:
    """Complete JSON lines of a file that may be growing (a torn last line is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # only the line being written can be torn
    return records


def read_metrics(run: str | Path) -> pd.DataFrame:
    """One row per finished step: step, loss, masked_fraction, masked_<block>, lr, step_seconds, elapsed."""
    frame = pd.DataFrame(_read_jsonl(resolve(run) / METRICS))
    return frame if len(frame) else pd.DataFrame(columns=["step", "loss", "masked_fraction", "step_seconds"])


def read_batch(run: str | Path, step: int) -> list[int]:
    """The dataset row ids of the batch the run trained on at ``step`` (1-based), in batch order."""
    for record in _read_jsonl(resolve(run) / BATCHES):
        if record["step"] == step:
            return record["rows"]
    raise GistlabError(f"Run {Path(run).name} has no step {step}: choose a step it has finished.")


def recorded_steps(run: str | Path) -> list[int]:
    """The steps whose batch the run recorded (1-based, in order): what can be inspected."""
    return sorted(record["step"] for record in _read_jsonl(resolve(run) / BATCHES))


def read_masks(run: str | Path, step: int | None = None) -> pd.DataFrame:
    """The masked cells (all steps, or one), as of the run's last flush; empty before the first."""
    path = resolve(run) / MASKS
    if not path.is_file():
        return MASK_SCHEMA.empty_table().to_pandas()
    filters = [("step", "==", step)] if step is not None else None
    return pd.read_parquet(path, filters=filters)


def request_stop(run: str | Path) -> Path:
    """Ask a running run to end after its current step (it saves its model and says ``stopped``)."""
    path = resolve(run)
    (path / STOP).touch()
    return path


def list_runs(root: str | Path | None = None) -> pd.DataFrame:
    """Every run under ``root`` (default: the workspace's runs), newest first, one row each."""
    root = Path(root) if root is not None else runs_root()
    rows = []
    for path in sorted(p for p in root.glob("*") if p.is_dir()):
        try:
            config, status = read_config(path), read_status(path)
        except GistlabError:
            continue  # a folder being created, or not a run
        rows.append({
            "run": path.name, "state": status.get("state"), "loss": config.get("loss"),
            "student": config.get("student"), "guide": config.get("guide"), "data": config.get("data"),
            "seed": config.get("seed"), "steps_done": status.get("steps_done", 0),
            "total_steps": status.get("total_steps"), "started": status.get("started"),
            "ended": status.get("ended"), "path": str(path),
        })
    columns = ["run", "state", "loss", "student", "guide", "data", "seed", "steps_done",
               "total_steps", "started", "ended", "path"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("started", ascending=False, ignore_index=True, na_position="last")
