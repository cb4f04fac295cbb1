"""1 vs 2 CPU processes for the same global batch: GIST training throughput, guide-cache fill speed.

Every configuration runs the way a user runs it: ``gistlab train`` as one process with the whole
batch, or ``torchrun --nproc_per_node 2 -m core.cli train`` with half the batch per process (with
and without ``--gather-across-devices``). Student bundled:minilm-l3, guide bundled:minilm-l6,
bundled WordNet triplets, seed 0. Repeats are interleaved (1p, 2p, 2p-gather, 1p, ...) so the
machine's load falls on all alike; repeat 0 is a warm-up that also fills the guide cache, so the
timed runs find it warm. Throughput = global batch / median ``step_seconds`` (rank 0's clock in
metrics.jsonl, steps after the first two).

One process runs with 2 torch threads (the default on 2 cores) and with 1; torchrun gives each of
its processes 1 (each configuration sets its own threads: no --threads here). The fill: ``gistlab
cache`` on the first ``--fill-rows`` bundled rows, each into an empty workspace; texts/s from the
command's own clock around the fill (encoding, gathering and merging; model loading and process
start excluded).

    python -m benchmarks distributed --global-batch 16 --steps 6 --repeats 3 --fill-rows 200
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import ROOT, child_env, free_port, fresh_workspace, machine_line, median, paired_ratio, table

CONFIGS = (  # name, processes, threads per process, gather
    ("1 process, 2 threads", 1, 2, False),
    ("1 process, 1 thread", 1, 1, False),
    ("2 processes", 2, 1, False),
    ("2 processes, gathered", 2, 1, True),
)


def arguments(p) -> None:
    p.add_argument("--global-batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (plus one warm-up)")
    p.add_argument("--fill-rows", type=int, default=1000)


def command(processes: int, *args: str) -> list[str]:
    """``python -m core.cli ...``, under torchrun when more than one process."""
    if processes == 1:
        return [sys.executable, "-m", "core.cli", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(free_port()), "-m", "core.cli", *args]


def run_command(cmd: list[str], home: Path, threads: int, loads: list[float]) -> str:
    """Run one command with ``threads`` torch threads per process; note the load around it."""
    loads.append(os.getloadavg()[0])
    done = subprocess.run(cmd, cwd=ROOT, env=child_env(home, OMP_NUM_THREADS=str(threads)),
                          capture_output=True, text=True)
    loads.append(os.getloadavg()[0])
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def train_once(home: Path, out: Path, processes: int, threads: int, gather: bool, args, loads) -> float:
    """Median seconds per step of one run."""
    cmd = command(processes, "train", "--data", "bundled", "--batch-size",
                  str(args.global_batch // processes), "--steps", str(args.steps), "--seed", "0",
                  "--out", str(out), "--overwrite", *(["--gather-across-devices"] if gather else []))
    run_command(cmd, home, threads, loads)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return median([m["step_seconds"] for m in metrics[2:]])


def fill_once(data: Path, processes: int, threads: int, loads) -> tuple[int, float]:
    """Texts encoded and seconds taken by one fill into an empty workspace."""
    with fresh_workspace() as home:
        out = run_command(command(processes, "cache", "--data", str(data)), home, threads, loads)
    found = re.search(r"(\d+) encoded in ([\d.]+) s", out)
    return int(found.group(1)), float(found.group(2))


def run(args) -> None:
    from core.corpus.data import load_pairs

    loads: list[float] = []
    step_seconds: dict[str, list[float]] = {name: [] for name, *_ in CONFIGS}
    with fresh_workspace("bench-distributed-") as work:
        home = work / "home"
        for repeat in range(args.repeats + 1):
            for name, processes, threads, gather in CONFIGS:
                seconds = train_once(home, work / "run", processes, threads, gather, args, loads)
                if repeat:
                    step_seconds[name].append(seconds)
                print(f"repeat {repeat} {name}: {seconds:.3f} s/step", file=sys.stderr)

        data = work / "fill.jsonl"
        load_pairs("bundled").select(range(args.fill_rows)).to_json(str(data))
        fills: dict[str, list[tuple[int, float]]] = {name: [] for name, *_ in CONFIGS[:3]}
        for _ in range(args.repeats):
            for name, processes, threads, _ in CONFIGS[:3]:
                fills[name].append(fill_once(data, processes, threads, loads))
                print(f"fill {name}: {fills[name][-1]}", file=sys.stderr)

    print(f"{machine_line('torch', 'sentence-transformers')}; load average (1 min) over the runs "
          f"{min(loads):.1f}-{max(loads):.1f}, median {median(loads):.1f}. Global batch {args.global_batch}, "
          f"{args.steps} steps per run, medians over steps 3..{args.steps} then over {args.repeats} repeats.\n")
    rows = []
    for name, processes, *_ in CONFIGS:
        seconds = median(step_seconds[name])
        # speed-ups: median of the per-repeat ratios (runs side by side share the same load)
        speedups = [paired_ratio(step_seconds[base[0]], step_seconds[name]) for base in CONFIGS[:2]]
        rows.append([name, args.global_batch // processes, f"{seconds:.3f}", f"{args.global_batch / seconds:.1f}",
                     f"{speedups[0]:.2f}", f"{speedups[1]:.2f}"])
    print(table(rows, ["configuration", "batch per process", "median s/step", "pairs/s",
                       "speed-up vs 1 process, 2 threads", "vs 1 process, 1 thread"]))
    print()
    print(table([[name, results[0][0], f"{median([s for _, s in results]):.2f}",
                  f"{results[0][0] / median([s for _, s in results]):.0f}"] for name, results in fills.items()],
                ["guide-cache fill", "texts", "median s", "texts/s"]))
