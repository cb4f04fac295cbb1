"""The guide cache fill as a job: counted progress events and ETA from `gistlab cache`, resume, the job record."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

import core.guides.guide_cache as guide_cache
from core.cli import main
from core.training import jobs
from core.training.cache_job import (LOG, SUMMARY, FillProgress, eta_seconds, fill_progress, filled, fills_root,
                                     start_cache_fill)
from core.training.events import EVENTS_ENV, Kind, events_file, read_events


@pytest.fixture
def pairs_csv(tmp_path) -> Path:
    """120 pairs: 240 distinct texts."""
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": [f"question {k}" for k in range(120)],
                  "positive": [f"answer {k} to it" for k in range(120)]}).to_csv(path, index=False)
    return path


def test_eta_is_the_time_left_at_this_fills_own_rate():
    assert eta_seconds((100.0, 1000), (110.0, 1500), 3000) == pytest.approx(30.0)  # 50 texts/s, 1,500 left
    assert eta_seconds((100.0, 1000), (100.0, 1000), 3000) is None  # nothing encoded yet
    assert FillProgress("encoding", 8192, 20_000, 200.0).text() == \
        "encoding texts with the guide: 8,192 of 20,000 texts stored · about 3 min left"
    assert FillProgress("verifying", 5, 10, None).text() == "checking the stored embeddings: 5 of 10 rows checked"


def test_the_cli_counts_its_fill_in_events_and_a_second_fill_only_verifies(job_home, pairs_csv, tiny_model_dir,
                                                                          monkeypatch, capsys):
    monkeypatch.setattr(guide_cache, "FILL_CHUNK", 64)
    out = fills_root() / "first"
    monkeypatch.setenv(EVENTS_ENV, str(events_file(out / LOG)))
    out.mkdir(parents=True)
    argv = ["cache", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--out", str(out)]
    assert main(argv) == 0
    counted = [(e.task, e.done, e.total) for e in read_events(events_file(out / LOG)) if e.kind == Kind.PROGRESS]
    assert counted == [("encoding", d, 240) for d in (0, 64, 128, 192, 240)]
    assert "encoding texts with the guide: 240 of 240 texts stored" in capsys.readouterr().err
    progress = fill_progress(out)
    assert (progress.state, progress.done, progress.total) == ("finished", 240, 240)
    summary = json.loads((out / SUMMARY).read_text())
    assert (summary["texts"], summary["encoded"]) == (240, 240) and filled(str(pairs_csv), str(tiny_model_dir))
    assert not filled(str(pairs_csv), "bundled:minilm-l6") and not filled("bundled", str(tiny_model_dir))

    again = fills_root() / "second"
    monkeypatch.setenv(EVENTS_ENV, str(events_file(again / LOG)))
    again.mkdir()
    assert main([*argv[:-1], str(again)]) == 0
    stages = [(e.task, e.done) for e in read_events(events_file(again / LOG)) if e.kind == Kind.PROGRESS]
    assert stages[-1] == ("encoding", 240) and ("verifying", 240) in stages  # the stored rows checked, none encoded
    assert json.loads((again / SUMMARY).read_text())["encoded"] == 0


def test_a_fill_runs_as_the_workspace_job_and_says_how_it_ended(job_home, pairs_csv, tiny_model_dir):
    job, folder = start_cache_fill(str(pairs_csv), str(tiny_model_dir), batch_size=16)
    assert job.kind == "cache" and job.steps[0].settings["out"] == str(folder)
    deadline = time.monotonic() + 120
    while jobs.current_job() is not None:
        assert time.monotonic() < deadline, "the fill did not end in time"
        time.sleep(0.2)
    done = jobs.last_job()
    assert done.steps[0].code == 0, (Path(done.steps[0].log).read_text())
    progress = fill_progress(folder, done)
    assert (progress.state, progress.stage, progress.done, progress.total) == ("finished", "encoding", 240, 240)
    assert filled(str(pairs_csv), str(tiny_model_dir))


def test_a_stopped_or_failed_fill_is_told_apart(job_home, tmp_path):
    folder = tmp_path / "fill"
    folder.mkdir()
    (folder / LOG).write_text("gistlab: interrupted\n")
    with open(events_file(folder / LOG), "w") as f:
        for t, done in ((0.0, 0), (10.0, 100)):
            f.write(json.dumps({"kind": "progress", "task": "encoding", "done": done, "total": 400, "time": t}) + "\n")
    step = jobs.Step(["gistlab", "cache"], str(folder / LOG), started=0.0)
    running = fill_progress(folder, jobs.Job("cache", [step]))
    assert (running.state, running.done, running.eta_s) == ("running", 100, pytest.approx(30.0))
    step.ended, step.code = 11.0, 130
    assert fill_progress(folder, jobs.Job("cache", [step])).state == "stopped"
    step.code = 2
    (folder / LOG).write_text("gistlab: error: Data file 'x.csv' does not exist: check the path.\n")
    failed = fill_progress(folder, jobs.Job("cache", [step]))
    assert failed.state == "failed" and "does not exist" in failed.error


def test_a_fill_killed_after_its_first_chunks_resumes_without_re_encoding_them(job_home, pairs_csv, tiny_model_dir):
    """SIGKILL (no clean stop) once the first chunk is on disk: the rows meta.json vouches for are kept
    and verified, and the next fill encodes only the texts that were not stored."""
    import os
    import signal
    import subprocess
    import sys

    from sentence_transformers import SentenceTransformer

    from core.guides.guide_cache import GuideCache

    slow_fill = f"""
import time, core.guides.guide_cache as gc
from core.cli import main
gc.FILL_CHUNK = 40
encode = gc.GuideCache.encode
gc.GuideCache.encode = lambda self, texts: (time.sleep(0.3), encode(self, texts))[1]
main(["cache", "--data", {str(pairs_csv)!r}, "--guide", {str(tiny_model_dir)!r}])
"""
    child = subprocess.Popen([sys.executable, "-c", slow_fill], env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    folder = GuideCache(guide, "tiny").path  # the folder the child fills (same guide, same workspace)
    deadline = time.monotonic() + 120
    try:
        while True:
            assert child.poll() is None and time.monotonic() < deadline, "the fill ended before it could be killed"
            meta = folder / "meta.json"
            if meta.is_file() and json.loads(meta.read_text())["count"] >= 40:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    resumed = GuideCache(guide, "tiny")
    kept = len(resumed)
    assert 40 <= kept < 240
    texts = [t for k in range(120) for t in (f"question {k}", f"answer {k} to it")]
    assert resumed.fill(texts) == 240 - kept and resumed.texts_encoded == 240 - kept and len(resumed) == 240
