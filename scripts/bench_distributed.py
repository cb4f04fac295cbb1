"""1 vs 2 CPU processes for the same global batch: GIST training throughput, guide-cache fill speed.

Every configuration runs the way a user runs it: ``gistlab train`` as one process with the whole
batch, or ``torchrun --nproc_per_node 2 -m core.cli train`` with half the batch per process (with
and without ``--gather-across-devices``). Student bundled:minilm-l3, guide bundled:minilm-l6,
bundled WordNet triplets, seed 0. Repeats are interleaved (1p, 2p, 2p-gather, 1p, ...) so the
machine's load falls on all alike; repeat 0 is a warm-up that also fills the guide cache, so the
timed runs find it warm. Throughput = global batch / median ``step_seconds`` (rank 0's clock in
metrics.jsonl, steps after the first two).

One process runs with 2 torch threads (the default on 2 cores) and with 1; torchrun gives each of
its processes 1. The fill: ``gistlab cache`` on the first ``--fill-rows`` bundled rows, each into
an empty workspace; texts/s from the command's own clock around the fill (encoding, gathering and
merging; model loading and process start excluded).

    python scripts/bench_distributed.py --global-batch 16 --steps 6 --repeats 3 --fill-rows 200

Prints Markdown tables for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = (  # name, processes, threads per process, gather
    ("1 process, 2 threads", 1, 2, False),
    ("1 process, 1 thread", 1, 1, False),
    ("2 processes", 2, 1, False),
    ("2 processes, gathered", 2, 1, True),
)


def command(processes: int, *args: str) -> list[str]:
    """``python -m core.cli ...``, under torchrun when more than one process."""
    if processes == 1:
        return [sys.executable, "-m", "core.cli", *args]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(port), "-m", "core.cli", *args]


def run(cmd: list[str], home: Path, threads: int, loads: list[float]) -> str:
    """Run one command with ``threads`` torch threads per process; note the load around it."""
    env = {**os.environ, "GISTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    loads.append(os.getloadavg()[0])
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    loads.append(os.getloadavg()[0])
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def train_once(home: Path, out: Path, processes: int, threads: int, gather: bool, args, loads) -> float:
    """Median seconds per step of one run."""
    cmd = command(processes, "train", "--data", "bundled", "--batch-size",
                  str(args.global_batch // processes), "--steps", str(args.steps), "--seed", "0",
                  "--out", str(out), "--overwrite", *(["--gather-across-devices"] if gather else []))
    run(cmd, home, threads, loads)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(m["step_seconds"] for m in metrics[2:])


def fill_once(data: Path, processes: int, threads: int, loads) -> tuple[int, float]:
    """Texts encoded and seconds taken by one fill into an empty workspace."""
    with tempfile.TemporaryDirectory() as home:
        out = run(command(processes, "cache", "--data", str(data)), Path(home), threads, loads)
    found = re.search(r"(\d+) encoded in ([\d.]+) s", out)
    return int(found.group(1)), float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (plus one warm-up)")
    parser.add_argument("--fill-rows", type=int, default=1000)
    args = parser.parse_args()

    from core.corpus.data import load_pairs

    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    home = work / "home"
    loads: list[float] = []
    step_seconds: dict[str, list[float]] = {name: [] for name, *_ in CONFIGS}
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

    import sentence_transformers
    import torch

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; load "
          f"average (1 min) {min(loads):.1f}-{max(loads):.1f}, median {statistics.median(loads):.1f}; "
          f"Python {platform.python_version()}, torch {torch.__version__}, sentence-transformers "
          f"{sentence_transformers.__version__}. Global batch {args.global_batch}, {args.steps} steps "
          f"per run, medians over steps 3..{args.steps} then over {args.repeats} repeats.\n")
    print("| configuration | batch per process | median s/step | pairs/s | speed-up vs 1 process, 2 threads | "
          "vs 1 process, 1 thread |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, processes, *_ in CONFIGS:
        seconds = statistics.median(step_seconds[name])
        speedups = [  # median of the per-repeat ratios: runs side by side share the same load
            statistics.median(b / s for b, s in zip(step_seconds[base[0]], step_seconds[name]))
            for base in CONFIGS[:2]
        ]
        print(f"| {name} | {args.global_batch // processes} | {seconds:.3f} | "
              f"{args.global_batch / seconds:.1f} | {speedups[0]:.2f} | {speedups[1]:.2f} |")
    print()
    print("| guide-cache fill | texts | median s | texts/s |")
    print("|---|---:|---:|---:|")
    for name, results in fills.items():
        texts, seconds = results[0][0], statistics.median(s for _, s in results)
        print(f"| {name} | {texts} | {seconds:.2f} | {texts / seconds:.0f} |")


if __name__ == "__main__":
    main()
