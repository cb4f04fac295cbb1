"""core.training.events: typed events written beside a step's log, read back by the pages."""

from __future__ import annotations

from core.training.events import (
    EVENTS_ENV, Event, Kind, emit, events_file, follow_log, read_events, step_error, write_event,
)


def test_emit_writes_only_where_the_job_says(tmp_path, monkeypatch):
    monkeypatch.delenv(EVENTS_ENV, raising=False)
    assert emit(Kind.SKIPPED, "SciFact", "offline").text() == "skipped SciFact: offline"  # a terminal: no file
    log = tmp_path / "train.log"
    monkeypatch.setenv(EVENTS_ENV, str(events_file(log)))
    emit(Kind.TASKS, total=6)
    emit(Kind.EVALUATED, "WordNetSTS", "1.0 s")
    later = tmp_path / "mnrl" / "train.log"
    later.parent.mkdir()
    follow_log(later)  # a later arm logs into its own folder: its events follow
    emit(Kind.ERROR, message="nan loss")
    assert events_file(log).name == "train.events.jsonl"
    assert [(e.kind, e.task, e.total) for e in read_events(events_file(log))] == [
        (Kind.TASKS, None, 6), (Kind.EVALUATED, "WordNetSTS", None)]
    assert step_error(later) == "nan loss"


def test_torn_and_unknown_lines_are_skipped(tmp_path):
    path = tmp_path / "eval.events.jsonl"
    write_event(path, Event(Kind.REUSED, "T1"))
    with open(path, "a") as handle:
        handle.write('{"kind": "exploded"}\n{"kind": "evalu')
    assert [e.kind for e in read_events(path)] == [Kind.REUSED]
    assert read_events(tmp_path / "none.jsonl") == []


def test_step_error_falls_back_to_the_last_log_line(tmp_path):
    log = tmp_path / "eval.log"
    log.write_text("loading\nRuntimeError: boom\n\n")
    assert step_error(log) == "RuntimeError: boom"
    write_event(events_file(log), Event(Kind.ERROR, message="Model 'x' not found: check the spec."))
    assert step_error(log) == "Model 'x' not found: check the spec."
