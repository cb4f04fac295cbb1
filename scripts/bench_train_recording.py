"""What recording a run costs: RunRecorder's per-step work next to the training step it records.

One real ``gist`` run (student bundled:minilm-l3, guide bundled:minilm-l6, bundled WordNet data)
with the recorder's ``record_step`` (mask table, metrics/batches lines, status.json) and ``flush``
(masks.parquet rewritten) timed in place. The training step time is the run's own
``step_seconds`` (forward, backward, optimizer step), so both come from the same steps. The first
step (guide cache cold, warm-up) is left out of the medians.

    python scripts/bench_train_recording.py --steps 8 --batch-size 32
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

import sentence_transformers  # noqa: E402
import torch  # noqa: E402

from core.training import runs  # noqa: E402
from core.training.recorder import FLUSH_SECONDS, RunRecorder  # noqa: E402
from core.training.train import TrainConfig, run_training  # noqa: E402


def timed(method, into: list[float]):
    """Wrap a RunRecorder method so each call's seconds land in ``into``."""
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    record, flush = [], []
    RunRecorder.record_step = timed(RunRecorder.record_step, record)
    RunRecorder.flush = timed(RunRecorder.flush, flush)
    out = Path(tempfile.mkdtemp(prefix="bench-recording-")) / "run"
    run_training(TrainConfig(data="bundled", loss="gist", steps=args.steps, batch_size=args.batch_size,
                             out=str(out)))
    metrics = runs.read_metrics(out)
    steps = metrics["step_seconds"].iloc[1:].tolist()
    record = record[1:]
    masks = runs.read_masks(out)
    step_ms, record_ms = statistics.median(steps) * 1e3, statistics.median(record) * 1e3
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"python {platform.python_version()}, torch {torch.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}")
    print(f"gist run, batch {args.batch_size}, {args.steps} steps (medians over steps 2..{args.steps}); "
          f"{len(masks)} masked cells in all, masked fraction {metrics['masked_fraction'].median():.3f}\n")
    print("| what | median ms | share of a training step |")
    print("|---|---:|---:|")
    print(f"| training step (forward + backward + AdamW) | {step_ms:.1f} | 1 |")
    print(f"| record_step (mask table, 2 JSON lines, status.json) | {record_ms:.2f} | {record_ms / step_ms:.4f} |")
    print(f"| flush (rewrite masks.parquet, every {FLUSH_SECONDS:g} s and at the end; {len(flush)} calls) | "
          f"{statistics.median(flush) * 1e3:.2f} | {statistics.median(flush) * 1e3 / step_ms:.4f} |")


if __name__ == "__main__":
    main()
