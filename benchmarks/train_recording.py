"""What recording a run costs: RunRecorder's per-step work next to the training step it records.

One real ``gist`` run (student bundled:minilm-l3, guide bundled:minilm-l6, bundled WordNet data)
with the recorder's ``record_step`` (mask table, metrics/batches lines, status.json) and ``flush``
(masks.parquet rewritten) timed in place. The training step time is the run's own
``step_seconds`` (forward, backward, optimizer step), so both come from the same steps. The first
step (guide cache cold, warm-up) is left out of the medians.

    python -m benchmarks train_recording --steps 8 --batch-size 32
"""

from __future__ import annotations

import time

from benchmarks.harness import fresh_workspace, machine_line, median, table

THREADED = True


def arguments(p) -> None:
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)


def timed_method(method, into: list[float]):
    """Wrap a RunRecorder method so each call's seconds land in ``into``."""
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)
    return wrapper


def run(args) -> None:
    from core.training import runs
    from core.training.recorder import FLUSH_SECONDS, RunRecorder
    from core.training.train import TrainConfig, run_training

    record, flush = [], []
    RunRecorder.record_step = timed_method(RunRecorder.record_step, record)
    RunRecorder.flush = timed_method(RunRecorder.flush, flush)
    with fresh_workspace("bench-recording-") as home:
        out = home / "run"
        run_training(TrainConfig(data="bundled", loss="gist", steps=args.steps, batch_size=args.batch_size,
                                 out=str(out)))
        metrics = runs.read_metrics(out)
        masks = runs.read_masks(out)
    steps = metrics["step_seconds"].iloc[1:].tolist()
    step_ms, record_ms, flush_ms = median(steps) * 1e3, median(record[1:]) * 1e3, median(flush) * 1e3
    print(machine_line("torch", "sentence-transformers"))
    print(f"gist run, batch {args.batch_size}, {args.steps} steps (medians over steps 2..{args.steps}); "
          f"{len(masks)} masked cells in all, masked fraction {metrics['masked_fraction'].median():.3f}\n")
    print(table([["training step (forward + backward + AdamW)", f"{step_ms:.1f}", "1"],
                 ["record_step (mask table, 2 JSON lines, status.json)", f"{record_ms:.2f}", f"{record_ms / step_ms:.4f}"],
                 [f"flush (rewrite masks.parquet, every {FLUSH_SECONDS:g} s and at the end; {len(flush)} calls)",
                  f"{flush_ms:.2f}", f"{flush_ms / step_ms:.4f}"]],
                ["what", "median ms", "share of a training step"]))
