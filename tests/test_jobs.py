"""Background jobs: real detached processes, one per workspace, clean stop, kill fallback, dead pids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.training import jobs
from core.training.events import EVENTS_ENV, Event, Kind, events_file, read_events, step_error, write_event
from core.errors import GistlabError


@pytest.fixture(autouse=True)
def own_workspace(tmp_path, monkeypatch):
    """Each test gets its own workspace, hence its own job record; a job left running is ended."""
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "home"))
    yield
    job = jobs.current_job()
    if job is not None:
        os.killpg(job.pid, signal.SIGKILL)  # the supervisor leads its own process group
        jobs._children[job.pid].wait()


def wait_until_done(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while jobs.current_job() is not None:
        assert time.monotonic() < deadline, "the job did not end in time"
        time.sleep(0.1)


def python_step(code: str, run_dir: Path | None, log: Path) -> jobs.Step:
    return jobs.Step([sys.executable, "-c", code], str(log), str(run_dir) if run_dir else None)


# A stand-in for a training run: marks itself running, ends cleanly when STOP appears.
OBEYS_STOP = """
import json, pathlib, sys, time
run = pathlib.Path(sys.argv[1]); run.mkdir(parents=True, exist_ok=True)
(run / "status.json").write_text(json.dumps({"state": "running"}))
while not (run / "STOP").exists():
    time.sleep(0.05)
