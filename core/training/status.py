"""How a run stands: ``status.json`` as one typed record, one writer and one reader.

A run is ``running`` while it trains and ends ``completed``, ``stopped`` (a STOP file),
``interrupted`` (Ctrl-C, SIGTERM, or killed by the job supervisor after a stop went unanswered) or
``failed`` (with its one-line ``error``). Readers derive two more: ``died`` (the file says running
but its process is gone: killed or crashed) and ``starting`` (a job's run folder before its process
wrote the file). :class:`RunStatus` is the file's shape; the writer (:meth:`RunStatus.write`)
replaces the file atomically, the reader (:meth:`RunStatus.read`) reports ``died``. Light on
purpose (no pandas, no torch): the job supervisor and ``gistlab --help`` import it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from core.errors import GistlabError
from core.fsio import write_json_atomic

STATUS = "status.json"


class RunNotFound(GistlabError, FileNotFoundError):
    """A run directory that was deleted, or a folder that holds no run."""


class RunState(StrEnum):
    """A run's state; a ``str``, so it compares with and serialises as its plain name."""

    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    DIED = "died"  # read side only: the file says running, its process is gone
    STARTING = "starting"  # read side only: a job made the folder, the run has not written its status


def now() -> str:
    """The time as status.json stores it: local ISO 8601 with its offset, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class RunStatus:
    """``status.json``: the state, the one-line ``error`` and ``warning`` (e.g. the run learns
    nothing), ``started``/``ended`` (ISO times), steps done of total, the training process's ``pid``
    and ``pid_start`` (its start time, so a reused pid is not taken for the run), the number of
    ``processes`` (torchrun) and, for a run the supervisor had to kill, the ``reason``."""

    state: RunState = RunState.RUNNING
    error: str | None = None
    warning: str | None = None
    started: str | None = None
    ended: str | None = None
    steps_done: int = 0
    total_steps: int | None = None
    pid: int = 0
    pid_start: str = ""
    processes: int = 1
    reason: str | None = None

    def __post_init__(self) -> None:
        try:
            self.state = RunState(self.state)
        except ValueError:
            raise GistlabError(f"Unknown run state {self.state!r} in {STATUS}: the run folder is damaged.") from None
        self.steps_done = int(self.steps_done or 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "state": str(self.state)}

    @classmethod
    def from_dict(cls, data: dict) -> RunStatus:
        """The status from its JSON; keys this version does not know are ignored, missing ones default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, run_dir: str | Path) -> None:
        """Replace ``<run_dir>/status.json`` atomically: a reader never sees half of it."""
        write_json_atomic(Path(run_dir) / STATUS, self.to_dict())

    @classmethod
    def read(cls, run_dir: str | Path, *, live: bool = True) -> RunStatus:
        """The status in ``run_dir``; RunNotFound if it has none, GistlabError if it is damaged. With
        ``live`` a ``running`` status whose process is gone reads as ``died``."""
        status = cls.from_dict(read_json(Path(run_dir) / STATUS))
        if live and status.state == RunState.RUNNING and not _alive(status):
            status.state = RunState.DIED
            status.error = "the training process ended without saying how (killed or crashed)"
        return status

    def duration_seconds(self) -> float | None:
        """Seconds from ``started`` to ``ended`` (to now while it runs), or None without a start time."""
        try:
            started = datetime.fromisoformat(self.started)
            ended = datetime.fromisoformat(self.ended) if self.ended else datetime.now(started.tzinfo)
        except (TypeError, ValueError):
            return None
        return max((ended - started).total_seconds(), 0.0)


def _alive(status: RunStatus) -> bool:
    from core.training.jobs import is_alive  # jobs writes statuses too: imported here, not at the top

    return is_alive(int(status.pid or 0), str(status.pid_start or ""))


def read_json(path: Path) -> dict:
    """A run file's JSON; RunNotFound if it is missing, a one-line GistlabError if it is damaged."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunNotFound(f"{path} is missing: the run has not started writing yet, or was deleted.") from None
    except ValueError:
        raise GistlabError(f"{path} is not valid JSON: the run folder is damaged.") from None
    if not isinstance(data, dict):
        raise GistlabError(f"{path} is not a JSON object: the run folder is damaged.")
    return data


def mark_interrupted(run_dir: Path, reason: str) -> None:
    """A run killed mid-step cannot say how it ended: set a ``running`` status to ``interrupted``."""
    try:
        status = RunStatus.read(run_dir, live=False)
    except GistlabError:
        return
    if status.state == RunState.RUNNING:
        status.state, status.reason = RunState.INTERRUPTED, reason
        status.write(run_dir)
