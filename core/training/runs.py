"""A run directory, read back: the single source of truth for the CLI and every app page.

Layout (written by :mod:`core.training.train`):

- ``config.json``: the :class:`core.training.config.TrainConfig` of the run.
- ``status.json``: a :class:`core.training.status.RunStatus` (state, error, times, steps, pid).
- ``metrics.jsonl``: one JSON line per optimizer step (step, loss, masked_fraction, ...).
- ``batches.jsonl``: one JSON line per step with the dataset row ids of the batch it trained on.
- ``masks.parquet``: every masked (row, candidate) cell of every step (a folder of parts, one per flush).
- ``model/``: the final model with its model card; ``results/``: evaluations; ``STOP``: a request
  to end the run cleanly after its current step.
- ``name.txt``: the name a user gave the run (optional; the folder name stays the run's id).
- ``train.log``: the output of the command that trained it, when a background job (core.training.jobs) did.

Readers never lock: the writer replaces JSON and Parquet files atomically and only appends to
the JSONL files, so a half-written last line is the only partial state a reader can meet.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import GistlabError
from core.fsio import write_text_atomic
from core.training.status import STATUS, RunNotFound, RunState, RunStatus, read_json
from core.workspace import subdir, workspace

CONFIG = "config.json"
METRICS = "metrics.jsonl"
BATCHES = "batches.jsonl"
MASKS = "masks.parquet"
MODEL = "model"
RESULTS = "results"
STOP = "STOP"
NAME = "name.txt"
LOG = "train.log"
RUN_FILES = (CONFIG, STATUS, METRICS, BATCHES, MASKS, MODEL, RESULTS, STOP)
MASK_SCHEMA = pa.schema([
    ("step", pa.int32()),             # optimizer step, from 1
    ("row", pa.int32()),              # batch row i (its anchor; its positive in block p-p)
    ("candidate", pa.int32()),        # column in the block, as core.method.masking lays it out
    ("block", pa.string()),           # a-p, a-a, p-p, a-n
    ("guide_score", pa.float32()),    # the guide's cosine of row and candidate
    ("threshold", pa.float32()),      # row i's threshold: masked because guide_score > threshold
    ("anchor_row", pa.int64()),       # dataset row id of batch row i
    ("candidate_row", pa.int64()),    # dataset row id the candidate text comes from
    ("candidate_column", pa.string()),  # which text column it is: anchor, positive, negative...
])
def runs_root() -> Path:
    """Where runs go unless ``--out`` says otherwise: ``<workspace>/runs``."""
    return subdir("runs")


def trained_model(run: str | Path) -> Path | None:
    """The run's saved model folder, or None while it is training, failed, or was shipped without weights."""
    model = Path(run) / MODEL
    return model if (model / "modules.json").is_file() else None


def resolve(run: str | Path) -> Path:
    """A run's folder from a path or from a name under :func:`runs_root`; RunNotFound if none.
    A name is one folder name (never ``..`` or a path), so it cannot lead out of the runs folder."""
    path = Path(run).expanduser()
    named = len(path.parts) == 1 and path.name not in ("", ".", "..")
    if not path.is_dir() and named and (runs_root() / path).is_dir():
        path = runs_root() / path
    if not path.is_dir():
        raise RunNotFound(f"Run {str(run)!r} does not exist (deleted?): pick a run from `gistlab runs` or the Train page.")
    if not (path / CONFIG).is_file() and not (path / STATUS).is_file():
        raise RunNotFound(f"{path} is not a training run (no {CONFIG} or {STATUS}): point at a run folder.")
    return path


def _own_folder(path: Path) -> Path:
    """``path`` if it is a real folder, not a link to one elsewhere (whose files a rename or delete would touch)."""
    if path.is_symlink():
        raise GistlabError(f"{path} is a link to {os.readlink(path)}, not a run folder: remove the link itself "
                           f"(rm {path}); nothing was changed.")
    return path


def read_config(run: str | Path) -> dict:
    """The run's config as saved (``TrainConfig.from_dict`` turns it back into a config)."""
    return read_json(resolve(run) / CONFIG)


def read_status(run: str | Path) -> RunStatus:
    """The run's status; a ``running`` run whose process is gone reads as ``died``."""
    return RunStatus.read(resolve(run))


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
    """The masked cells (all steps, or one), as of the run's last flush; empty before the first.

    ``masks.parquet`` is a folder of parts, one per flush (a single file in runs written before
    that, and in the bundled demo); both read alike.
    """
    path = resolve(run) / MASKS
    if not (path.is_file() or any(path.glob("part-*.parquet"))):
        return MASK_SCHEMA.empty_table().to_pandas()
    filters = [("step", "==", step)] if step is not None else None
    return pq.read_table(path, schema=MASK_SCHEMA, filters=filters).to_pandas()


def request_stop(run: str | Path) -> Path:
    """Ask a running run to end after its current step (it saves its model and says ``stopped``)."""
    path = resolve(run)
    (path / STOP).touch()
    return path


def run_name(run: str | Path) -> str:
    """The name a user gave the run, or '' (the folder name is then its only name; a linked
    ``name.txt`` is not followed)."""
    path = Path(run) / NAME
    return path.read_text().strip() if path.is_file() and not path.is_symlink() else ""


def set_name(run: str | Path, name: str) -> None:
    """Name a run (one line, at most 80 characters); a blank name removes it. The name is data: it
    goes into a new ``name.txt`` that replaces the old one (a link there is replaced, never followed)."""
    path = _own_folder(resolve(run)) / NAME
    name = " ".join(name.split())[:80]
    if not name:
        path.unlink(missing_ok=True)
        return
    write_text_atomic(path, name + "\n")  # a fresh temporary file renamed over name.txt: a link there is replaced


