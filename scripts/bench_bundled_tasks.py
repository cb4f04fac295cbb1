"""Time the six-task WordNet mini benchmark (core.corpus.mteb_tasks) through ``mteb.evaluate``.

Each repeat runs every task once, fresh task object and empty result cache, for one model;
reports the main score and the median wall and process-CPU seconds per task and in total. CPU
seconds count every thread of this process: on a machine shared with other jobs they are what
the run costs, the wall time what a user waits. Prints a markdown table for docs/PERFORMANCE.md.

    python scripts/bench_bundled_tasks.py --model bundled:minilm-l6 --repeats 3 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mteb  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402

from core.guides.models import load_model  # noqa: E402
from core.corpus.mteb_tasks import TASK_NAMES, bundled_tasks  # noqa: E402


def run_once(model, name: str) -> tuple[float, float, float]:
    """(main score, wall s, CPU s) of one task evaluated from scratch."""
    task = bundled_tasks([name])[0]
    cache = mteb.ResultCache(tempfile.mkdtemp(prefix="bench-mteb-"))
    wall, cpu = time.perf_counter(), time.process_time()
    result = mteb.evaluate(model, [task], cache=cache, show_progress_bar=False)
    return result.task_results[0].get_score(), time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled:minilm-l6")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.model, device="cpu")
    load_before = os.getloadavg()
    runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n in TASK_NAMES}
    totals = []
    for _ in range(args.repeats):
        start = time.perf_counter(), time.process_time()
        for name in TASK_NAMES:
            runs[name].append(run_once(model, name))
            print(f"{name}: {runs[name][-1]}", file=sys.stderr, flush=True)
        totals.append((time.perf_counter() - start[0], time.process_time() - start[1]))
    load_after = os.getloadavg()

    print(f"model `{args.model}`, {args.repeats} repeats, medians; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"sentence-transformers {sentence_transformers.__version__}, mteb {mteb.__version__}; "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}\n")
    print("| task | main score | wall s | CPU s |\n|---|---|---|---|")
    for name, rows in runs.items():
        print(f"| {name} | {rows[0][0]:.4f} | {statistics.median(r[1] for r in rows):.1f} "
              f"| {statistics.median(r[2] for r in rows):.1f} |")
    print(f"| **all six** | | {statistics.median(t[0] for t in totals):.1f} "
          f"| {statistics.median(t[1] for t in totals):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
