"""Time the bundled mini benchmark (``gistlab eval --tasks bundled``) per model, memo on vs off.

Each repeat evaluates every model from scratch (``overwrite=True``, a fresh results folder) once
with core.training.evaluate's EncodeMemo (each distinct text embedded once) and once without it (plain
``model.encode``), interleaved so that load from other processes hits both alike. Prints a
Markdown table of medians over repeats, the texts each variant embedded, and the ratio measured
side by side; the load average before and after is printed too, since the cores may be shared.

    python scripts/bench_eval.py --models bundled:minilm-l6,bundled:minilm-l3 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.training.evaluate as ev  # noqa: E402


def timed_eval(model: str, memo: bool) -> tuple[float, float, int]:
    """Wall and CPU seconds of one from-scratch evaluation of the bundled tasks, and the texts embedded.

    CPU seconds (all threads) move less than wall time when other processes share the cores: on
    two idle cores the wall time would be about CPU / 2.
    """
    install = ev.EncodeMemo.install
    if not memo:
        ev.EncodeMemo.install = lambda self: self  # the memo exists but never replaces model.encode
    try:
        with tempfile.TemporaryDirectory() as out:
            start, cpu = time.perf_counter(), time.process_time()
            report = ev.evaluate(model, "bundled", out=Path(out), overwrite=True)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        ev.EncodeMemo.install = install
    if report.skipped:
        raise SystemExit(f"tasks skipped: {report.skipped}")
    return seconds, cpu, report.texts_encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="bundled:minilm-l6")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    load_before = os.getloadavg()
    for model in models:  # warm-up: builds minilm-l3 once, imports mteb, reads the assets
        ev.load_model(model)
        ev.resolve_tasks("bundled")
    times: dict[tuple[str, bool], list[float]] = {}
    cpus: dict[tuple[str, bool], list[float]] = {}
    encoded: dict[tuple[str, bool], int] = {}
    for _ in range(args.repeats):
        for model in models:
            for memo in (True, False):
                seconds, cpu, texts = timed_eval(model, memo)
                times.setdefault((model, memo), []).append(seconds)
                cpus.setdefault((model, memo), []).append(cpu)
                encoded[(model, memo)] = texts
                print(f"{model} memo={memo}: {seconds:.1f} s, {texts} texts", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load_before[0]:.1f} "
          f"before / {load_after[0]:.1f} after; torch {version('torch')}, sentence-transformers "
          f"{version('sentence-transformers')}, mteb {version('mteb')}; {args.repeats} repeats.\n")
    print("| model | memo | median wall s | min s | max s | median CPU s | texts embedded | memo speed-up (wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for model in models:
        on, off = statistics.median(times[(model, True)]), statistics.median(times[(model, False)])
        for memo in (True, False):
            runs = times[(model, memo)]
            ratio = f"{off / on:.2f}x" if memo else ""
            texts = encoded[(model, memo)] if memo else "all requested"
            print(f"| {model} | {'on' if memo else 'off'} | {statistics.median(runs):.1f} | {min(runs):.1f} "
                  f"| {max(runs):.1f} | {statistics.median(cpus[(model, memo)]):.1f} | {texts} | {ratio} |")


if __name__ == "__main__":
    main()
