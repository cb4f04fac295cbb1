"""Training that never passes silently or loses work: margin range, "learns nothing", signals,
atomic model save, atomic claim of the run directory, a reused pid (issue 14)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pandas as pd
import pytest

from core.training import runs
from core.training.status import RunState
from core.cli import main
from core.errors import GistlabError, GistlabWarning
from core.training.lifecycle import claim
from core.training.train import TrainConfig, run_training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.csv"
    pd.DataFrame({"anchor": [f"sentence {i} about thing {i % 7}" for i in range(16)],
                  "positive": [f"a gloss of thing {i}" for i in range(16)]}).to_csv(path, index=False)
    return path


def tiny(pairs_csv, tiny_model_dir, out, **overrides) -> TrainConfig:
    settings = dict(data=str(pairs_csv), student=str(tiny_model_dir), guide=str(tiny_model_dir),
                    batch_size=4, steps=2, out=str(out))
    return TrainConfig.from_dict({**settings, **overrides})


@pytest.mark.parametrize("strategy,margin", [("absolute", 5.0), ("absolute", 1.5), ("relative", 1.0),
                                             ("relative", float("nan"))])
def test_a_margin_that_masks_everything_is_refused_per_strategy(strategy, margin):
    with pytest.raises(GistlabError, match="margin"):
        TrainConfig.from_dict({"margin_strategy": strategy, "margin": margin})
    TrainConfig.from_dict({"margin_strategy": strategy, "margin": 0.1})
    TrainConfig.from_dict({"loss": "mnrl", "margin_strategy": strategy, "margin": 5.0})  # no mask in mnrl: irrelevant


def test_margin_5_on_the_command_line_is_one_line(pairs_csv, tmp_path, capsys):
    assert main(["train", "--data", str(pairs_csv), "--margin", "5", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "masks all candidates" in err and "at most 1" in err


def test_a_run_that_learns_nothing_says_so(tiny_model_dir, tmp_path, capsys):
    """All-duplicate data: every candidate is the anchor's own text, so 100% is masked and the loss is 0."""
    path = tmp_path / "dups.csv"
    pd.DataFrame({"anchor": ["the same text"] * 8, "positive": ["the same gloss"] * 8}).to_csv(path, index=False)
    out = tmp_path / "idle"
    with pytest.warns(GistlabWarning, match="learns nothing") as caught:
        code = main(["train", "--data", str(path), "--student", str(tiny_model_dir), "--guide",
                     str(tiny_model_dir), "--steps", "2", "--batch-size", "4", "--out", str(out)])
    assert code == 0
    status = runs.read_status(out)
    assert status.state == "completed" and status.warning.startswith("learns nothing: steps 1-2")
    assert "warning: learns nothing" in capsys.readouterr().out.splitlines()[-1]  # the final line
    warning = next(w for w in caught if "learns nothing" in str(w.message))
    logged = warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno)
    assert logged == f"gistlab: warning: {status.warning}\n"  # one line in the log


def test_a_run_that_learns_has_no_warning(pairs_csv, tiny_model_dir, tmp_path):
    out = run_training(tiny(pairs_csv, tiny_model_dir, tmp_path / "fine", loss="mnrl"))
    assert runs.read_status(out).warning is None


