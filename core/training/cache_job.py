"""The guide cache fill as a background job: start it, count its progress with an ETA, tell a finished fill.

``gistlab cache --data D --guide G --out FOLDER`` encodes every text of D that G's guide cache lacks
(core.guides.guide_cache), a chunk of ``FILL_CHUNK`` texts at a time, each chunk kept on disk once
appended. A fill that is stopped (Stop on the page: SIGINT), crashes or is killed therefore loses at
most the chunk it was encoding: the next fill verifies the stored rows' checksums, keeps them and
encodes only the rest. Under torchrun each process encodes a shard of every chunk, as before.

The command writes ``progress`` events (core.training.events: texts stored of distinct texts, stage
``verifying`` then ``encoding``) beside its log, and ``summary.json`` in FOLDER when it finishes;
:func:`fill_progress` reads them for the page and :func:`eta_seconds` gives the CLI and the page the
same estimate: the time left at this fill's own encoding rate so far (texts cached before it started
do not count towards the rate).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from core.training.events import Event, Kind, events_file, read_events, step_error
from core.training.jobs import Job, Step, config_command, start_job
from core.workspace import subdir

LOG = "cache.log"
SUMMARY = "summary.json"
STAGES = {"verifying": "checking the stored embeddings", "encoding": "encoding texts with the guide"}


def fills_root() -> Path:
    """Where the app's fills keep their log, events and summary: ``<workspace>/cache_fills/<time>/``."""
    return subdir("cache_fills")


def start_cache_fill(data: str, guide: str, batch_size: int = 64) -> tuple[Job, Path]:
    """Fill ``guide``'s cache with every text of ``data`` as the workspace's background job; (job, its folder)."""
    out = fills_root() / time.strftime("%Y%m%d-%H%M%S")
    settings = {"data": data, "guide": guide, "batch_size": batch_size, "out": str(out)}
    step = Step(config_command("cache", settings, "cache"), str(out / LOG), settings=settings)
    return start_job("cache", [step]), out


def eta_seconds(first: tuple[float, int], last: tuple[float, int], total: int) -> float | None:
    """Seconds left to reach ``total`` at the rate between two (time, done) readings; None before any progress."""
    (t0, d0), (t1, d1) = first, last
    if d1 <= d0 or t1 <= t0:
        return None
    return (t1 - t0) / (d1 - d0) * max(total - d1, 0)


@dataclass
class FillProgress:
    """Where a fill stands: its stage, ``done`` of ``total`` texts (or rows checked), seconds left (None:
    not yet estimable), and once it ended, how (``finished``, ``stopped``, ``failed``) with the error."""

    stage: str
    done: int
    total: int
    eta_s: float | None
    state: str = "running"
    error: str | None = None

    def text(self) -> str:
        """One line: "encoding texts with the guide: 8,192 of 20,000 texts · about 3 min left"."""
        unit = "rows checked" if self.stage == "verifying" else "texts stored"
        eta = "" if self.eta_s is None else (f" · about {self.eta_s / 60:.0f} min left" if self.eta_s >= 120
                                             else f" · about {self.eta_s:.0f} s left")
        return f"{STAGES.get(self.stage, self.stage)}: {self.done:,} of {self.total:,} {unit}{eta}"


def fill_progress(folder: Path, job: Job | None = None) -> FillProgress | None:
    """The progress of the fill in ``folder`` from its events (None before its first count); ``job``:
    its record, which says whether it still runs and how it ended."""
    folder = Path(folder)
    found: list[Event] = [e for e in read_events(events_file(folder / LOG)) if e.kind == Kind.PROGRESS]
    step = job.steps[0] if job is not None else None
    error = step_error(step.log) if step is not None and step.code else None
    if not found:
        return None if error is None else FillProgress("", 0, 0, None, "failed", error)
    last = found[-1]
    stage = [e for e in found if e.task == last.task]
    eta = eta_seconds((stage[0].time, stage[0].done), (last.time, last.done), last.total)
    state = "running"
    if (folder / SUMMARY).is_file():
        state = "finished"
    elif step is not None and step.ended is not None:
        state, eta = ("stopped" if step.code in (130, -2, -9) else "failed"), None
    return FillProgress(last.task or "", last.done, last.total, eta, state, error if state == "failed" else None)


def filled(data: str, guide: str) -> bool:
    """Whether a fill in the workspace finished with every text of ``data`` in ``guide``'s cache (its summary
    is written only then)."""
    for summary_file in fills_root().glob(f"*/{SUMMARY}"):
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, ValueError):
            continue
        if summary.get("data") == data and summary.get("guide") == guide:
            return True
    return False
