"""Reading run directories: tolerant of runs still writing, clear about runs that are gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.fsio import write_json_atomic
from core.training import runs
from core.training.events import Event, Kind, events_file, write_event
from core.training.status import RunState
from core.errors import GistlabError


def make_run(root, name, state="completed", pid=None, started="2026-01-01T10:00:00+00:00"):
    """A run folder as core.training.train writes it, without training."""
    path = root / name
    path.mkdir(parents=True)
    write_json_atomic(path / runs.CONFIG, {"loss": "gist", "student": "s", "guide": "g", "data": "d", "seed": 0})
    write_json_atomic(path / runs.STATUS, {"state": state, "pid": pid or os.getpid(), "started": started,
                                         "steps_done": 2, "total_steps": 2, "error": None})
    return path


def test_metrics_skip_a_half_written_last_line(tmp_path):
    run = make_run(tmp_path, "r")
    lines = [json.dumps({"step": s, "loss": 1.0 / s, "masked_fraction": 0.1, "step_seconds": 0.5}) for s in (1, 2)]
    (run / runs.METRICS).write_text("\n".join(lines) + '\n{"step": 3, "lo')
    metrics = runs.read_metrics(run)
    assert list(metrics["step"]) == [1, 2] and metrics["loss"].iloc[1] == 0.5


def test_metrics_and_masks_before_the_first_step(tmp_path):
    run = make_run(tmp_path, "fresh", state="running")
    assert runs.read_metrics(run).empty and "loss" in runs.read_metrics(run).columns
    masks = runs.read_masks(run)
    assert masks.empty and list(masks.columns) == runs.MASK_SCHEMA.names


def test_batches_by_step(tmp_path):
    run = make_run(tmp_path, "b")
    (run / runs.BATCHES).write_text('{"step": 1, "rows": [4, 2]}\n{"step": 2, "rows": [0, 9]}\n')
    assert runs.read_batch(run, 2) == [0, 9]
    with pytest.raises(GistlabError, match="no step 3"):
        runs.read_batch(run, 3)


def test_running_status_with_a_dead_pid_reads_died(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = make_run(tmp_path, "d", state="running", pid=dead.pid)
    status = runs.read_status(run)
    assert status.state == RunState.DIED and "without saying how" in status.error
    alive = make_run(tmp_path, "a", state="running")  # this test's own pid
    assert runs.read_status(alive).state == "running"


def test_missing_and_foreign_folders_are_clear_errors(tmp_path):
    with pytest.raises(runs.RunNotFound, match="does not exist"):
        runs.read_status(tmp_path / "deleted")
    (tmp_path / "photos").mkdir()
    with pytest.raises(GistlabError, match="is not a training run"):
        runs.read_config(tmp_path / "photos")
    with pytest.raises(FileNotFoundError):  # the app's pages catch it as such
        runs.read_metrics(tmp_path / "deleted")
    half = tmp_path / "half"
    half.mkdir()
    (half / runs.CONFIG).write_text("{}")
    with pytest.raises(runs.RunNotFound, match="status.json is missing"):
        runs.read_status(half)


def test_list_runs_newest_first_skipping_non_runs(tmp_path):
    make_run(tmp_path, "old", started="2026-01-01T10:00:00+00:00")
    make_run(tmp_path, "new", state="stopped", started="2026-02-01T10:00:00+00:00")
    (tmp_path / "not-a-run").mkdir()
    table = runs.list_runs(tmp_path)
    assert list(table["run"]) == ["new", "old"] and list(table["state"]) == ["stopped", "completed"]
    assert runs.list_runs(tmp_path / "nothing-here").empty


def test_names_resolve_under_the_workspace_runs(tmp_path):
    make_run(runs.runs_root(), "named-run")
    assert runs.resolve("named-run") == runs.runs_root() / "named-run"
    assert "named-run" in set(runs.list_runs()["run"])


def test_request_stop_writes_stop(tmp_path):
    run = make_run(tmp_path, "s", state="running")
    runs.request_stop(run)
    assert (run / runs.STOP).exists()


def test_list_runs_columns_name_duration_and_final_loss(tmp_path):
    path = make_run(tmp_path, "r1", started="2026-01-01T10:00:00+00:00")
    status = json.loads((path / runs.STATUS).read_text())
    write_json_atomic(path / runs.STATUS, {**status, "ended": "2026-01-01T10:01:35+00:00"})
    write_json_atomic(path / runs.CONFIG, {"loss": "mnrl", "margin": 0.1, "margin_strategy": "relative",
                                         "batch_size": 16, "lr": 3e-5, "seed": 2})
    (path / runs.METRICS).write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.25}\n{"step": 3, "lo')
    runs.set_name(path, "  my   first run ")
    row = runs.list_runs(tmp_path).iloc[0]
    assert (row["name"], row["margin"], row["margin_strategy"], row["batch_size"], row["lr"]) == (
        "my first run", 0.1, "relative", 16, 3e-5)
    assert row["duration_s"] == 95 and row["final_loss"] == 2.25  # the torn last line is skipped
    runs.set_name(path, "")
    assert runs.run_name(path) == "" and not (path / runs.NAME).exists()


def test_list_runs_shows_runs_that_failed_or_start_before_writing_their_files(tmp_path, monkeypatch):
    from core.training import jobs

    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / runs.LOG).write_text("gistlab: error: Data file 'x.csv' does not exist: check the path.\n")
    write_event(events_file(failed / runs.LOG), Event(Kind.ERROR, message="Data file 'x.csv' does not exist: check the path."))
    starting = tmp_path / "starting"
    starting.mkdir()
    (starting / runs.LOG).write_text("")
    (tmp_path / "empty-folder").mkdir()
    job = jobs.Job("train", [jobs.Step(["x"], str(starting / runs.LOG), str(starting))])
    monkeypatch.setattr(jobs, "current_job", lambda: job)
    table = runs.list_runs(tmp_path).set_index("run")
    assert list(table.index) == ["starting", "failed"]  # the running one first; no empty folder
    assert table.loc["starting", "state"] == "starting"
    assert table.loc["failed", "state"] == "failed"
    assert table.loc["failed", "error"] == "Data file 'x.csv' does not exist: check the path."


def test_delete_run_frees_its_space_but_never_a_running_run(tmp_path):
    done = make_run(tmp_path, "done")
    (done / runs.MODEL).mkdir()
    (done / runs.MODEL / "model.safetensors").write_bytes(b"0" * 1000)
    assert runs.run_bytes(done) > 1000
    assert runs.delete_run(done) > 1000 and not done.exists()
    running = make_run(tmp_path, "running", state="running")
    with pytest.raises(GistlabError, match="stop it first"):
        runs.delete_run(running)
    assert running.is_dir()
    (tmp_path / "photos").mkdir()
    with pytest.raises(GistlabError, match="not a training run"):
        runs.delete_run(tmp_path / "photos")


def test_names_are_data_never_paths(tmp_path):
    """A linked name.txt is replaced, not written through; a run "name" with .. never leaves runs/."""
    run = make_run(tmp_path, "r")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    (run / runs.NAME).symlink_to(outside)
    assert runs.run_name(run) == ""  # a link is not read either
    runs.set_name(run, "mine")
    assert outside.read_text() == "keep me\n" and not (run / runs.NAME).is_symlink()
    assert runs.run_name(run) == "mine"

    make_run(runs.runs_root().parent, "escaped")  # <workspace>/escaped: ../escaped from runs/
    for name in ("../escaped", "..", "."):
        with pytest.raises(runs.RunNotFound):
            runs.resolve(name)
    with pytest.raises(runs.RunNotFound):
        runs.set_name("../escaped", "x")
    assert not (runs.runs_root().parent / "escaped" / runs.NAME).exists()


def test_linked_run_folders_are_neither_listed_renamed_nor_deleted(tmp_path):
    """A link in the runs folder leads elsewhere: listing skips it, rename and delete refuse in one line."""
    elsewhere = make_run(tmp_path / "elsewhere", "real")
    root = tmp_path / "runs"
    make_run(root, "own")
    (root / "linked").symlink_to(elsewhere)
    assert list(runs.list_runs(root)["run"]) == ["own"]
    for act in (lambda: runs.set_name(root / "linked", "x"), lambda: runs.delete_run(root / "linked")):
        with pytest.raises(GistlabError, match="is a link to .*remove the link itself") as caught:
            act()
        assert "\n" not in str(caught.value)
    assert (elsewhere / runs.CONFIG).is_file() and not (elsewhere / runs.NAME).exists()


def test_gistlab_runs_lists_the_past_runs_columns(tmp_path, capsys):
    from core.cli import main

    path = make_run(tmp_path, "r1")
    write_json_atomic(path / runs.CONFIG, {"loss": "mnrl", "margin": 0.1, "batch_size": 16, "lr": 3e-5, "seed": 2})
    runs.set_name(path, "first")
    assert main(["runs", "--root", str(tmp_path)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:9] == ["name", "run", "state", "loss", "margin", "batch", "lr", "steps", "duration"]
    assert row.split()[:8] == ["first", "r1", "completed", "mnrl", "0.10", "16", "3.0e-05", "2"]
    assert main(["runs", "--root", str(tmp_path / "none")]) == 0
    assert "No runs in" in capsys.readouterr().out