def run_bytes(run: str | Path) -> int:
    """Disk space the run folder takes (model, masks, logs, results), in bytes."""
    return sum(p.stat().st_size for p in Path(run).rglob("*") if p.is_file())


def delete_run(run: str | Path) -> int:
    """Delete a run folder with everything in it; returns the bytes freed. A run still training is refused."""
    path = Path(run).expanduser()
    if not path.is_dir():
        path = resolve(run)
    _own_folder(path)
    from core.training.jobs import current_job

    job = current_job()
    training = (path / STATUS).is_file() and read_status(path).state == RunState.RUNNING
    if training or (job is not None and path.resolve() in {d.resolve() for d in job.run_dirs}):
        raise GistlabError(f"{path.name} belongs to the job that is running: stop it first, then delete the run.")
    if not ((path / CONFIG).is_file() or (path / STATUS).is_file() or (path / LOG).is_file()):
        raise RunNotFound(f"{path} is not a training run: nothing deleted.")
    freed = run_bytes(path)
    shutil.rmtree(path)
    return freed


def final_loss(run: str | Path) -> float | None:
    """The loss of the run's last recorded step (read from the end of metrics.jsonl), or None."""
    path = Path(run) / METRICS
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(handle.seek(0, os.SEEK_END) - 4096, 0))
        lines = handle.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            return float(json.loads(line)["loss"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _not_started(path: Path, job_dirs: set[Path]) -> tuple[dict, RunStatus] | None:
    """(config, status) of a folder a job made for a run that has not written its files: starting, or
    failed before them (bad data, a model that would not load: the reason is the log's error line)."""
    if not (path / LOG).is_file():
        return None
    if path.resolve() in job_dirs:
        return {}, RunStatus(RunState.STARTING)
    from core.training.events import step_error

    mtime = datetime.fromtimestamp((path / LOG).stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return {}, RunStatus(RunState.FAILED, step_error(path / LOG), started=mtime, ended=mtime)


COLUMNS = ["run", "name", "state", "loss", "margin", "margin_strategy", "batch_size", "lr", "steps_done",
           "total_steps", "duration_s", "final_loss", "seed", "student", "guide", "data", "started", "ended",
           "error", "path"]


def list_runs(root: str | Path | None = None) -> pd.DataFrame:
    """Every run under ``root`` (default: the workspace's runs), newest first, one row each.

    Includes the running job's runs while they start and runs that failed before writing their
    files (the error from their ``train.log``); folders that hold no run, and links to folders
    elsewhere, are left out.
    """
    from core.training.jobs import current_job

    root = Path(root) if root is not None else workspace() / "runs"  # only read: not made (a read-only workspace)
    job = current_job()
    job_dirs = {d.resolve() for d in job.run_dirs} if job is not None else set()
    rows = []
    for path in sorted(p for p in root.glob("*") if p.is_dir() and not p.is_symlink()):  # a link leads elsewhere
        try:
            config, status = read_config(path), read_status(path)
        except GistlabError:
            found = _not_started(path, job_dirs)  # a folder being created, failed early, or not a run
            if found is None:
                continue
            config, status = found
        rows.append({
            "run": path.name, "name": run_name(path), "state": str(status.state), "loss": config.get("loss"),
            "margin": config.get("margin"), "margin_strategy": config.get("margin_strategy"),
            "batch_size": config.get("batch_size"), "lr": config.get("lr"),
            "steps_done": status.steps_done, "total_steps": status.total_steps or config.get("steps"),
            "duration_s": status.duration_seconds(), "final_loss": final_loss(path),
            "seed": config.get("seed"), "student": config.get("student"), "guide": config.get("guide"),
            "data": config.get("data"), "started": status.started, "ended": status.ended,
            "error": status.error, "path": str(path),
        })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("started", ascending=False, ignore_index=True, na_position="first")


PAST_RUNS = {"name": "name", "run": "run", "state": "state", "loss": "loss", "margin": "margin",
             "batch_size": "batch", "lr": "lr", "steps": "steps", "duration": "duration",
             "final_loss": "final loss", "seed": "seed", "guide": "guide", "student": "student",
             "data": "data", "started": "started", "error": "error"}
"""The columns of the Train page's Past runs and of ``gistlab runs`` (list_runs column -> shown name)."""


def duration_text(seconds) -> str:
    """``95.0`` -> ``1 min 35 s``; blank when unknown."""
    if seconds is None or pd.isna(seconds):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def with_display_columns(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`list_runs` plus ``steps`` ("3 of 10") and ``duration`` ("1 min 35 s") as people read them."""
    return table.assign(duration=table["duration_s"].map(duration_text), steps=[
        f"{done} of {total}" if pd.notna(total) else f"{done}" for done, total in zip(table["steps_done"], table["total_steps"])])


def past_runs(root: str | Path | None = None) -> pd.DataFrame:
    """Every run under ``root`` (default: the workspace's), newest first, with the Past runs columns renamed."""
    return with_display_columns(list_runs(root))[list(PAST_RUNS)].rename(columns=PAST_RUNS)


def runs_text(root: str | Path | None = None) -> str:
    """``gistlab runs``: :func:`past_runs` as a text table (numbers formatted as the Train page shows
    them), or one line saying where no run was found."""
    table = past_runs(root)
    if table.empty:
        return f"No runs in {Path(root) if root is not None else workspace() / 'runs'} yet: start one with gistlab train."
    formats = {"lr": "{:.1e}", "final loss": "{:.4f}", "margin": "{:.2f}"}
    return table.to_string(index=False, max_colwidth=40, na_rep="", formatters={
        column: (lambda x, f=f: "" if pd.isna(x) else f.format(x)) for column, f in formats.items()})
