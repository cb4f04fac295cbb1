"""A paired job's gap between its arms: one `gistlab train --loss gist,mnrl` process against two
`gistlab train` processes run one after the other (what a paired job did before).

The gap is the wall time from the first arm's run leaving the "running" state (its status.json) to
the second arm's first step being recorded (the first line of its metrics.jsonl), both seen by
polling the run folders every 20 ms. In one process the second arm reuses the imports, the data,
the guide and its cache, and only reloads the student; two processes pay Python's start-up, the
imports and every load again. Bundled models and data, the same settings and seed for both ways,
the two ways alternating between repeats, each in a fresh workspace.

    python -m benchmarks paired_job --repeats 3
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import ROOT, child_env, fresh_workspace, machine_line, median, table

POLL_S = 0.02
WAYS = ("one process (--loss gist,mnrl)", "two processes, one per arm")


def arguments(p) -> None:
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)


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


def run(args) -> None:
    print(machine_line("torch"), flush=True)
    train = [sys.executable, "-m", "core.cli", "train", "--steps", str(args.steps), "--batch-size",
             str(args.batch_size), "--seed", "0"]
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.repeats):
        for way in WAYS:
            with fresh_workspace("gistlab-bench-paired-") as home:
                out = home / "runs"
                first, second = out / "gist", out / "mnrl"
                if way == WAYS[0]:
                    commands = [train + ["--loss", "gist,mnrl", "--out", str(out / "{loss}")]]
                else:
                    commands = [train + ["--loss", arm, "--out", str(out / arm)] for arm in ("gist", "mnrl")]
                times[way].append(gap(commands, first, second, child_env(home)))
                print(f"{way}: {times[way][-1]:.2f} s", flush=True)
    print(f"\nPaired job, bundled models, {args.steps} steps of batch {args.batch_size} per arm: seconds from the "
          "first arm's end to the second arm's first recorded step (median of "
          f"{args.repeats}, ways alternating):\n")
    print(table([[way, f"{median(v):.2f}", f"{min(v):.2f}-{max(v):.2f}"] for way, v in times.items()],
                ["way", "gap median (s)", "range (s)"]))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
