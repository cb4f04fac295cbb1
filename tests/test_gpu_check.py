"""scripts/gpu_check.py: --help says what it measures without a GPU; the CPU smoke run fills the table."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_says_what_it_measures():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for needle in ("pairs/s", "gist-st", "bundled:mpnet-base", "fill texts/s", "peak GPU memory", "1024 vs 128"):
        assert needle in result.stdout, needle


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_refuses_on_a_cpu_without_allow_cpu(tmp_path, capsys):
    assert gpu_check().main(["--out", str(tmp_path / "t.md")]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--allow-cpu" in err and err.count("\n") == 1
    assert not (tmp_path / "t.md").exists()


def test_cpu_smoke_run_writes_every_row(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "check.md"
    tiny = str(tiny_model_dir)
    code = gpu_check().main(["--allow-cpu", "--student", tiny, "--guides", f"{tiny},bundled:nowhere",
                             "--batches", "4", "--memory-batches", "4,8", "--mini-batch-size", "2",
                             "--steps", "1", "--fill-texts", "16", "--out", str(out)])
    assert code == 0
    table = out.read_text()
    assert "a smoke run, not a GPU figure" in table and "bundled:nowhere skipped" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| measure")]
    measures = [line.split(" | ")[0][2:] for line in rows]
    assert measures.count("step time") == 3 and measures.count("throughput") == 3
    assert measures.count("guide-cache fill") == 1 and measures.count("plain encode") == 1
    assert measures.count("peak RSS (CPU)") == 4
    assert all(float(line.split(" | ")[4]) > 0 for line in rows)
