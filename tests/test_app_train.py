"""Train page: launching through core.jobs, live progress and Stop, past runs, and bad inputs as errors."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")

# A stand-in for `gistlab train`: writes status and metrics like core.train, ends stopped on STOP.
FAKE_RUN = """
import json, os, pathlib, sys, time
run = pathlib.Path(sys.argv[1]); run.mkdir(parents=True, exist_ok=True)
(run / "config.json").write_text(json.dumps({"loss": "gist", "seed": 0}))
status = {"state": "running", "pid": os.getpid(), "steps_done": 3, "total_steps": 10}
(run / "metrics.jsonl").write_text("".join(json.dumps(
    {"step": s, "loss": 3.0 - s / 10, "masked_fraction": 0.1, "step_seconds": 2.0}) + "\\n" for s in (1, 2, 3)))
(run / "status.json").write_text(json.dumps(status))
while not (run / "STOP").exists():
    time.sleep(0.05)
(run / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("GISTLAB_HOME", str(home))
    yield home
    job = jobs.current_job()
    if job is not None:
        os.killpg(job.pid, signal.SIGKILL)
        jobs._children[job.pid].wait()


def open_train() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.run()
    return at.switch_page("views/train.py").run()


def click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def start_fake_run(home: Path) -> Path:
    run = home / "runs" / "20250101-000000-gist-s0"
    jobs.start_job("train", [jobs.Step([sys.executable, "-c", FAKE_RUN, str(run)], str(run / "train.log"), str(run))])
    deadline = time.monotonic() + 20
    while not (run / "status.json").exists():
        assert time.monotonic() < deadline, "the fake run did not start"
        time.sleep(0.05)
    return run


def test_start_launches_a_paired_job_with_the_form_settings(home, monkeypatch):
    started = {}
    monkeypatch.setattr(jobs, "start_training", lambda settings, arms: started.update(settings=settings, arms=arms))
    at = open_train()
    assert not at.exception and not at.error
    click(at, "Start training")
    assert not at.exception and not at.error
    assert started["arms"] == ["gist", "mnrl"]
    assert started["settings"] == {
        "student": "bundled:minilm-l3", "guide": "bundled:minilm-l6", "data": "bundled", "batch_size": 32,
        "steps": 20, "lr": 2e-5, "seed": 0, "margin_strategy": "absolute", "margin": 0.0,
        "contrast_anchors": True, "contrast_positives": True, "homogeneous": False,
    }


def test_blank_model_is_refused_before_anything_starts(home, monkeypatch):
    monkeypatch.setattr(jobs, "start_training", lambda *a: pytest.fail("must not start"))
    at = open_train()
    at.text_input[0].set_value("  ")
    click(at, "Start training")
    assert not at.exception
    assert "Student, guide and data must all be named" in at.error[0].value


def test_progress_eta_curves_and_stop(home):
    run = start_fake_run(home)
    at = open_train()
    assert not at.exception and not at.error
    bar = at.get("progress")[0]
    assert "step 3 of 10, about 14 s left" in bar.proto.text
    assert len(at.get("plotly_chart")) == 2
    click(at, "Stop")
    assert (run / "STOP").exists()
    assert "Stopping: the run ends cleanly" in at.info[0].value
    assert not [b for b in at.run().button if b.label == "Stop"]  # asked once: no second Stop
    deadline = time.monotonic() + 20
    while jobs.current_job() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert json.loads((run / "status.json").read_text())["state"] == "stopped"


def test_second_start_is_told_what_runs(home):
    start_fake_run(home)
    at = open_train()
    click(at, "Start training")
    assert not at.exception
    assert "Another job is still running, the train job (20250101-000000-gist-s0" in at.error[0].value


def test_failed_run_shows_the_cli_error(home):
    run = home / "runs" / "bad"
    run.mkdir(parents=True)
    (run / "train.log").write_text("loading\ngistlab: error: Data file 'x.csv' does not exist: check the path.\n")
    jobs._write(jobs.Job(kind="train", steps=[jobs.Step(["x"], str(run / "train.log"), str(run))], pid=0))
    at = open_train()
    assert not at.exception
    assert at.error[0].value == "bad: gistlab: error: Data file 'x.csv' does not exist: check the path."


def test_run_folder_deleted_underneath(home):
    gone = home / "runs" / "gone"
    jobs._write(jobs.Job(kind="train", steps=[jobs.Step(["x"], str(gone / "train.log"), str(gone))], pid=0))
    at = open_train()
    assert not at.exception
    assert "the run folder is gone" in at.warning[0].value


def test_a_paired_arm_that_never_started(home):
    first, second = home / "runs" / "p-gist", home / "runs" / "p-mnrl"
    second.mkdir(parents=True)
    (first / "train.log").parent.mkdir(parents=True)
    (first / "config.json").write_text(json.dumps({"loss": "gist"}))
    (first / "status.json").write_text(json.dumps({"state": "stopped", "steps_done": 4, "total_steps": None}))
    steps = [jobs.Step(["x"], str(d / "train.log"), str(d)) for d in (first, second)]
    jobs._write(jobs.Job(kind="paired", steps=steps, pid=0))
    at = open_train()
    assert not at.exception and not at.error
    assert "p-gist** · stopped · step 4 of ?" in at.get("progress")[0].proto.text
    assert "p-mnrl: never started." in [c.value for c in at.caption]


def test_past_runs_are_listed(home):
    run = home / "runs" / "20250101-000000-mnrl-s1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"loss": "mnrl", "seed": 1, "student": "s", "guide": "g"}))
    (run / "status.json").write_text(json.dumps({"state": "completed", "steps_done": 20, "total_steps": 20,
                                                 "started": "2025-01-01T00:00:00"}))
    at = open_train()
    assert not at.exception and not at.error
    frame = at.dataframe[0].value
    assert frame.loc[0, "run"] == run.name and frame.loc[0, "state"] == "completed"
