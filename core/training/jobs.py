"""One background job per workspace (a training run, a paired comparison, an evaluation, an audit, a guide
cache fill: core.training.cache_job) run as CLI processes.

Streamlit reruns a page on every click, so long work cannot live in the page. A job is a detached
supervisor process (``python -m core.training.jobs <record>``, in its own session, so a rerun or a closed tab
never kills it) that runs one or more ``gistlab`` commands one after the other, each writing its
output to a log file (a training run's ``train.log`` sits in its run directory) and its events
(:mod:`core.training.events`: tasks done, errors) beside it, in the file the supervisor names. The record ``<workspace>/jobs/current.json`` (pid, kind,
run dirs, started) is what every browser tab reads: a second start is refused and told what runs.

A paired job trains all its arms in one ``gistlab train --loss gist,mnrl`` process, so the later arms
pay no second start-up (imports, data, guide). Its record keeps one step per arm: the first holds
the command, each later one ``continues`` it. The supervisor sees a later arm start when the
process makes its run directory, and then records the arm before it as ended.

Stopping writes ``STOP`` into the run directories, so the training loop ends cleanly; the supervisor
sends a command still alive after a grace period SIGINT (what Ctrl-C does) and, after another grace
period, SIGKILL, and then marks a run left in state ``running`` as ``interrupted``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import GistlabError
from core.fsio import locked, write_json_atomic
from core.training.events import EVENTS_ENV, Kind, events_file, read_events, step_error
from core.training.status import STATUS, RunState, RunStatus, mark_interrupted, now
from core.workspace import subdir

KINDS = ("train", "paired", "eval", "audit", "cache")
GRACE_SECONDS = 30.0
POLL_SECONDS = 0.5
ROOT = Path(__file__).resolve().parents[2]

# Popen objects of the jobs this process started, so they are reaped (no zombie looks alive).
_children: dict[int, subprocess.Popen] = {}


@dataclass
class Step:
    """One command of a job, the log its output goes to, and the run directory a stop writes STOP into.

    A step also keeps its ``settings``: a training step's (written as the run's config.json if it
    fails before writing its own), an evaluation's (``model``, ``tasks``); a training step the
    ``name`` the user gave the run. The supervisor fills in when it
    ``started`` and ``ended`` (epoch seconds) and its exit ``code``. A step that ``continues`` has no
    command: it is a later arm trained by the process of the step before it (its code is 0 once the
    process moved past it, else the process's).
    """

    command: list[str]
    log: str
    run_dir: str | None = None
    settings: dict | None = None
    name: str = ""
    started: float | None = None
    ended: float | None = None
    code: int | None = None
    continues: bool = False


@dataclass
class Job:
    """The record of a background job, as stored in ``<workspace>/jobs/current.json``."""

    kind: str
    steps: list[Step]
    grace_s: float = GRACE_SECONDS
    pid: int = 0
    started: float = field(default_factory=time.time)
    pid_start: str = ""

    @property
    def run_dirs(self) -> list[Path]:
        return [Path(s.run_dir) for s in self.steps if s.run_dir]

    def describe(self) -> str:
        """One line naming the job: kind, pid, start time and its run directories."""
        when = time.strftime("%H:%M:%S", time.localtime(self.started))
        models = [model for s in self.steps if (model := self.evaluated_model(s))]
        where = ", ".join([p.name for p in self.run_dirs] or [Path(m).name for m in models]
                          or [Path(s.log).parent.name for s in self.steps])  # an audit's, a cache fill's folder
        return f"{self.kind} job ({where}; pid {self.pid}, started {when})"

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        return cls(**{**data, "steps": [Step(**s) for s in data["steps"]]})

    def problems(self) -> tuple[list[str], list[str]]:
        """What its steps' commands reported (their events): the one-line errors, and each task that
        was skipped or failed, as a line (``skipped SciFact: ...``)."""
        found = [e for log in dict.fromkeys(step.log for step in self.steps) for e in read_events(events_file(log))]
        return ([e.message for e in found if e.kind == Kind.ERROR],
                [e.text() for e in found if e.kind in (Kind.SKIPPED, Kind.FAILED)])

    def evaluated_model(self, step: Step) -> str | None:
        """The model an evaluation step evaluates (its settings' ``model``), or None for a training step."""
        return None if step.run_dir else (step.settings or {}).get("model")


LOG = "train.log"
"""A training step's log in its run directory: core.training.runs.LOG, not imported (runs loads pandas)."""


def cli(command: str, options: dict | None = None, *, program: tuple[str, ...] | None = None) -> list[str]:
    """The one place a ``gistlab`` argv is built: ``command`` with ``options`` as flags, in order
    (``{"batch_size": 32, "fp16": False, "limit": None}`` -> ``--batch-size 32 --no-fp16``; None is
    left out), run by this interpreter (no reliance on PATH) unless ``program`` names it
    (``("gistlab",)`` for a command line shown to people)."""
    argv = [*(program or (sys.executable, "-m", "core.cli")), command]
    for key, value in (options or {}).items():
        name = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(name if value else f"--no-{name[2:]}")
        elif value is not None:
            argv += [name, str(value)]
    return argv


def config_command(command: str, settings: dict, kind: str, **options) -> list[str]:
    """The argv of ``gistlab <command> --config <file>``, ``settings`` (the command's options by
    name) written to a new JSON file in the jobs folder: settings cross to the process as a file,
    validated there by the dataclass the CLI builds. ``options`` (plumbing such as ``--log``) stay flags."""
    path = jobs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}-{kind}.json"
    write_json_atomic(path, settings)
    return cli(command, {"config": str(path), **options})


def jobs_dir() -> Path:
    return subdir("jobs")


def _record() -> Path:
    return jobs_dir() / "current.json"


def _stop_marker() -> Path:
    return jobs_dir() / "STOP"


def _locked():
    """An exclusive lock on the job record, so two tabs clicking Start at once start one job."""
    return locked(jobs_dir() / "lock")


def process_start(pid: int) -> str:
    """The process's start time from /proc (tells a reused pid apart); '' where /proc is absent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def is_alive(pid: int, pid_start: str = "") -> bool:
    """Whether ``pid`` is a live process (not a zombie, not a later process that reused the pid)."""
    if pid <= 0:
        return False
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X") and (not pid_start or process_start(pid) == pid_start)


def last_job() -> Job | None:
    """The most recently started job, running or not; None if none was ever started."""
    try:
        return Job.from_dict(json.loads(_record().read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def current_job() -> Job | None:
    """The job that is running now, or None (a record whose process has died counts as none)."""
    job = last_job()
    return job if job is not None and is_alive(job.pid, job.pid_start) else None


def start_job(kind: str, steps: list[Step], *, grace_s: float = GRACE_SECONDS) -> Job:
    """Start ``steps`` as one detached background job; refuse if another job is running."""
    if kind not in KINDS:
        raise GistlabError(f"Unknown job kind {kind!r}: use one of {', '.join(KINDS)}.")
    if not steps:
        raise GistlabError("A job needs at least one command.")
    with _locked():
        running = current_job()
        if running is not None:
            raise GistlabError(
                f"Another job is still running, the {running.describe()}: "
                "wait for it to finish or stop it on the Train page, then start again."
            )
        _stop_marker().unlink(missing_ok=True)
        job = Job(kind=kind, steps=steps, grace_s=grace_s)  # each step makes its folder when it starts
        _write(job)
        with open(jobs_dir() / "supervisor.log", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "core.training.jobs", str(_record())],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _children[proc.pid] = proc
        job.pid, job.pid_start = proc.pid, process_start(proc.pid)
        _write(job)
        return job


def _write(job: Job) -> None:
    write_json_atomic(_record(), asdict(job))


def _update(job: Job) -> None:
    """The supervisor's write of its record: after start_job's own (which holds the lock until done)."""
    with _locked():
        _write(job)


def start_training(settings: dict, arms: list[str], *, name: str = "", evaluate_on: str | None = None,
                   grace_s: float = GRACE_SECONDS) -> Job:
    """Train the arms in turn in one ``gistlab train`` process with the same settings (so the same seed
    and batches: a paired comparison), imports, data and guide loaded once.

    Each arm gets a fresh run directory ``<workspace>/runs/<time>-<arm>-s<seed>`` (``-pair-`` in the
    name when several arms run) with its output in ``train.log`` inside it, and the ``name`` (with
    its arm, when several) in ``name.txt``. A stop or a failure ends the job: later arms are not run.
    With ``evaluate_on`` (tasks, e.g. ``bundled``), ``gistlab eval`` runs on each finished run after
    all arms trained (``eval.log``).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    pair = "pair-" if len(arms) > 1 else ""
    template = str(subdir("runs") / f"{stamp}-{pair}{{loss}}-s{settings.get('seed', 0)}")
    out = template if len(arms) > 1 else template.replace("{loss}", arms[0])
    command = config_command("train", {**settings, "loss": arms, "out": out}, "train", log=LOG)
    steps, evals = [], []
    for k, arm in enumerate(arms):
        run_dir = Path(template.replace("{loss}", arm))
        label = f"{name} ({arm})" if name and len(arms) > 1 else name
        steps.append(Step([] if k else command, str(run_dir / LOG), str(run_dir), {**settings, "loss": arm}, label,
                          continues=k > 0))
        if evaluate_on:
            evals.append(eval_step({"model": str(run_dir), "tasks": evaluate_on}, run_dir / "eval.log"))
    return start_job("paired" if len(arms) > 1 else "train", steps + evals, grace_s=grace_s)


def eval_step(settings: dict, log: str | Path) -> Step:
    """A ``gistlab eval`` step with ``settings`` (``model``, ``tasks``, ...) in its config file."""
    return Step(config_command("eval", settings, "eval"), str(log), settings=settings)


def request_stop() -> Job | None:
    """Ask the running job to stop cleanly (STOP in its run dirs); returns it, or None if none runs."""
    job = current_job()
    if job is None:
        return None
    _stop_marker().write_text(str(time.time()))
    for run_dir in job.run_dirs:
        if run_dir.is_dir():
            (run_dir / "STOP").touch()
    return job


def stop_requested() -> bool:
    """Whether a stop was asked of the current (or last) job."""
    return _stop_marker().exists()


def progress(steps_done: int, total_steps: int, step_seconds: list[float]) -> tuple[float, float | None]:
    """Fraction done (0..1) and the seconds left, from the median step time; None before any step."""
    if total_steps <= 0:
        return 0.0, None
    fraction = min(max(steps_done / total_steps, 0.0), 1.0)
    if not step_seconds:
        return fraction, None
    ordered = sorted(step_seconds)
    median = ordered[len(ordered) // 2]
    return fraction, max(total_steps - steps_done, 0) * median


# ----------------------------------------------------------------------------- supervisor


def _supervise(child: subprocess.Popen, group: list[Step], job: Job) -> int:
    """Wait for ``child``, the process of the steps in ``group`` (the arms it trains, in order), recording
    each later arm's start; once a stop is requested, pass STOP on, then SIGINT, then SIGKILL it."""
    run_dirs = [Path(step.run_dir) for step in group if step.run_dir]
    deadlines: list[tuple[float, int]] | None = None
    while True:
        try:
            code = child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        else:
            _follow(group, job)
            for run_dir in run_dirs:  # each run consumed its STOP; one this loop touched again since must go too
                (run_dir / "STOP").unlink(missing_ok=True)
            return code
        _follow(group, job)
        if deadlines is None:
            if not _stop_marker().exists():
                continue
            first = time.monotonic() + (job.grace_s if run_dirs else 0.0)  # nothing reads STOP in an eval
            deadlines = [(first, signal.SIGINT), (first + job.grace_s, signal.SIGKILL)]
        for run_dir in run_dirs:
            if run_dir.is_dir():
                (run_dir / "STOP").touch()
        while deadlines and time.monotonic() >= deadlines[0][0]:
            child.send_signal(deadlines.pop(0)[1])


def _follow(group: list[Step], job: Job) -> None:
    """Record the later arms of ``group`` the process has started (it made their run directory): the
    arm before each ended then, with code 0. Names the new run (name.txt)."""
    for before, step in zip(group, group[1:]):
        if step.started is None and Path(step.run_dir).is_dir():
            before.ended = step.started = time.time()
            before.code = 0
            _write_name(step)
            _update(job)


def _write_name(step: Step) -> None:
    if step.name and step.run_dir:
        (Path(step.run_dir) / "name.txt").write_text(step.name + "\n")


def _mark_failed(step: Step) -> None:
    """A run that ended with an error before writing its status (bad data, a model that would not
    load): write ``failed`` with the log's error and its settings as config, so it is listed and
    says why, like a run that failed while training."""
    run_dir = Path(step.run_dir)
    if (run_dir / STATUS).is_file():
        return
    if not (run_dir / "config.json").is_file():
        write_json_atomic(run_dir / "config.json", {**(step.settings or {}), "out": str(run_dir)})
    when = now()
    RunStatus(RunState.FAILED, step_error(step.log) or f"exit code {step.code}", started=when, ended=when,
              total_steps=(step.settings or {}).get("steps")).write(run_dir)


def run_steps(job: Job) -> int:
    """The supervisor's loop: each command in turn (with the steps that continue it), until one fails,
    a stop is requested or a command leaves arms untrained (a stop ends the whole job).

    The job record gets each step's start, end and exit code, which the pages read for progress.
    """
    job.pid, job.pid_start = os.getpid(), process_start(os.getpid())  # the record may predate them
    k = 0
    while k < len(job.steps):
        group = [job.steps[k]]
        while k + len(group) < len(job.steps) and job.steps[k + len(group)].continues:
            group.append(job.steps[k + len(group)])
        k += len(group)
        if _stop_marker().exists():
            return 0
        first = group[0]
        Path(first.log).parent.mkdir(parents=True, exist_ok=True)
        _write_name(first)
        first.started = time.time()
        _update(job)
        with open(first.log, "ab") as log:
            child = subprocess.Popen(
                first.command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env={**os.environ, EVENTS_ENV: str(events_file(first.log))},
            )
            code = _supervise(child, group, job)
        last = [step for step in group if step.started is not None][-1]  # the arm the process ended in
        last.ended, last.code = time.time(), code
        _update(job)
        if code != 0:
            if last.run_dir:
                mark_interrupted(Path(last.run_dir), "killed after a stop request went unanswered")
                _mark_failed(last)
            return code
        if last is not group[-1]:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(run_steps(Job.from_dict(json.loads(Path(sys.argv[1]).read_text()))))
