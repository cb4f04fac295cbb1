"""Where a background job stands: each run's state, and one fraction and ETA for the whole job.

A paired job trains its arms one after the other and may evaluate each run afterwards, so one
progress bar per run would show 100% for the first arm while the job is half done. This reads the
job record (core.training.jobs: when each step started and ended) and the runs' status and metrics
(core.training.runs) and estimates the time left for every step still to come: a training step's start-up
(loading models and data, measured on the arm before it) plus its steps at the median step time,
an evaluation at the duration of the ones already done. A later arm trained by the same process
(``Step.continues``) only reloads its student: its start-up is the median of such arms measured,
else counted as none (about a second with the bundled models), not the first arm's imports and loads.
A running evaluation that has counted some of its tasks is timed by its own rate instead (and,
before any has ended, stands for the evaluations still waiting). The bar
stays below 100% while a step has not ended. Every view words the counts from here
(:meth:`StepProgress.count_text`, :meth:`JobProgress.bar_text`): the Train page's bar, its step
lines and its Past runs, and the Results page's evaluation bar.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pandas as pd

from core.training import runs
from core.errors import GistlabError
from core.training.events import TASK_DONE, Kind, events_file, read_events, step_error
from core.training.jobs import Job, Step
from core.training.status import RunState

MAX_UNFINISHED = 0.99  # the most a job's bar shows while a step has not ended (an estimate may overrun)

class StepState(StrEnum):
    """The states of a job's step that are not a run's (:class:`core.training.status.RunState`)."""

    WAITING = "waiting"  # not started yet
    DELETED = "deleted"  # its run folder was deleted while the job ran
    EVALUATED = "evaluated"  # an evaluation step that ended well


@dataclass
class StepProgress:
    """One step of a job: a run being trained, or a run being evaluated."""

    kind: str  # "train" or "eval"
    run: str  # the run folder's name
    arm: str  # the loss arm trained (gist, mnrl, ...)
    state: RunState | StepState
    done: int = 0  # steps trained, or tasks evaluated
    total: int | None = None  # steps to train (None for an evaluation: its task count is not known ahead)
    error: str | None = None
    warning: str | None = None  # e.g. the run learns nothing (core.training.train, status.json "warning")

    def steps_text(self) -> str:
        """The count alone, "9 of 10" (or "9" without a total): the Past runs table's steps."""
        return f"{self.done} of {self.total}" if self.total else f"{self.done}"

    def count_text(self) -> str:
        """The step's count as every view words it: "step 9 of 10"; a running evaluation names the task under
        way ("task 2 of 6"), one that ended its tasks done ("6 of 6 tasks"); "" before there is any."""
        if self.kind == "train":
            return f"step {self.steps_text()}" if self.done or self.state == RunState.RUNNING else ""
        if self.state == RunState.RUNNING:
            if self.total:
                return f"task {min(self.done + 1, self.total)} of {self.total}"
            return f"{self.done} tasks done" if self.done else "loading the model and its tasks"
        if self.state == StepState.WAITING:
            return ""
        return f"{self.steps_text()} tasks"


@dataclass
class JobProgress:
    """All steps, the fraction of the job done, seconds left (None until estimable) and a one-line phase."""

    steps: list[StepProgress] = field(default_factory=list)
    fraction: float = 0.0
    eta_s: float | None = None
    eta_excludes_eval: bool = False  # the ETA counts training only: no evaluation has finished yet
    phase: str = ""

    def eta_text(self) -> str:
        """"about 40 s left", "about 40 s left, then the evaluation", or "" while not estimable."""
        if self.eta_s is None or (self.eta_excludes_eval and self.eta_s < 1):
            return ""
        left = (f"about {self.eta_s / 60:.0f} min left" if self.eta_s >= 120 else
                f"about {self.eta_s:.0f} s left" if self.eta_s >= 5 else "almost done")  # a step may overrun
        return left + (", then the evaluation" if self.eta_excludes_eval else "")

    def bar_text(self) -> str:
        """The job's bar in one line: "62% · evaluating a · model 2 of 2 · task 3 of 6 · about 40 s left"."""
        return " · ".join(part for part in (f"{self.fraction:.0%}", self.phase or "starting", self.eta_text()) if part)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _train_step(step: Step, metrics: pd.DataFrame | None) -> StepProgress:
    run_dir = Path(step.run_dir)
    settings = step.settings or {}
    total = settings.get("steps")
    try:
        status = runs.read_status(run_dir)
        arm = settings.get("loss") or runs.read_config(run_dir).get("loss") or ""
    except GistlabError:
        arm = settings.get("loss", "")
        if step.started is None:
            return StepProgress("train", run_dir.name, arm, StepState.WAITING, 0, total)
        if not run_dir.is_dir():
            return StepProgress("train", run_dir.name, arm, StepState.DELETED, 0, total,
                                "the run folder is gone (deleted?): start a new run")
        if step.ended is None:
            return StepProgress("train", run_dir.name, arm, RunState.STARTING, 0, total)
        return StepProgress("train", run_dir.name, arm, RunState.FAILED, 0, total, step_error(step.log))
    done = status.steps_done
    if metrics is not None and len(metrics):
        done = max(done, int(metrics["step"].max()))
    return StepProgress("train", run_dir.name, str(arm), status.state, done, status.total_steps or total,
                        status.error, status.warning)


