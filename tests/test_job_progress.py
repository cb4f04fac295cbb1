"""core.training.job_progress: one fraction and ETA for a whole (paired, evaluated) job, and each step's state."""

from __future__ import annotations

import os

import pandas as pd

from core.fsio import write_json_atomic
from core.training import runs
from core.training.job_progress import job_progress
from core.training.events import Event, Kind, events_file, write_event
from core.training.jobs import Job, Step

NOW = 1_000_000.0


def run_dir(root, name, steps_done=0, total=20, state="running", seconds=1.0):
    """A run folder mid-training: status, and metrics with ``steps_done`` steps of ``seconds`` each."""
    path = root / name
    path.mkdir(parents=True)
    write_json_atomic(path / runs.CONFIG, {"loss": name, "steps": total})
    write_json_atomic(path / runs.STATUS, {"state": state, "steps_done": steps_done, "total_steps": total, "pid": os.getpid()})
    metrics = pd.DataFrame({"step": range(1, steps_done + 1), "loss": 1.0, "step_seconds": seconds})
    return path, metrics


def events(log, *found, fresh=False):
    """The events a step's command wrote beside its log (``fresh``: replacing earlier ones)."""
    if fresh:
        events_file(log).unlink(missing_ok=True)
    for event in found:
        write_event(events_file(log), event)


def train_step(path, started=None, ended=None, code=None, continues=False):
    return Step([] if continues else ["gistlab", "train"], str(path / "train.log"), str(path),
                {"loss": path.name, "steps": 20}, started=started, ended=ended, code=code, continues=continues)


def test_a_paired_job_has_one_eta_for_both_arms(tmp_path):
    gist, gist_metrics = run_dir(tmp_path, "gist", steps_done=5)
    mnrl = tmp_path / "mnrl"
    job = Job("paired", [train_step(gist, started=NOW - 30), train_step(mnrl)], started=NOW - 30)
    progress = job_progress(job, {"gist": gist_metrics}, now=NOW)
    # gist: 15 steps of 1 s left; mnrl in a process of its own: 25 s of start-up (30 s spent - 5 s of steps) + 20 steps
    assert progress.eta_s == 15 + 25 + 20
    assert progress.fraction == 30 / 90
    assert progress.phase == "training gist (arm 1 of 2) · step 5 of 20"
    assert [(s.run, s.state, s.done) for s in progress.steps] == [("gist", "running", 5), ("mnrl", "waiting", 0)]
    assert progress.eta_text() == "about 60 s left"


def test_a_later_arm_of_the_same_process_counts_no_second_start_up(tmp_path):
    gist, gist_metrics = run_dir(tmp_path, "gist", steps_done=5)
    mnrl, gist_st = tmp_path / "mnrl", tmp_path / "gist-st"
    steps = [train_step(gist, started=NOW - 30), train_step(mnrl, continues=True), train_step(gist_st, continues=True)]
    progress = job_progress(Job("paired", steps, started=NOW - 30), {"gist": gist_metrics}, now=NOW)
    assert progress.eta_s == 15 + 20 + 20  # the 25 s of imports and loading are not paid again
    assert [s.state for s in progress.steps] == ["running", "waiting", "waiting"]

    _, mnrl_metrics = run_dir(tmp_path, "mnrl", steps_done=20, state="completed")
    write_json_atomic(gist / runs.STATUS, {"state": "completed", "steps_done": 20, "total_steps": 20})
    steps = [train_step(gist, started=NOW - 60, ended=NOW - 40, code=0),
             train_step(mnrl, started=NOW - 40, ended=NOW - 16, code=0, continues=True),  # 4 s of start-up
             train_step(gist_st, started=NOW - 16, continues=True)]
    gist_metrics = pd.DataFrame({"step": range(1, 21), "loss": 1.0, "step_seconds": 1.0})
    later = job_progress(Job("paired", steps, started=NOW - 60), {"gist": gist_metrics, "mnrl": mnrl_metrics}, now=NOW)
    assert later.steps[2].state == "deleted"  # gist-st started but its folder is gone
    gist_st.mkdir()
    later = job_progress(Job("paired", steps, started=NOW - 60), {"gist": gist_metrics, "mnrl": mnrl_metrics}, now=NOW)
    assert later.steps[2].state == "starting" and later.eta_s == 20  # 4 s of start-up measured, 16 s spent
    assert later.phase == "loading models and data for gist-st (arm 3 of 3)"


def test_no_eta_before_the_first_step_and_evaluation_named_when_unknown(tmp_path):
    gist = tmp_path / "gist"
    gist.mkdir()
    evaluation = Step(["gistlab", "eval"], str(gist / "eval.log"), settings={"model": str(gist), "tasks": "bundled"})
    job = Job("train", [train_step(gist, started=NOW - 3), evaluation], started=NOW - 3)
    early = job_progress(job, {}, now=NOW)
    assert early.eta_s is None and early.eta_text() == "" and early.fraction == 0
    assert early.phase == "loading models and data for gist"

    run_dir(tmp_path, "g2", steps_done=10, total=20)
    g2, metrics = tmp_path / "g2", pd.DataFrame({"step": range(1, 11), "step_seconds": 2.0})
    evaluation.settings["model"] = str(g2)
    job.steps[0] = train_step(g2, started=NOW - 30)
    later = job_progress(job, {"g2": metrics}, now=NOW)
    assert later.eta_s == 20 and later.eta_excludes_eval
    assert later.fraction == (10 / 20 + 0) / 2  # no time for the evaluation yet: each step weighs the same
    assert later.eta_text() == "about 20 s left, then the evaluation"


