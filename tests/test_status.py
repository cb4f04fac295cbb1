"""core.training.status: status.json's one shape, its writer and its reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import GistlabError
from core.training.status import RunNotFound, RunState, RunStatus, mark_interrupted

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def test_written_status_reads_back_and_keeps_its_json_shape(tmp_path):
    status = RunStatus(RunState.RUNNING, started="2026-01-01T10:00:00+00:00", pid=1, total_steps=3)
    status.write(tmp_path)
    data = json.loads((tmp_path / "status.json").read_text())
    assert data["state"] == "running" and data["steps_done"] == 0 and data["total_steps"] == 3
    assert set(data) >= {"state", "error", "warning", "started", "ended", "steps_done", "total_steps", "pid"}
    assert RunStatus.read(tmp_path, live=False) == status
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left


def test_a_running_status_whose_process_is_gone_reads_died(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    RunStatus(RunState.RUNNING, pid=dead.pid).write(tmp_path)
    status = RunStatus.read(tmp_path)
    assert status.state == RunState.DIED == "died" and "killed or crashed" in status.error
    assert RunStatus.read(tmp_path, live=False).state == RunState.RUNNING


@pytest.mark.skipif(not DEMO.is_dir(), reason="no shipped demo")
def test_shipped_demo_statuses_still_read():
    found = sorted(DEMO.glob("*/status.json"))
    assert found
    for path in found:
        status = RunStatus.read(path.parent)
        assert status.state == RunState.COMPLETED and status.steps_done == status.total_steps
        assert status.duration_seconds() > 0


def test_old_and_unknown_keys_and_damage(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"state": "stopped", "someday": 1}))  # no pid, no times
    assert RunStatus.read(tmp_path).state == RunState.STOPPED
    (tmp_path / "status.json").write_text(json.dumps({"state": "exploded"}))
    with pytest.raises(GistlabError, match="Unknown run state 'exploded'"):
        RunStatus.read(tmp_path)
    (tmp_path / "status.json").write_text("{")
    with pytest.raises(GistlabError, match="not valid JSON"):
        RunStatus.read(tmp_path)
    with pytest.raises(RunNotFound, match="missing"):
        RunStatus.read(tmp_path / "gone")


def test_mark_interrupted_changes_only_a_running_status(tmp_path):
    RunStatus(RunState.RUNNING, pid=0, steps_done=4).write(tmp_path)
    mark_interrupted(tmp_path, "killed")
    status = RunStatus.read(tmp_path)
    assert (status.state, status.reason, status.steps_done) == (RunState.INTERRUPTED, "killed", 4)
    RunStatus(RunState.COMPLETED).write(tmp_path)
    mark_interrupted(tmp_path, "killed")
    assert RunStatus.read(tmp_path).state == RunState.COMPLETED
    mark_interrupted(tmp_path / "none", "killed")  # no status: nothing to mark
