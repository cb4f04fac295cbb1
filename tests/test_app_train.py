"""Train page: launching through core.training.jobs, live progress and Stop, past runs, and bad inputs as errors."""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.palette import ARM_COLORS
from core.training import jobs
from core.training.events import Event, Kind, events_file, write_event

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")

# A stand-in for `gistlab train`: writes status and metrics like core.training.train, ends stopped on STOP.
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
def home(job_home):
    return job_home


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
    monkeypatch.setattr(jobs, "start_training", lambda settings, arms, **options: started.update(
        settings=settings, arms=arms, options=options))
    at = open_train()
    assert not at.exception and not at.error
    next(t for t in at.text_input if t.label == "Name (optional)").set_value("first try")
    next(c for c in at.checkbox if c.label == "Evaluate when finished").check()
    click(at, "Start training")
    assert not at.exception and not at.error
    assert started["arms"] == ["gist", "mnrl"]
    assert started["options"] == {"name": "first try", "evaluate_on": "bundled"}
    assert started["settings"] == {
        "student": "bundled:minilm-l3", "guide": "bundled:minilm-l6", "data": "bundled", "batch_size": 32,
        "steps": 20, "lr": 2e-5, "seed": 0, "margin_strategy": "absolute", "margin": 0.0,
        "contrast_anchors": True, "contrast_positives": True, "homogeneous": True,
    }
    next(n for n in at.number_input if n.label.startswith("False-negative rate")).set_value(0.1)
    click(at, "Start training")
    assert started["settings"]["false_negatives"] == 0.1  # becomes gistlab train --false-negatives 0.1


@pytest.mark.parametrize("field,value,needle", [
    ("Guide", "org/no-such-guide", "The guide 'org/no-such-guide' is not in the local Hugging Face cache"),
    ("Data", "no-such-file.csv", "No such file: no-such-file.csv"),
    ("Student", "bundled:nope", "Unknown bundled student 'bundled:nope'"),
])
def test_bad_models_and_data_are_refused_before_launch(home, monkeypatch, field, value, needle):
    monkeypatch.setattr(jobs, "start_training", lambda *a, **k: pytest.fail("must not start"))
    at = open_train()
    next(t for t in at.text_input if t.label == field).set_value(value)
    click(at, "Start training")
    assert not at.exception
    assert len(at.error) == 1 and needle in at.error[0].value


def test_blank_model_is_refused_before_anything_starts(home, monkeypatch):
    monkeypatch.setattr(jobs, "start_training", lambda *a, **k: pytest.fail("must not start"))
    at = open_train()
    next(t for t in at.text_input if t.label == "Student").set_value("  ")
    click(at, "Start training")
    assert not at.exception
    assert "Student, guide and data must all be named" in at.error[0].value


def test_progress_eta_curves_and_stop(home):
    run = start_fake_run(home)
    at = open_train()
    assert not at.exception and not at.error
    bar = at.get("progress")[0]
    assert "training gist · step 3 of 10 · about 14 s left" in bar.proto.text
    assert len(at.get("plotly_chart")) == 2
    click(at, "Stop")
    assert jobs.stop_requested()  # the run's own STOP file may already be consumed: the fake run ends at once
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


def finished_job(*run_dirs: Path, kind: str = "train", ran: int | None = None) -> None:
    """A job record as the supervisor leaves it: the first ``ran`` steps started and ended."""
    ran = len(run_dirs) if ran is None else ran
    steps = [jobs.Step(["x"], str(d / "train.log"), str(d), started=1.0 if k < ran else None,
                       ended=2.0 if k < ran else None, code=1 if k < ran else None) for k, d in enumerate(run_dirs)]
    jobs._write(jobs.Job(kind=kind, steps=steps, pid=0))


