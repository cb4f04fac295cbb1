"""Peak memory of GIST training as the batch grows: CachedGISTLoss (--mini-batch-size) vs GISTLoss.

Each row is one real ``gistlab train`` run (``core.training.train.run_training``: student bundled:minilm-l3,
guide bundled:minilm-l6, bundled WordNet triplets, short texts) in its own fresh subprocess, so its
peak resident set size (``ru_maxrss``) is that run's alone: models, data, trainer, recording and
the steps. The guide cache is filled first by another subprocess for the texts of every run, so no
run does a guide forward and the steps measure training. Step times are medians over the steps
after the first (warm-up); with ``--steps 1``, that one step. Rows go to stderr as they finish (a run
cut short keeps them), the table to stdout at the end.

    python -m benchmarks memory                     # batches 64, 256, 1024 at mini-batch 32 (also without the
                                                    # heap bound at 64 and 1024), and GISTLoss
    python -m benchmarks memory --threads 1 --steps 1   # what docs/PERFORMANCE.md reports
"""


from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile

from benchmarks.harness import ROOT, child_env, fresh_workspace, machine_line, table

THREADED = True


def arguments(p) -> None:
    p.add_argument("--batches", default="64,256,1024", help="batch sizes (default %(default)s)")
    p.add_argument("--mini-batch-size", type=int, default=32)
    p.add_argument("--plain", default="64,1024", help="batch sizes also run with GISTLoss (no cache; "
                                                       "default %(default)s; empty: none)")
    p.add_argument("--glibc-heap", default="64,1024", help="batch sizes also run cached without the fixed "
                                                          "mmap threshold (default %(default)s; empty: none)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)


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
    """One child of this benchmark (``python -m benchmarks memory ... --child ...``), its last line of output."""
    result = subprocess.run([sys.executable, "-m", "benchmarks", "memory", *args], cwd=ROOT, capture_output=True,
                            text=True, env=child_env())
    if result.returncode:
        sys.exit(f"child {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def run(args) -> None:
    if args.child:
        kind, *rest = args.child
        if kind == "fill":
            fill([int(b) for b in rest[0].split(",")], args.steps)
        else:
            batch, mini = int(rest[0]), (int(rest[1]) or None)
            print(json.dumps(train(batch, mini, args.steps, rest[2])))
        return

    batches = [int(b) for b in args.batches.split(",")]
    plain = [int(b) for b in args.plain.split(",") if b.strip()]
    glibc = [int(b) for b in args.glibc_heap.split(",") if b.strip()]
    common = ["--steps", str(args.steps), *(["--threads", str(args.threads)] if args.threads else [])]
    with fresh_workspace("bench-memory-home-"):  # one guide cache, shared by the children
        child(*common, "--child", "fill", ",".join(map(str, sorted(set(batches + glibc + plain)))))
        headers = ["loss", "heap", "batch", "mini-batch", "peak RSS MiB", f"x batch {batches[0]} cached, same heap",
                   "step s", "pairs/s"]
        rows, cells = [], []
        mini = args.mini_batch_size
        plan = [(b, mini, "bounded") for b in batches] + [(b, mini, "glibc") for b in glibc] + [(b, 0, "-") for b in plain]
        for batch, mini, heap in plan:  # the glibc rows right after the bounded ones: one run, same load
            r = json.loads(child(*common, "--child", "train", str(batch), str(mini), heap))
            rows.append(r)
            base = next(x for x in rows if x["heap"] == "glibc") if heap == "glibc" else rows[0]
            cells.append(["CachedGISTLoss" if r["mini"] else "GISTLoss", heap, r["batch"], r["mini"] or "-",
                          f"{r['peak_mib']:.0f}", f"{r['peak_mib'] / base['peak_mib']:.2f}", f"{r['step_s']:.2f}",
                          f"{r['batch'] / r['step_s']:.1f}"])
            print(", ".join(f"{h}: {c}" for h, c in zip(headers, cells[-1])), file=sys.stderr, flush=True)  # kept if cut short
    steps = f"step {args.steps}" if args.steps == 1 else f"median of steps 2..{args.steps}"
    print(table(cells, headers))
    print(f"\n{machine_line('torch', 'sentence-transformers')}; {rows[0]['threads']} torch threads per run; "
          f"{args.steps} steps per run, step time = {steps}.")
    print(f"\nPeak RSS after imports, before the run: {min(r['imports_mib'] for r in rows):.0f}-"
          f"{max(r['imports_mib'] for r in rows):.0f} MiB.")
