"""benchmarks/: every benchmark imports and builds its parser; the harness's clocks, order, workspace, tables."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import NAMES
from benchmarks.__main__ import parser
from benchmarks.harness import AnonymousPeak, fresh_workspace, interleaved, machine_line, paired_ratio, spread, table, timed

ROOT = Path(__file__).resolve().parents[1]


def test_every_benchmark_module_is_listed_and_builds_its_parser():
    modules = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in ("__init__", "__main__", "harness"))
    assert sorted(NAMES) == modules  # a new module must be listed to be reachable
    p = parser()
    for name in NAMES:
        module = importlib.import_module(f"benchmarks.{name}")
        assert callable(module.run) and module.__doc__.strip()
        args = p.parse_args([name])  # every option has a default
        assert args.run is module.run
        assert ("threads" in vars(args)) == getattr(module, "THREADED", False)
    assert p.parse_args(["memory", "--threads", "1"]).threads == 1


def test_no_scripts_bench_left_and_the_entry_point_lists_every_benchmark():
    assert not list((ROOT / "scripts").glob("bench_*.py"))
    shown = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout
    assert all(name in shown for name in NAMES)
    with pytest.raises(SystemExit):
        parser().parse_args(["nope"])


def test_interleaved_rounds_take_turns_and_rotation_moves_the_first():
    calls = []
    arms = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved(arms, rounds=2, warmup=1)
    assert calls == list("abc" * 3) and all(len(t) == 2 for t in times.values())
    calls.clear()
    interleaved(arms, rounds=3, rotate=True)
    assert calls == list("abc" + "bca" + "cab")


def test_timed_clocks_and_summaries():
    took = timed(lambda: sum(range(10_000)))
    assert took.wall >= 0 and took.cpu >= 0
    assert spread([0.001, 0.003, 0.002], scale=1000, digits=1) == "2.0 (1.0-3.0)"
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0
    assert machine_line("pandas").startswith("Machine: ") and "pandas " in machine_line("pandas")


def test_fresh_workspace_is_empty_and_restores_the_previous_one(monkeypatch):
    monkeypatch.setenv("GISTLAB_HOME", "/somewhere")
    with fresh_workspace() as home:
        assert os.environ["GISTLAB_HOME"] == str(home) and not any(home.iterdir())
    assert os.environ["GISTLAB_HOME"] == "/somewhere" and not home.exists()


def test_table_keeps_cells_as_formatted():
    lines = table([["a", "0.50", "1.0x"]], ["op", "ms", "ratio"]).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["op", "ms", "ratio"]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["a", "0.50", "1.0x"]


def test_audit_scale_fits_the_growth_exponent_and_labels_extrapolations():
    from benchmarks.audit_scale import exponent, rows

    assert exponent([(10, 1.0), (100, 100.0), (1000, 10_000.0)]) == pytest.approx(2.0)
    assert exponent([(10, 1.0)]) is None
    measured = [{"rows": 100, "search": "exact", "wall": 2.0, "cpu": 4.0, "peak_mb": 9.0, "anon_mb": 5.2,
                 "anon_before_mb": 3.0, "embeddings_mb": 0.3, "recall": None, "counts": {}}]
    lines = rows(measured, [100, 1000])
    assert lines[0][:8] == ["100", "exact", "2.0", "4.0", "9", "5 (3)", "0", "exact"] and lines[1][2] == "not run"
    assert lines[2][2:4] == ["~200 (extrapolated, N^2)", "~400 (extrapolated, N^2)"]


def test_audit_scale_writes_memory_mapped_clusters_with_near_copies(tmp_path):
    """Clustered rows lie near their centre and positives near their anchors; random ones do not."""
    from benchmarks.audit_scale import DUPLICATE_EVERY, write_vectors

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 64)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    write_vectors(tmp_path / "c.npy", 1000, 8, centres)
    write_vectors(tmp_path / "r.npy", 1000, 64, None)
    clustered, flat = (np.load(tmp_path / name, mmap_mode="r") for name in ("c.npy", "r.npy"))
    assert isinstance(clustered, np.memmap) and clustered.shape == flat.shape == (2000, 64)
    assert np.allclose(np.linalg.norm(clustered, axis=1), 1, atol=1e-5)
    a, p = clustered[:1000], clustered[1000:]
    assert np.median((a @ centres.T).max(axis=1)) > 0.7 and np.median((a * p).sum(axis=1)) > 0.75
    assert ((p[1::DUPLICATE_EVERY] * p[0::DUPLICATE_EVERY][:len(p[1::DUPLICATE_EVERY])]).sum(axis=1) > 0.99).all()
    assert np.median((flat[:1000] @ flat[1000:].T).max(axis=1)) < 0.6  # random: no near neighbour


def test_anonymous_peak_sees_an_allocation_that_came_and_went():
    with AnonymousPeak(every=0.01) as peak:
        before = AnonymousPeak.now()
        block = np.ones(200 * 2**20 // 8)  # 200 MB written, so resident
        time.sleep(0.2)
        del block
        time.sleep(0.05)
    assert before is not None and peak.mb >= before + 150  # the block was seen though freed before the end
    assert AnonymousPeak.now() < peak.mb - 150