def test_ctrl_c_while_models_load_says_what_is_true(pairs_csv, tmp_path, capsys, monkeypatch):
    def interrupted(spec, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("core.training.train.load_model", interrupted)
    out = tmp_path / "loading"
    code = main(["train", "--data", str(pairs_csv), "--loss", "mnrl", "--batch-size", "4", "--out", str(out)])
    line = capsys.readouterr().out.strip()
    assert code == 130
    assert line == f"interrupted while loading the models, before the first step; run in {out}, no model saved"
    assert not (out / "model").exists()


def test_an_interrupted_save_leaves_no_half_model(pairs_csv, tiny_model_dir, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    real_save = SentenceTransformer.save

    def second_ctrl_c(self, path, *args, **kwargs):
        real_save(self, path, *args, **kwargs)  # files are written, then Ctrl-C lands
        raise KeyboardInterrupt

    monkeypatch.setattr(SentenceTransformer, "save", second_ctrl_c)
    out = tmp_path / "save"
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny(pairs_csv, tiny_model_dir, out, loss="mnrl"))
    assert not (out / "model").exists() and runs.trained_model(out) is None
    assert not [p for p in out.iterdir() if "saving" in p.name]  # the temporary folder is gone
    status = runs.read_status(out)
    assert status.state == "interrupted" and "no model saved" in status.error


def test_a_save_on_a_full_disk_is_a_failed_run_not_a_completed_one(pairs_csv, tiny_model_dir, tmp_path,
                                                                    monkeypatch, capsys):
    """The weights writer fails as a full disk makes it (ENOSPC): the run is failed, one line says why, no model."""
    import errno

    def disk_full(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 64)  # a few bytes land, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", disk_full)
    out = tmp_path / "full"
    code = main(["train", "--data", str(pairs_csv), "--student", str(tiny_model_dir), "--loss", "mnrl",
                 "--steps", "1", "--batch-size", "4", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gistlab:")]
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0] and "no model saved" in err[0]
    status = runs.read_status(out)
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert "\n" not in status["error"] and status["steps_done"] == 1  # the step is kept, not the claim
    assert runs.trained_model(out) is None and not [p for p in out.iterdir() if "saving" in p.name]


def test_a_one_step_run_trains(pairs_csv, tiny_model_dir, tmp_path):
    """The default warmup (10% of 1 step, rounded up) gave the only step learning rate 0: weights unchanged."""
    from sentence_transformers import SentenceTransformer

    out = run_training(tiny(pairs_csv, tiny_model_dir, tmp_path / "one", loss="mnrl", steps=1))
    assert runs.read_status(out)["state"] == "completed"
    base = SentenceTransformer(str(tiny_model_dir), device="cpu").state_dict()
    trained = SentenceTransformer(str(out / "model"), device="cpu").state_dict()
    assert any(not (base[name] == trained[name]).all() for name in base)


def test_the_claim_of_a_run_directory_is_locked(pairs_csv, tiny_model_dir, tmp_path):
    out = tmp_path / "race"
    out.mkdir()
    config = tiny(pairs_csv, tiny_model_dir, out)
    done = threading.Event()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another start is between its check and its claim
        thread = threading.Thread(target=lambda: (claim(out, False, config), done.set()))
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # waits for the other start instead of racing it
    thread.join(10)
    assert done.is_set() and runs.read_status(out).state == "running"
    with pytest.raises(GistlabError, match="still training"):  # the second start sees the first
        claim(out, False, config)


def test_a_reused_pid_is_not_taken_for_the_run(pairs_csv, tiny_model_dir, tmp_path):
    out = run_training(tiny(pairs_csv, tiny_model_dir, tmp_path / "reused", loss="mnrl", steps=1))
    status = json.loads((out / "status.json").read_text())
    assert status["pid_start"]  # recorded next to the pid
    # The run "died" long ago and its pid now belongs to another live process (this one).
    (out / "status.json").write_text(json.dumps({**status, "state": "running", "pid": os.getpid(),
                                                 "pid_start": "1"}))
    assert runs.read_status(out).state == RunState.DIED
    run_training(tiny(pairs_csv, tiny_model_dir, out, loss="mnrl", steps=1), overwrite=True)
    assert runs.read_status(out).state == "completed"


def test_sigterm_stops_at_a_step_boundary_and_saves(pairs_csv, tiny_model_dir, tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "train", "--data", str(pairs_csv), "--loss", "mnrl",
         "--student", str(tiny_model_dir), "--batch-size", "4", "--steps", "100000", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    status = runs.read_status(out)
    assert proc.returncode == 130 and status.state == "interrupted"
    assert runs.trained_model(out) is not None and status.steps_done >= 1
    assert f"model in {out / 'model'}" in stdout