def test_evaluation_steps_count_their_tasks_and_take_the_time_of_the_last(tmp_path):
    a, a_metrics = run_dir(tmp_path, "a", steps_done=20, state="completed")
    events(a / "eval.log", Event(Kind.EVALUATED, "T1"), Event(Kind.SKIPPED, "T2", "offline"), Event(Kind.EVALUATED, "T3"))
    events(a / "eval2.log", Event(Kind.EVALUATED, "T1"))
    steps = [train_step(a, started=NOW - 100, ended=NOW - 60, code=0),
             Step(["gistlab", "eval"], str(a / "eval.log"), settings={"model": str(a)}, started=NOW - 60, ended=NOW - 20,
                  code=0),
             Step(["gistlab", "eval"], str(a / "eval2.log"), settings={"model": str(a)}, started=NOW - 10)]
    progress = job_progress(Job("train", steps, started=NOW - 100), {"a": a_metrics}, now=NOW)
    assert [(s.kind, s.state, s.done) for s in progress.steps] == [
        ("train", "completed", 20), ("eval", "evaluated", 3), ("eval", "running", 1)]
    assert progress.eta_s == 30 and not progress.eta_excludes_eval  # 40 s per evaluation, 10 s spent
    overrun = job_progress(Job("train", steps, started=NOW - 100), {"a": a_metrics}, now=NOW + 60)
    assert overrun.eta_s == 0 and overrun.eta_text() == "almost done"  # slower than the last: no "0 s left"
    assert overrun.fraction == 0.99 and overrun.bar_text().startswith("99% · ")  # never 100% while one runs
    assert progress.phase == "evaluating a · model 2 of 2 · 1 tasks done"
    events(a / "eval2.log", Event(Kind.TASKS, total=6), Event(Kind.REUSED, "T1"), Event(Kind.REUSED, "T2"),
           Event(Kind.EVALUATED, "T3"), fresh=True)
    progress = job_progress(Job("train", steps, started=NOW - 100), {"a": a_metrics}, now=NOW)
    assert (progress.steps[2].done, progress.steps[2].total) == (3, 6)
    assert progress.phase == "evaluating a · model 2 of 2 · task 4 of 6"
    # 3 of 6 tasks counted in 10 s: 10 s more by its own rate, not the last evaluation's 40 s
    assert progress.eta_s == 10 and progress.bar_text() == (
        f"{progress.fraction:.0%} · evaluating a · model 2 of 2 · task 4 of 6 · about 10 s left")
    late = job_progress(Job("train", steps, started=NOW - 100), {"a": a_metrics}, now=NOW + 50)  # past the 40 s
    assert late.eta_s == 60 * 3 / 3 and late.fraction < 0.99 and "almost done" not in late.bar_text()


def test_every_view_words_a_steps_count_alike(tmp_path):
    """The bar's phase, the step lines and Past runs read these: no "0 task(s) done" beside "task 1 of 6"."""
    from core.training.job_progress import StepProgress, StepState
    from core.training.status import RunState

    assert StepProgress("train", "r", "gist", RunState.RUNNING, 9, 10).count_text() == "step 9 of 10"
    assert StepProgress("train", "r", "gist", RunState.RUNNING, 9, 10).steps_text() == "9 of 10"
    assert StepProgress("train", "r", "gist", RunState.STOPPED, 4).count_text() == "step 4"
    assert StepProgress("train", "r", "gist", StepState.WAITING, 0, 10).count_text() == ""
    assert StepProgress("eval", "r", "", RunState.RUNNING, 0, 6).count_text() == "task 1 of 6"
    assert StepProgress("eval", "r", "", RunState.RUNNING, 6, 6).count_text() == "task 6 of 6"
    assert StepProgress("eval", "r", "", RunState.RUNNING, 0).count_text() == "loading the model and its tasks"
    assert StepProgress("eval", "r", "", StepState.EVALUATED, 6, 6).count_text() == "6 of 6 tasks"
    assert StepProgress("eval", "r", "", StepState.WAITING).count_text() == ""


def test_a_run_that_failed_before_writing_says_why_and_a_deleted_one_is_named(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.log").write_text("loading\ngistlab: error: Data file 'x.csv' does not exist: check the path.\n")
    events(bad / "train.log", Event(Kind.ERROR, message="Data file 'x.csv' does not exist: check the path."))
    gone = tmp_path / "gone"
    steps = [train_step(bad, started=NOW - 5, ended=NOW - 1, code=2), train_step(gone, started=NOW - 1)]
    failed, deleted = job_progress(Job("paired", steps, started=NOW - 5), {}, now=NOW).steps
    assert (failed.state, failed.error) == ("failed", "Data file 'x.csv' does not exist: check the path.")
    assert deleted.state == "deleted" and "gone" in deleted.error


def test_before_any_evaluation_ends_a_counted_one_times_those_waiting(tmp_path):
    a, a_metrics = run_dir(tmp_path, "a", steps_done=20, state="completed")
    events(a / "eval1.log", Event(Kind.TASKS, total=6), *[Event(Kind.EVALUATED, f"T{k}") for k in range(3)])
    steps = [Step(["gistlab", "eval"], str(a / "eval1.log"), settings={"model": str(a)}, started=NOW - 30),
             Step(["gistlab", "eval"], str(a / "eval2.log"), settings={"model": "bundled:minilm-l3"})]
    progress = job_progress(Job("eval", steps, started=NOW - 30), {}, now=NOW)
    # 3 of 6 tasks in 30 s: 30 s more for this model, 60 s for the one waiting
    assert progress.eta_s == 30 + 60 and not progress.eta_excludes_eval
    assert progress.bar_text() == "25% · evaluating a · model 1 of 2 · task 4 of 6 · about 90 s left"