def write_run(home: Path, name: str, loss: str, steps: int = 1, state: str = "completed", **config) -> Path:
    run = home / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"loss": loss, "seed": 0, "guide": "bundled:minilm-l6", **config}))
    (run / "status.json").write_text(json.dumps({
        "state": state, "steps_done": steps, "total_steps": 20, "started": f"2025-01-01T00:00:0{len(name) % 10}",
        "ended": "2025-01-01T00:01:00"}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": s, "loss": 2.0 - s / 10, "masked_fraction": 0.2, "step_seconds": 1.0}) + "\n" for s in range(1, steps + 1)))
    return run


def test_failed_run_shows_its_error_without_the_cli_prefix_and_no_empty_charts(home):
    run = home / "runs" / "bad"
    run.mkdir(parents=True)
    (run / "train.log").write_text("loading\ngistlab: error: Data file 'x.csv' does not exist: check the path.\n")
    write_event(events_file(run / "train.log"), Event(Kind.ERROR, message="Data file 'x.csv' does not exist: check the path."))
    finished_job(run)
    at = open_train()
    assert not at.exception
    assert at.error[0].value.endswith("**bad** · failed: Data file 'x.csv' does not exist: check the path.")
    assert not at.get("plotly_chart")
    frame = at.dataframe[0].value  # listed in Past runs too, with its reason
    assert frame.loc[0, "state"] == "failed" and frame.loc[0, "error"].startswith("Data file 'x.csv'")
    assert "gistlab: error" not in " ".join(e.value for e in at.error)


def points(values) -> list:
    """A plotly trace's x or y as a list (plotly sends numeric arrays as base64 ``bdata``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_step_one_draws_markers_in_the_arm_colours(home):
    gist, mnrl = write_run(home, "p-gist", "gist"), write_run(home, "p-mnrl", "mnrl")
    finished_job(gist, mnrl, kind="paired")
    at = open_train()
    assert not at.exception and not at.error
    loss, masked = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    for figure in (loss, masked):
        traces = {trace["name"]: trace for trace in figure["data"]}
        assert set(traces) == {"p-gist", "p-mnrl"}
        assert all(trace["mode"] == "lines+markers" and points(trace["x"]) == [1] for trace in traces.values())
        assert (traces["p-gist"]["line"]["color"], traces["p-mnrl"]["line"]["color"]) == (
            ARM_COLORS["gist"], ARM_COLORS["mnrl"])


def test_run_folder_deleted_underneath(home):
    finished_job(home / "runs" / "gone")
    at = open_train()
    assert not at.exception
    assert "the run folder is gone" in at.warning[0].value


def test_a_paired_arm_that_never_started(home):
    first, second = home / "runs" / "p-gist", home / "runs" / "p-mnrl"
    (first / "train.log").parent.mkdir(parents=True)
    (first / "config.json").write_text(json.dumps({"loss": "gist"}))
    (first / "status.json").write_text(json.dumps({"state": "stopped", "steps_done": 4, "total_steps": None}))
    finished_job(first, second, kind="paired", ran=1)
    at = open_train()
    assert not at.exception and not at.error
    lines = [m.value for m in at.markdown]
    assert any(line.endswith("gist **p-gist** · stopped · step 4") for line in lines)
    assert any("**p-mnrl** · not run" in line for line in lines)
    assert not second.exists()


def test_past_runs_list_the_running_run_with_the_columns_that_matter(home):
    done = write_run(home, "20250101-000000-mnrl-s1", "mnrl", steps=3, margin=0.1, batch_size=16, lr=3e-5)
    (done / "name.txt").write_text("baseline\n")
    run = start_fake_run(home)
    at = open_train()
    assert not at.exception and not at.error
    frame = at.dataframe[0].value.set_index("run")
    assert list(frame.index) == [run.name, done.name]
    assert (frame.loc[run.name, "state"], frame.loc[run.name, "steps"]) == ("running", "3 of 10")  # the bar's count
    row = frame.loc[done.name]
    assert (row["name"], row["margin"], row["batch"], row["lr"], row["steps"], row["final loss (own scale)"]) == (
        "baseline", 0.1, 16, 3e-5, "3 of 20", 1.7)
    assert row["duration"].endswith(" s")


def select(at: AppTest, *rows: int) -> AppTest:
    at.session_state["past_runs"] = {"selection": {"rows": list(rows), "columns": []}}
    return at.run()


def test_a_run_is_renamed_and_deleted_only_after_confirmation(home):
    run = write_run(home, "r-gist", "gist")
    at = select(open_train(), 0)
    links = {link.proto.page: link.proto.query_string for link in at.get("page_link")}
    assert links["inspect"] == "run=r-gist&step=1" and links["results"] == "run=r-gist"
    next(t for t in at.text_input if t.label == "Name").set_value("my run")
    click(at, "Rename")
    assert (run / "name.txt").read_text().strip() == "my run"
    at = select(at, 0)
    click(at, "Delete 1 run(s)…")
    assert not at.exception
    assert any("Delete **1 run(s)** (0 MB): r-gist?" in m.value for m in at.markdown)
    assert run.is_dir()  # asked, not done
    click(at, "Delete")
    assert not at.exception and not run.exists()
    assert "No runs yet" in at.info[0].value


def test_two_runs_are_compared_in_their_arm_colours(home):
    write_run(home, "a-gist", "gist", steps=4)
    write_run(home, "b-mnrl", "mnrl", steps=4)
    write_run(home, "c-gist", "gist", steps=4)
    at = select(open_train(), 0, 1, 2)
    assert not at.exception and not at.error
    loss = json.loads(at.get("plotly_chart")[0].proto.spec)
    colors = {trace["name"]: trace["line"]["color"] for trace in loss["data"]}
    assert colors["b-mnrl"] == ARM_COLORS["mnrl"]
    assert ARM_COLORS["gist"] in {colors["a-gist"], colors["c-gist"]} and colors["a-gist"] != colors["c-gist"]
    axes = {trace["name"]: trace["yaxis"] for trace in loss["data"]}  # no shared loss axis: a panel per loss
    assert axes["a-gist"] == axes["c-gist"] != axes["b-mnrl"]
    assert {a["text"] for a in loss["layout"]["annotations"]} == {"gist loss", "mnrl loss"}
    assert loss["layout"]["yaxis2"].get("matches") is None
    assert "step %{x}" in loss["data"][0]["hovertemplate"]  # not "step=3<br>loss=14.15767"
    settings = at.dataframe[1].value
    assert list(settings.columns) == ["a-gist", "b-mnrl", "c-gist"] or set(settings.columns) == set(colors)
    assert settings.loc["loss"].tolist().count("gist") == 2


def test_a_run_that_learns_nothing_is_flagged_on_the_page(home):
    run = write_run(home, "idle-gist", "gist", steps=6)
    status = json.loads((run / "status.json").read_text())
    warning = "learns nothing: steps 1-5 masked 100% of in-batch candidates with loss 0; lower --margin"
    (run / "status.json").write_text(json.dumps({**status, "warning": warning}))
    finished_job(run)
    at = open_train()
    assert not at.exception
    assert [w.value for w in at.warning] == [f"idle-gist: {warning}"]


def test_an_upload_is_mapped_and_trained_on(home, monkeypatch):
    import core.training.train  # noqa: F401 (imported before the page's warm-up thread: transformers' lazy
    from core.corpus.data import load_pairs  # imports race with the upload's reading in another thread)

    started = {}
    monkeypatch.setattr(jobs, "start_training", lambda settings, arms, **options: started.update(settings=settings))
    at = open_train()
    qa = "question,answer\n" + "".join(f"question {i},answer {i}\n" for i in range(6))
    at.get("file_uploader")[0].set_value(("qa.csv", qa.encode(), "text/plain")).run()
    assert not at.exception and "pick which column is which" in at.warning[0].value
    at.selectbox(key="map_anchor").set_value("question").run()
    at.selectbox(key="map_positive").set_value("answer").run()
    data = next(t for t in at.text_input if t.label == "Data").value
    assert data.endswith(".parquet") and "uploads" in data
    next(n for n in at.number_input if n.label == "Batch size").set_value(4)
    next(c for c in at.checkbox if c.label.startswith("One task per batch")).uncheck()
    click(at, "Start training")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert started["settings"]["data"] == data
    assert load_pairs(data)["anchor"] == [f"question {i}" for i in range(6)]


def test_the_analysis_pages_settings_start_the_form(home):
    at = open_train()
    at.session_state["lab_settings"] = at.session_state["lab_settings"].__class__(
        guide="bundled:mpnet-base", student="bundled:minilm-l3", margin=0.1, seed=3, batch_size=64)
    at.run()
    fields = {w.label: w.value for w in [*at.text_input, *at.number_input]}
    assert (fields["Guide"], fields["Margin"], fields["Seed"], fields["Batch size"]) == ("bundled:mpnet-base", 0.1, 3, 64)
