"""core.fsio: the lock really excludes another process, atomic writes leave no partial file or temp."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from core.fsio import locked, write_json_atomic, write_text_atomic


def _hold(path: str, started, seconds: float) -> None:
    with locked(path):
        started.set()
        time.sleep(seconds)


@pytest.mark.parametrize("target", ["file", "folder"])
def test_locked_excludes_another_process(tmp_path, target):
    path = tmp_path / "lock" if target == "file" else tmp_path
    context = multiprocessing.get_context("fork")
    started = context.Event()
    holder = context.Process(target=_hold, args=(str(path), started, 0.5))
    holder.start()
    assert started.wait(10)
    waited = time.monotonic()
    with locked(path):
        waited = time.monotonic() - waited
    holder.join()
    assert waited > 0.2  # blocked until the other process let go
    with locked(path):  # released: taken again at once
        pass


def test_atomic_writes_replace_whole_file_and_leave_no_temp(tmp_path):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"state": "running"})
    write_json_atomic(path, {"state": "completed", "when": time.gmtime(0)}, default=str, fsync=True)
    assert json.loads(path.read_text())["state"] == "completed"
    write_text_atomic(tmp_path / "notes.md", "hello\n")
    assert (tmp_path / "notes.md").read_text() == "hello\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "status.json"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
    path = tmp_path / "config.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # not JSON: fails before the replace
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