(run / "status.json").write_text(json.dumps({"state": "stopped"}))
"""


def test_job_runs_detached_and_logs(tmp_path):
    log = tmp_path / "run" / "job.log"
    job = jobs.start_job("eval", [python_step("print('hello from the job')", None, log)])
    assert job.pid > 0 and jobs.last_job().pid == job.pid
    wait_until_done()
    assert "hello from the job" in log.read_text()
    assert jobs.current_job() is None


def test_second_start_is_refused_with_what_runs(tmp_path):
    run = tmp_path / "runs" / "first"
    jobs.start_job("train", [python_step("import time; time.sleep(30)", run, run / "job.log")])
    with pytest.raises(GistlabError, match=r"Another job is still running, the train job \(first; pid"):
        jobs.start_job("train", [python_step("pass", None, tmp_path / "x.log")])


def test_stop_writes_STOP_and_the_run_ends_stopped(tmp_path):
    run = tmp_path / "runs" / "r1"
    step = jobs.Step([sys.executable, "-c", OBEYS_STOP, str(run)], str(run / "job.log"), str(run))
    jobs.start_job("train", [step])
    deadline = time.monotonic() + 10
    while not (run / "status.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert jobs.request_stop() is not None
    assert (run / "STOP").exists()
    wait_until_done()
    assert json.loads((run / "status.json").read_text())["state"] == "stopped"
    assert not (run / "STOP").exists()  # no stop request left behind for the next run in this folder


def test_unresponsive_command_is_interrupted_after_the_grace_period(tmp_path):
    run = tmp_path / "runs" / "deaf"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    ignores_sigint = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    jobs.start_job("train", [python_step(ignores_sigint, run, run / "job.log")], grace_s=0.5)
    time.sleep(0.5)
    started = time.monotonic()
    jobs.request_stop()
    wait_until_done()
    assert time.monotonic() - started < 10  # SIGINT ignored at 0.5 s, SIGKILL at 1 s
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"


def test_stop_during_a_paired_job_skips_the_second_arm(tmp_path):
    gist, mnrl = tmp_path / "runs" / "gist", tmp_path / "runs" / "mnrl"
    steps = [jobs.Step([sys.executable, "-c", OBEYS_STOP, str(d)], str(d / "job.log"), str(d))
             for d in (gist, mnrl)]
    jobs.start_job("paired", steps)
    deadline = time.monotonic() + 10
    while not (gist / "status.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    jobs.request_stop()
    wait_until_done()
    assert json.loads((gist / "status.json").read_text())["state"] == "stopped"
    assert not (mnrl / "status.json").exists()


def test_paired_job_runs_its_steps_in_order(tmp_path):
    log = tmp_path / "pair.log"
    steps = [python_step(f"print('arm {arm}')", None, log) for arm in ("gist", "mnrl")]
    jobs.start_job("paired", steps)
    wait_until_done()
    assert log.read_text().split() == ["arm", "gist", "arm", "mnrl"]


def test_an_arm_that_fails_on_its_data_is_recorded_and_the_next_arm_leaves_no_folder(tmp_path):
    gist, mnrl = tmp_path / "runs" / "gist", tmp_path / "runs" / "mnrl"
    fails = ("import sys; from core.training.events import emit; message = 'No such file: x.csv. Check the path.'; "
             "print('gistlab: error: ' + message, file=sys.stderr); emit('error', message=message); sys.exit(2)")
    settings = {"data": "x.csv", "steps": 5, "loss": "gist"}
    steps = [jobs.Step([sys.executable, "-c", fails], str(gist / "train.log"), str(gist), settings, "try (gist)"),
             jobs.Step([sys.executable, "-c", "pass"], str(mnrl / "train.log"), str(mnrl), settings)]
    jobs.start_job("paired", steps)
    wait_until_done()
    assert not mnrl.exists()  # the second arm never ran: no empty folder left behind
    status = json.loads((gist / "status.json").read_text())
    assert (status["state"], status["error"]) == ("failed", "No such file: x.csv. Check the path.")
    assert json.loads((gist / "config.json").read_text())["data"] == "x.csv"
    assert (gist / "name.txt").read_text().strip() == "try (gist)"
    first, second = jobs.last_job().steps
    assert first.started <= first.ended and first.code == 2 and second.started is None


def test_step_error_is_the_last_error_event_else_the_last_log_line(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("Traceback (most recent call last):\n  ...\nMemoryError: out of memory\n\n")
    assert step_error(log) == "MemoryError: out of memory"  # crashed before it could write an event
    for message in ("first", "second"):
        write_event(events_file(log), Event(Kind.ERROR, message=message))
    assert step_error(log) == "second"
    assert step_error(tmp_path / "missing.log") is None


def test_dead_pid_is_detected(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    record = jobs.Job(kind="train", steps=[jobs.Step(["x"], str(tmp_path / "l"))], pid=proc.pid)
    jobs._write(record)
    assert jobs.last_job().pid == proc.pid
    assert jobs.current_job() is None
    assert jobs.request_stop() is None


def test_zombie_and_reused_pid_are_not_alive():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not yet reaped: a zombie answers kill(pid, 0)
    assert not jobs.is_alive(zombie.pid)
    zombie.wait()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert jobs.is_alive(sleeper.pid, jobs.process_start(sleeper.pid))
        assert not jobs.is_alive(sleeper.pid, "1")  # same pid, other start time: another process
    finally:
        sleeper.kill()
        sleeper.wait()


def test_bad_kind_and_empty_job_are_refused():
    with pytest.raises(GistlabError, match="Unknown job kind"):
        jobs.start_job("dance", [jobs.Step(["x"], "l")])
    with pytest.raises(GistlabError, match="at least one command"):
        jobs.start_job("train", [])


def test_progress_fraction_and_eta():
    assert jobs.progress(0, 10, []) == (0.0, None)
    assert jobs.progress(5, 10, [1.0, 3.0, 2.0]) == (0.5, 10.0)
    assert jobs.progress(12, 10, [1.0]) == (1.0, 0.0)
    assert jobs.progress(3, 0, [1.0]) == (0.0, None)


def test_stopping_an_evaluation_interrupts_it_at_once(tmp_path):
    log = tmp_path / "eval.log"
    slow_eval = "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('interrupted')"
    jobs.start_job("eval", [python_step(slow_eval, None, log)], grace_s=30)
    time.sleep(0.5)
    jobs.request_stop()
    wait_until_done(timeout=10)
    assert "interrupted" in log.read_text()


def test_start_training_builds_one_cli_process_for_all_arms(tmp_path, monkeypatch):
    started = {}
    monkeypatch.setattr(jobs, "start_job", lambda kind, steps, grace_s: started.update(kind=kind, steps=steps))
    jobs.start_training({"steps": 2, "seed": 7, "contrast_anchors": False}, ["gist", "mnrl"])
    assert started["kind"] == "paired"
    gist, mnrl = started["steps"]
    assert gist.command[1:5] == ["-m", "core.cli", "train", "--config"] and gist.command[6:] == ["--log", "train.log"]
    template = gist.run_dir.replace("-pair-gist-", "-pair-{loss}-")
    config = json.loads(Path(gist.command[5]).read_text())  # the settings cross as a file in the jobs folder
    assert Path(gist.command[5]).parent == jobs.jobs_dir()
    assert config == {"steps": 2, "seed": 7, "contrast_anchors": False, "loss": ["gist", "mnrl"], "out": template}
    assert mnrl.command == [] and mnrl.continues and not gist.continues  # trained by gist's process
    assert Path(gist.run_dir).name.endswith("-pair-gist-s7") and Path(mnrl.run_dir).name.endswith("-pair-mnrl-s7")
    assert template.replace("{loss}", "mnrl") == mnrl.run_dir
    assert (Path(gist.log), Path(mnrl.log)) == (Path(gist.run_dir) / "train.log", Path(mnrl.run_dir) / "train.log")
    assert (gist.settings["loss"], mnrl.settings["loss"]) == ("gist", "mnrl")
    assert not Path(gist.run_dir).exists()  # made by the supervisor when the arm starts
    jobs.start_training({"steps": 2, "seed": 7}, ["gist", "mnrl"], name="first try", evaluate_on="bundled")
    names = [s.name for s in started["steps"]]
    assert names == ["first try (gist)", "first try (mnrl)", "", ""]
    evals = started["steps"][2:]
    assert [json.loads(Path(e.command[5]).read_text()) for e in evals] == [
        {"model": s.run_dir, "tasks": "bundled"} for s in (gist, mnrl)]
    assert [e.command[3:5] for e in evals] == [["eval", "--config"]] * 2
    assert all(e.run_dir is None and Path(e.log).name == "eval.log" and not e.continues for e in evals)
    jobs.start_training({"steps": 2, "seed": 7}, ["mnrl"])
    [alone] = started["steps"]
    assert json.loads(Path(alone.command[5]).read_text())["out"] == alone.run_dir
    assert Path(alone.run_dir).name.endswith("-mnrl-s7") and "pair" not in alone.run_dir


# A stand-in for `gistlab train --loss a,b --log train.log`: one process, one run folder per arm made when
# the arm starts, each arm's output in its own log; the next arm only after one that completed.
# argv: mode (complete | hold | fail-second | fail-first), then the arms' run folders.
ARMS_IN_ONE_PROCESS = """
import json, pathlib, sys, time
from core.training.events import emit, follow_log
mode, dirs = sys.argv[1], sys.argv[2:]
for k, d in enumerate(dirs):
    run = pathlib.Path(d); run.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush(); sys.stdout = sys.stderr = open(run / "train.log", "a")
    follow_log(run / "train.log")
    if mode == "fail-first":
        print("gistlab: error: No such file: x.csv. Check the path.", flush=True)
        emit("error", message="No such file: x.csv. Check the path."); sys.exit(2)
    if mode == "fail-second" and k == 1:
        (run / "status.json").write_text(json.dumps({"state": "failed", "error": "nan loss"}))
        print("gistlab: error: nan loss", flush=True); emit("error", message="nan loss"); sys.exit(2)
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    until = time.monotonic() + (60 if mode == "hold" else 0.6)
    while not (run / "STOP").exists() and time.monotonic() < until:
        time.sleep(0.05)
    state = "stopped" if (run / "STOP").exists() else "completed"
    (run / "STOP").unlink(missing_ok=True)
    (run / "status.json").write_text(json.dumps({"state": state}))
    print(f"arm {k} {state}", flush=True)
    if state != "completed":
        break
