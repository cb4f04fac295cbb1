"""Benchmark a paired job's gap between its arms: one `gistlab train --loss gist,mnrl` process
against two `gistlab train` processes run one after the other (what a paired job did before).

The gap is the wall time from the first arm's run leaving the "running" state (its status.json) to
the second arm's first step being recorded (the first line of its metrics.jsonl), both seen by
polling the run folders every 20 ms. In one process the second arm reuses the imports, the data,
the guide and its cache, and only reloads the student; two processes pay Python's start-up, the
imports and every load again. Bundled models and data, the same settings and seed for both ways,
the two ways alternating between repeats, each in a fresh workspace.

    python scripts/bench_paired_job.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.02


def state(run: Path) -> str | None:
    try:
        return json.loads((run / "status.json").read_text()).get("state")
    except (OSError, ValueError):
        return None  # not written yet, or caught mid-write


def first_step_recorded(run: Path) -> bool:
    try:
        return (run / "metrics.jsonl").read_text().endswith("\n")
    except OSError:
        return False


def gap(commands: list[list[str]], first: Path, second: Path, env: dict) -> float:
    """Run ``commands`` one after the other; seconds from ``first`` leaving "running" to ``second``'s first step."""
    ended = None
    for command in commands:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while child.poll() is None or ended is None or not first_step_recorded(second):
            if ended is None and state(first) not in (None, "running"):
                ended = time.perf_counter()
            if ended is not None and first_step_recorded(second):
                started = time.perf_counter()
                child.wait()
                return started - ended
            if child.poll() is not None:
                break
            time.sleep(POLL_S)
        if child.returncode:
            raise SystemExit(f"{' '.join(command)} failed with exit code {child.returncode}")
    raise SystemExit("the second arm never recorded a step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    import torch

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"Python {platform.python_version()}, torch {torch.__version__}", flush=True)
    train = [sys.executable, "-m", "core.cli", "train", "--steps", str(args.steps), "--batch-size",
             str(args.batch_size), "--seed", "0"]
    times: dict[str, list[float]] = {"one process (--loss gist,mnrl)": [], "two processes, one per arm": []}
    for _ in range(args.repeats):
        for way in times:
            with tempfile.TemporaryDirectory(prefix="gistlab-bench-paired-") as home:
                env = {**os.environ, "GISTLAB_HOME": home, "HF_HUB_OFFLINE": "1"}
                out = Path(home) / "runs"
                first, second = out / "gist", out / "mnrl"
                if way.startswith("one"):
                    commands = [train + ["--loss", "gist,mnrl", "--out", str(out / "{loss}")]]
                else:
                    commands = [train + ["--loss", arm, "--out", str(out / arm)] for arm in ("gist", "mnrl")]
                times[way].append(gap(commands, first, second, env))
                print(f"{way}: {times[way][-1]:.2f} s", flush=True)
    print(f"\nPaired job, bundled models, {args.steps} steps of batch {args.batch_size} per arm: seconds from the "
          "first arm's end to the second arm's first recorded step (median of "
          f"{args.repeats}, ways alternating):\n")
    print("| way | gap median (s) | range (s) |\n|---|---|---|")
    for way, values in times.items():
        print(f"| {way} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
