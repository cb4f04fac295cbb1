"""Peak memory of GIST training as the batch grows: CachedGISTLoss (--mini-batch-size) vs GISTLoss.

Each row is one real ``gistlab train`` run (``core.training.train.run_training``: student bundled:minilm-l3,
guide bundled:minilm-l6, bundled WordNet triplets, short texts) in its own fresh subprocess, so its
peak resident set size (``ru_maxrss``) is that run's alone: models, data, trainer, recording and
the steps. The guide cache is filled first by another subprocess for the texts of every run, so no
run does a guide forward and the steps measure training. Step times are medians over the steps
after the first (warm-up); with ``--steps 1``, that one step. Rows print as they finish.

    python scripts/bench_memory.py                  # batches 64, 256, 1024 at mini-batch 32 (also without the
                                                    # heap bound at 64 and 1024), and GISTLoss
    python scripts/bench_memory.py --threads 1 --steps 1   # what docs/PERFORMANCE.md reports
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config(batch: int, mini: int | None, steps: int, out: str | None = None):
    from core.training.train import TrainConfig

    return TrainConfig(data="bundled", loss="gist", batch_size=batch, mini_batch_size=mini, steps=steps,
                       seed=0, out=out)


def fill(batches: list[int], steps: int) -> None:
    """Child: put every text the runs will train on into the guide cache."""
    from core.corpus.data import epoch_batches, load_pairs, text_columns
    from core.guides.guide_cache import GuideCache
    from core.guides.models import load_guide

    c = config(batches[0], None, steps)
    ds = load_pairs(c.data)
    cache = GuideCache(load_guide(c.guide, c.student), c.guide)
    for batch in batches:
        rows = [r for b in epoch_batches(ds, batch, c.seed, 0)[:steps] for r in b]
        picked = ds.select(rows)
        cache.fill([t for col in text_columns(ds) for t in picked[col]])


def train(batch: int, mini: int | None, steps: int, heap: str = "bounded") -> dict:
    """Child: one run; its peak RSS and step times. ``heap="glibc"``: without the cached loss's
    fixed mmap threshold (``core.method.cached_loss.bound_heap_growth``), to show what it buys."""
    import torch

    from core.method import cached_loss
    from core.training import runs
    from core.training.train import run_training

    if heap == "glibc":
        cached_loss.bound_heap_growth = lambda: False

    imports = peak_mib()
    out = run_training(config(batch, mini, steps, out=tempfile.mkdtemp(prefix="bench-memory-")))
    metrics = runs.read_metrics(out)
    assert runs.read_status(out).state == "completed"
    return {"batch": batch, "mini": mini, "heap": heap, "peak_mib": peak_mib(), "imports_mib": imports,
            "step_s": statistics.median(metrics["step_seconds"].iloc[1:] if steps > 1 else metrics["step_seconds"]),
            "threads": torch.get_num_threads()}


def child(*args: str) -> str:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=os.environ)
    if result.returncode:
        sys.exit(f"child {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,256,1024", help="batch sizes (default %(default)s)")
    parser.add_argument("--mini-batch-size", type=int, default=32)
    parser.add_argument("--plain", default="64,1024", help="batch sizes also run with GISTLoss (no cache; "
                                                           "default %(default)s; empty: none)")
    parser.add_argument("--glibc-heap", default="64,1024", help="batch sizes also run cached without the fixed "
                                                              "mmap threshold (default %(default)s; empty: none)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (default: torch's own)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        kind, *rest = args.child
        if kind == "fill":
            fill([int(b) for b in rest[0].split(",")], args.steps)
        else:
            batch, mini = int(rest[0]), (int(rest[1]) or None)
            print(json.dumps(train(batch, mini, args.steps, rest[2])))
        return

    os.environ["GISTLAB_HOME"] = tempfile.mkdtemp(prefix="bench-memory-home-")  # one cache, shared
    batches = [int(b) for b in args.batches.split(",")]
    plain = [int(b) for b in args.plain.split(",") if b.strip()]
    glibc = [int(b) for b in args.glibc_heap.split(",") if b.strip()]
    common = ["--steps", str(args.steps), "--threads", str(args.threads)]
    child(*common, "--child", "fill", ",".join(map(str, sorted(set(batches + glibc + plain)))))
    import sentence_transformers
    import torch

    print(f"| loss | heap | batch | mini-batch | peak RSS MiB | x batch {batches[0]} cached, same heap | step s | pairs/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|", flush=True)
    rows = []
    mini = args.mini_batch_size
    plan = [(b, mini, "bounded") for b in batches] + [(b, mini, "glibc") for b in glibc] + [(b, 0, "-") for b in plain]
    for batch, mini, heap in plan:  # the glibc rows right after the bounded ones: one run, same load
        r = json.loads(child(*common, "--child", "train", str(batch), str(mini), heap))
        rows.append(r)
        name = "CachedGISTLoss" if r["mini"] else "GISTLoss"
        base = next(x for x in rows if x["heap"] == "glibc") if heap == "glibc" else rows[0]
        print(f"| {name} | {heap} | {r['batch']} | {r['mini'] or '-'} | {r['peak_mib']:.0f} | "
              f"{r['peak_mib'] / base['peak_mib']:.2f} | {r['step_s']:.2f} | {r['batch'] / r['step_s']:.1f} |",
              flush=True)  # row by row: a long run that is cut short keeps what it measured
    steps = f"step {args.steps}" if args.steps == 1 else f"median of steps 2..{args.steps}"
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPU cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end; Python {platform.python_version()}, torch {torch.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}; {rows[0]['threads']} torch threads; "
          f"{args.steps} steps per run, step time = {steps}.")
    print(f"\nPeak RSS after imports, before the run: {min(r['imports_mib'] for r in rows):.0f}-"
          f"{max(r['imports_mib'] for r in rows):.0f} MiB.")


if __name__ == "__main__":
    main()