"""


def arms_job(tmp_path, mode: str, evaluate: bool = False) -> list[jobs.Step]:
    """A paired job's record as start_training builds it, over the stand-in: gist's step holds the command."""
    gist, mnrl = tmp_path / "runs" / "gist", tmp_path / "runs" / "mnrl"
    command = [sys.executable, "-c", ARMS_IN_ONE_PROCESS, mode, str(gist), str(mnrl)]
    steps = [jobs.Step(command, str(gist / "train.log"), str(gist), {"loss": "gist", "steps": 5}, "try (gist)"),
             jobs.Step([], str(mnrl / "train.log"), str(mnrl), {"loss": "mnrl", "steps": 5}, "try (mnrl)",
                       continues=True)]
    evals = [python_step("print('evaluated')", None, tmp_path / f"eval-{k}.log") for k in range(2)] if evaluate else []
    jobs.start_job("paired", steps + evals)
    return steps + evals


def test_arms_in_one_process_are_recorded_one_step_each(tmp_path):
    arms_job(tmp_path, "complete", evaluate=True)
    wait_until_done()
    gist, mnrl, *evals = jobs.last_job().steps
    assert gist.started <= gist.ended == mnrl.started <= mnrl.ended <= evals[0].started
    assert (gist.code, mnrl.code) == (0, 0) and gist.ended - gist.started >= 0.5  # seen within a poll (0.5 s)
    for step, k in ((gist, 0), (mnrl, 1)):
        run = Path(step.run_dir)
        assert json.loads((run / "status.json").read_text())["state"] == "completed"
        assert (run / "train.log").read_text() == f"arm {k} completed\n"  # each arm's output in its own log
        assert (run / "name.txt").read_text() == step.name + "\n"
    assert all(Path(e.log).read_text() == "evaluated\n" for e in evals)


def test_a_stop_in_the_first_arm_ends_the_job_and_the_second_never_starts(tmp_path):
    steps = arms_job(tmp_path, "hold", evaluate=True)
    gist, mnrl = Path(steps[0].run_dir), Path(steps[1].run_dir)
    wait_for(lambda: (gist / "status.json").is_file(), 10, "the first arm")
    assert jobs.request_stop() is not None
    wait_until_done()
    assert json.loads((gist / "status.json").read_text())["state"] == "stopped"
    assert not mnrl.exists() and not (gist / "STOP").exists()
    first, second, *evals = jobs.last_job().steps
    assert first.code == 0 and first.ended is not None
    assert second.started is None and all(e.started is None for e in evals)  # nothing ran after the stop


def test_a_failing_later_arm_is_recorded_and_the_first_keeps_its_run(tmp_path):
    arms_job(tmp_path, "fail-second", evaluate=True)
    wait_until_done()
    gist, mnrl, *evals = jobs.last_job().steps
    assert (gist.code, mnrl.code) == (0, 2) and all(e.started is None for e in evals)
    assert json.loads((Path(gist.run_dir) / "status.json").read_text())["state"] == "completed"
    assert json.loads((Path(mnrl.run_dir) / "status.json").read_text()) == {"state": "failed", "error": "nan loss"}
    assert step_error(mnrl.log) == "nan loss" and "error" not in Path(gist.log).read_text()
    assert jobs.last_job().problems() == (["nan loss"], [])


def test_a_process_failing_before_its_first_arm_fails_that_arm_and_leaves_no_second_folder(tmp_path):
    arms_job(tmp_path, "fail-first")
    wait_until_done()
    gist, mnrl = jobs.last_job().steps
    status = json.loads((Path(gist.run_dir) / "status.json").read_text())
    assert (status["state"], status["error"]) == ("failed", "No such file: x.csv. Check the path.")
    assert gist.code == 2 and mnrl.started is None and not Path(mnrl.run_dir).exists()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def tiny_pairs(tmp_path) -> Path:
    path = tmp_path / "pairs.csv"
    rows = [f"word {i} in a sentence,the meaning of word {i}" for i in range(16)]
    path.write_text("anchor,positive\n" + "\n".join(rows) + "\n")
    return path


def tiny_settings(model: Path, data: Path, steps: int) -> dict:
    return {"student": str(model), "guide": str(model), "data": str(data), "batch_size": 4,
            "steps": steps, "seed": 0}


def test_an_eval_job_is_described_by_its_models(tmp_path):
    steps = [jobs.eval_step({"model": m, "tasks": "bundled"}, tmp_path / "eval.log")
             for m in ("bundled:minilm-l3", str(tmp_path / "runs" / "g0"))]
    assert jobs.Job(kind="eval", steps=steps, pid=7).describe().startswith(
        "eval job (bundled:minilm-l3, g0; pid 7, started ")


def test_problems_read_back_what_the_cli_reported(tmp_path, capsys, monkeypatch):
    from core.cli import main

    log = tmp_path / "eval.log"
    write_event(events_file(log), Event(Kind.EVALUATED, "WordNetSTS", "1.0 s"))
    write_event(events_file(log), Event(Kind.SKIPPED, "SciFact", "offline"))
    monkeypatch.setenv(EVENTS_ENV, str(events_file(log)))
    assert main(["eval", "--model", str(tmp_path / "missing"), "--tasks", "bundled"]) == 2
    printed = capsys.readouterr().err
    errors, skipped = jobs.Job(kind="eval", steps=[jobs.Step(["x"], str(log))], pid=0).problems()
    assert errors == [printed.strip().removeprefix("gistlab: error: ")] and "missing" in errors[0]
    assert skipped == ["skipped SciFact: offline"]
    assert jobs.Job(kind="eval", steps=[jobs.Step(["x"], str(tmp_path / "none.log"))], pid=0).problems() == ([], [])


@pytest.mark.slow
def test_real_paired_job_trains_both_arms_in_one_process(tiny_model_dir, tiny_pairs):
    from core.training.runs import read_metrics, read_status

    job = jobs.start_training(tiny_settings(tiny_model_dir, tiny_pairs, 2), ["gist", "mnrl"], name="pair")
    wait_until_done(timeout=240)
    gist, mnrl = job.run_dirs
    for run, arm in ((gist, "gist"), (mnrl, "mnrl")):
        assert read_status(run).state == "completed", (run / "train.log").read_text()[-2000:]
        assert list(read_metrics(run)["step"]) == [1, 2] and (run / "model").is_dir()
        assert (run / "name.txt").read_text() == f"pair ({arm})\n"
        assert f"{arm}: completed after 2 of 2 steps" in (run / "train.log").read_text()
    assert "mnrl: completed" not in (gist / "train.log").read_text()  # each arm's output in its own log
    first, second = jobs.last_job().steps
    assert first.code == second.code == 0 and first.ended == second.started < second.ended


@pytest.mark.slow
def test_real_paired_job_stopped_in_its_first_arm_never_starts_the_second(tiny_model_dir, tiny_pairs):
    from core.training.runs import read_status

    job = jobs.start_training(tiny_settings(tiny_model_dir, tiny_pairs, 10_000), ["gist", "mnrl"])
    gist, mnrl = job.run_dirs
    wait_for(lambda: (gist / "status.json").is_file() and read_status(gist).steps_done >= 1, 180,
             "the first step")
    jobs.request_stop()
    wait_until_done(timeout=60)
    status = read_status(gist)
    assert status.state == "stopped" and status.steps_done < 10_000
    assert (gist / "model").is_dir() and not (gist / "STOP").exists()  # saved, and the stop request consumed
    assert not mnrl.exists() and "not run: mnrl" in (gist / "train.log").read_text()


def test_a_real_eval_job_counts_a_skipped_task_once(tmp_path):
    """`gistlab eval` as a background job: a bundled task evaluated, an official one skipped offline
    (HF_HUB_OFFLINE, set for the tests), each reported once in its events, so the page counts two tasks."""
    from core.training.job_progress import job_progress

    log = tmp_path / "eval.log"
    jobs.start_job("eval", [jobs.eval_step({"model": "bundled:minilm-l3", "tasks": "WordNetSTS,STSBenchmark",
                                            "out": str(tmp_path / "results")}, log)])
    wait_until_done(300)
    job = jobs.last_job()
    assert job.steps[0].code == 0, log.read_text()[-2000:]
    kinds = [(e.kind, e.task) for e in read_events(events_file(log))]
    assert kinds == [(Kind.STARTED, None), (Kind.TASKS, None), (Kind.EVALUATED, "WordNetSTS"),
                     (Kind.SKIPPED, "STSBenchmark")]
    errors, skipped = job.problems()
    assert errors == [] and len(skipped) == 1 and skipped[0].startswith("skipped STSBenchmark: ")
    assert log.read_text().count("skipped STSBenchmark") == 1  # the human log says it once too
    [step] = job_progress(job, {}).steps
    assert (step.state, step.done) == ("evaluated", 2)


def test_no_progress_or_error_is_read_from_log_text():
    """Pages and the engine read events, not log wording: no prefix constants, no prefix matching."""
    import re

    root = Path(__file__).resolve().parents[1]
    gone = re.compile(r"ERROR_PREFIX|SKIPPED_PREFIX|REUSED_PREFIX|TASKS_PREFIX|EVAL_DONE_PREFIXES|"
                      r"startswith\(\s*[\"'](gistlab: error|skipped|evaluated|reused|failed|evaluating)")
    found = [f"{path.relative_to(root)}:{k}" for folder in ("core", "app") for path in (root / folder).rglob("*.py")
             for k, line in enumerate(path.read_text().splitlines(), 1) if gone.search(line)]
    assert found == []
