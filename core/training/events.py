"""What a background command reports to the pages that follow it: typed events, one JSON line each.

A job's ``gistlab`` process writes its human output to a log (for people) and its events to a JSONL
file next to that log (``train.log`` -> ``train.events.jsonl``), named by the job in the
:data:`EVENTS_ENV` environment variable. The pages count tasks and read errors from the events,
never from the log's wording: a command started, an evaluation's task count, a task
evaluated, reused, skipped or failed (with its reason), counted progress (``done`` of ``total`` in a
stage, e.g. a guide cache fill's texts stored), an error (the one-line GistlabError). Only
a process that crashed before it could write an event (a traceback) is read from its log: the last
line. Without the variable (a command typed in a terminal) nothing is written. Light (no pandas).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path

EVENTS_ENV = "GISTLAB_EVENTS"


class Kind(StrEnum):
    STARTED = "started"  # a command started: ``message`` names it
    TASKS = "tasks"  # an evaluation's task list is known: ``total`` tasks
    EVALUATED = "evaluated"  # a task evaluated now
    REUSED = "reused"  # a task whose stored result is reused
    SKIPPED = "skipped"  # a task that could not run (data not loadable offline, ...): ``message`` says why
    FAILED = "failed"  # a task that ran and raised: ``message`` is its error
    PROGRESS = "progress"  # ``done`` of ``total`` in the stage named by ``task`` (a cache fill: texts stored)
    ERROR = "error"  # the command failed: ``message`` is its one-line error


TASK_DONE = (Kind.EVALUATED, Kind.REUSED, Kind.SKIPPED, Kind.FAILED)
"""One of these per task of an evaluation: how many tasks are done."""


@dataclass(frozen=True)
class Event:
    """One event: its kind, the task it concerns, its one-line message, a count (``done`` of ``total``),
    when (epoch seconds)."""

    kind: Kind
    task: str | None = None
    message: str | None = None
    total: int | None = None
    time: float = 0.0
    done: int | None = None

    def text(self) -> str:
        """The event as one line for people: ``skipped SciFact: its data is not ...``."""
        what = " ".join(str(part) for part in (self.kind, self.task) if part)
        return f"{what}: {self.message}" if self.message else what


def events_file(log: str | Path) -> Path:
    """The events file beside a step's log: ``<folder>/<log stem>.events.jsonl``."""
    log = Path(log)
    return log.with_name(f"{log.stem}.events.jsonl")


def emit(kind: Kind, task: str | None = None, message: str | None = None, total: int | None = None,
         done: int | None = None) -> Event:
    """Append an event to this process's events file (named by :data:`EVENTS_ENV`; none: not written)."""
    event = Event(Kind(kind), task, message, total, time.time(), done)
    path = os.environ.get(EVENTS_ENV)
    if path:
        write_event(Path(path), event)
    return event


def write_event(path: Path, event: Event) -> None:
    """Append one event to an events file as one JSON line."""
    with open(path, "a") as handle:  # one short line per write: appends do not interleave
        handle.write(json.dumps({**asdict(event), "kind": str(event.kind)}) + "\n")


def follow_log(log: str | Path) -> None:
    """From now on write events beside ``log`` (a later arm of a paired run, logging into its own folder)."""
    if os.environ.get(EVENTS_ENV):
        os.environ[EVENTS_ENV] = str(events_file(log))


def read_events(path: str | Path) -> list[Event]:
    """The events in a file, in order; a missing file has none and a torn last line is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    known = {f.name for f in fields(Event)}
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            found.append(Event(**{**{k: v for k, v in record.items() if k in known}, "kind": Kind(record["kind"])}))
        except (ValueError, TypeError, KeyError):
            continue  # only the line being written can be torn
    return found


def step_error(log: str | Path) -> str | None:
    """Why a step failed: its last ``error`` event, else the last line of its log (a crash's traceback
    ends with the exception); None for a step with neither."""
    errors = [e.message for e in read_events(events_file(log)) if e.kind == Kind.ERROR]
    if errors:
        return errors[-1]
    path = Path(log)
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()] if path.is_file() else []
    return ([line for line in lines if line] or [None])[-1]