def _eval_step(step: Step, model: str) -> StepProgress:
    name = Path(model).name
    if step.started is None:
        return StepProgress("eval", name, "", StepState.WAITING)
    found = read_events(events_file(step.log))
    done = sum(e.kind in TASK_DONE for e in found)
    total = next((e.total for e in reversed(found) if e.kind == Kind.TASKS), None)
    if step.ended is None:
        return StepProgress("eval", name, "", RunState.RUNNING, done, total)
    if step.code:
        return StepProgress("eval", name, "", RunState.FAILED, done, error=step_error(step.log))
    return StepProgress("eval", name, "", StepState.EVALUATED, done)


def job_progress(job: Job, metrics: dict[str, pd.DataFrame], now: float | None = None) -> JobProgress:
    """The job's progress; ``metrics`` maps run folder names to their metrics (core.training.runs.read_metrics)."""
    now = time.time() if now is None else now
    records = [s for s in job.steps if s.run_dir or job.evaluated_model(s)]
    shown = [_train_step(s, metrics.get(Path(s.run_dir).name)) if s.run_dir else _eval_step(s, job.evaluated_model(s))
             for s in records]
    step_seconds = [float(x) for m in metrics.values() if "step_seconds" in m for x in m["step_seconds"]]
    per_step = _median(step_seconds)
    startups: dict[bool, list[float]] = {False: [], True: []}  # by Step.continues
    eval_times = []
    for record, progress in zip(records, shown):
        if record.started is None or progress.state == RunState.FAILED:
            continue
        spent = (record.ended or now) - record.started
        if progress.kind == "train" and progress.done:
            trained = metrics.get(progress.run)
            startups[record.continues].append(
                spent - float(trained["step_seconds"].sum()) if trained is not None and len(trained) else spent)
        elif progress.kind == "eval" and record.ended is not None:
            eval_times.append(spent)
    if not eval_times:  # none ended yet: a running one's length at its counted rate stands for the others
        eval_times = [(now - r.started) / p.done * p.total for r, p in zip(records, shown)
                      if p.kind == "eval" and p.state == RunState.RUNNING and p.total and p.done]
    eval_time = _median(eval_times)

    left, known, excludes_eval = 0.0, True, False
    for record, progress in zip(records, shown):
        if record.ended is not None:
            continue
        elapsed = now - record.started if record.started is not None else 0.0
        if progress.kind == "eval":
            if progress.state == RunState.RUNNING and progress.total and progress.done:
                left += elapsed / progress.done * max(progress.total - progress.done, 0)  # its own counted rate
            elif eval_time is None:
                excludes_eval = True
            else:
                left += max(eval_time - elapsed, 0.0)
            continue
        steps_left = max((progress.total or 0) - progress.done, 0)
        startup = _median(startups[record.continues])
        if startup is None and record.continues:
            startup = 0.0
        if per_step is None or (progress.done == 0 and startup is None):
            known = False
            continue
        left += steps_left * per_step + (max(startup - elapsed, 0.0) if progress.done == 0 else 0.0)

    # Without a time estimate, each step of the job weighs the same: a share of its steps or tasks done.
    shares = [min(p.done / p.total, 1.0) if p.total else float(p.state in (StepState.EVALUATED, RunState.FAILED)) for p in shown]
    by_steps = sum(shares) / len(shares) if shares else 0.0
    spent = now - job.started
    eta = left if known else None
    fraction = spent / (spent + eta) if eta is not None and spent + eta > 0 and not excludes_eval else by_steps
    ceiling = 1.0 if all(r.ended is not None for r in records) else MAX_UNFINISHED  # never 100% while work remains
    return JobProgress(shown, min(max(fraction, 0.0), ceiling), eta, excludes_eval, _phase(shown))


def _phase(shown: list[StepProgress]) -> str:
    """What the job does now, with a count: "training mnrl (arm 2 of 2) · step 3 of 20"."""
    trains = [p for p in shown if p.kind == "train"]
    evals = [p for p in shown if p.kind == "eval"]
    for k, p in enumerate(trains, 1):
        what = (p.arm or p.run) + (f" (arm {k} of {len(trains)})" if len(trains) > 1 else "")
        if p.state == RunState.STARTING:
            return f"loading models and data for {what}"
        if p.state == RunState.RUNNING:
            return f"training {what} · {p.count_text()}"
    for k, p in enumerate(evals, 1):
        if p.state == RunState.RUNNING:
            return f"evaluating {p.run} · model {k} of {len(evals)} · {p.count_text()}"
    return ""
