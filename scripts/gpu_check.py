"""The device check: gistlab's training engine on one GPU, measured in one command (~3-8 minutes).

Writes one Markdown table (printed, and saved to --out) with:

1. step time and pairs/s of a training step (forward, backward, AdamW) for the three loss arms,
   gist (GISTLoss, warm guide cache), mnrl (MultipleNegativesRankingLoss) and gist-st (the
   library's GISTEmbedLoss, guide re-run every step), at batch 128 and 512, student
   bundled:minilm-l3, guide bundled:minilm-l6 and bundled:mpnet-base when installed;
2. guide-cache fill texts/s (GuideCache.fill: encode + store) vs the guide's plain encode;
3. peak GPU memory of one CachedGISTLoss step (--mini-batch-size 32) at batch 1024 vs 128, and of
   one GISTLoss step at the same sizes for reference.

On a machine without CUDA it refuses, unless --allow-cpu (a small smoke run of every
measurement, e.g. for a test: --allow-cpu --batches 8 --memory-batches 8,16 --steps 1).

    python scripts/gpu_check.py --out gpu_check.md
    python scripts/gpu_check.py --bf16          # the same under bfloat16 autocast
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

GUIDES = ("bundled:minilm-l6", "bundled:mpnet-base")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="128,512", help="batch sizes of the step-time rows (default %(default)s)")
    parser.add_argument("--memory-batches", default="128,1024", help="batch sizes of the memory rows (default %(default)s)")
    parser.add_argument("--mini-batch-size", type=int, default=32, help="CachedGISTLoss mini-batch (default %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row, after one warm-up (default %(default)s)")
    parser.add_argument("--fill-texts", type=int, default=8192, help="texts for the fill-vs-encode row (default %(default)s)")
    parser.add_argument("--student", default="bundled:minilm-l3")
    parser.add_argument("--guides", default=",".join(GUIDES),
                        help="guide specs; bundled:mpnet-base is skipped (and said so) when not installed")
    parser.add_argument("--bf16", action="store_true", help="run the steps under bfloat16 autocast")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (a smoke run, not a GPU figure)")
    parser.add_argument("--out", default="gpu_check.md", help="Markdown file to write (default %(default)s)")
    return parser.parse_args(argv)


class Bench:
    """One student, the bundled data, and timed steps of any loss arm on one device."""

    def __init__(self, args: argparse.Namespace, device: str) -> None:
        import torch

        from core.corpus.data import load_pairs

        self.args, self.device, self.torch = args, device, torch
        self.ds = load_pairs("bundled")
        self.student_spec = args.student

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def batch(self, student, size: int, index: int):
        """Features and row ids of the index-th batch of ``size`` rows (same rows for every arm)."""
        from sentence_transformers.util import batch_to_device

        from core.corpus.data import text_columns

        rows = list(range(index * size, (index + 1) * size))
        picked = self.ds.select(rows)
        features = [batch_to_device(student.preprocess(picked[c]), self.device) for c in text_columns(self.ds)]
        return features, self.torch.tensor(rows, device=self.device)

    def loss(self, arm: str, guide: str, batch: int, mini: int | None = None):
        """A fresh student and the loss of ``arm`` as ``gistlab train`` builds it."""
        from core.guides.models import load_model
        from core.training.train import TrainConfig, build_loss

        student = load_model(self.student_spec, device=self.device)
        config = TrainConfig(loss=arm, guide=guide, student=self.student_spec, batch_size=batch,
                             mini_batch_size=mini, steps=1)
        loss, step_mask = build_loss(config, student, self.ds)
        return student, loss.to(self.device), step_mask

    def step_seconds(self, arm: str, guide: str, batch: int, steps: int, mini: int | None = None) -> list[float]:
        """Seconds of each timed training step (after one warm-up step that also fills the cache)."""
        torch = self.torch
        student, loss, step_mask = self.loss(arm, guide, batch, mini)
        student.train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=2e-5)
        autocast = torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.args.bf16)
        times = []
        for index in range(steps + 1):
            features, labels = self.batch(student, batch, index)
            if arm == "gist":  # the cache is warm in steady state: fill it outside the timing
                loss.guide_cache.fill([t for c in loss.columns for t in loss.texts[labels.tolist()][c]])
            self.sync()
            start = time.perf_counter()
            with autocast:
                value = loss(features, labels)
            value.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.sync()
            times.append(time.perf_counter() - start)
            step_mask()  # what the recorder reads every step (and empties gist-st's probe)
        return times[1:]

    def peak_memory_mib(self, arm: str, guide: str, batch: int, mini: int | None) -> float:
        """Peak GPU memory of one training step (CPU: peak RSS of the process so far)."""
        torch = self.torch
        if self.device != "cuda":
            import resource

            self.step_seconds(arm, guide, batch, 0, mini)
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.step_seconds(arm, guide, batch, 0, mini)
        return torch.cuda.max_memory_allocated() / 2**20

    def fill_vs_encode(self, guide_spec: str, count: int) -> tuple[float, float]:
        """texts/s of GuideCache.fill into an empty cache, and of the guide's plain encode."""
        from core.guides.guide_cache import GuideCache
        from core.guides.models import load_guide

        guide = load_guide(guide_spec, self.student_spec, device=self.device)
        texts = list(dict.fromkeys([*self.ds["anchor"], *self.ds["positive"]]))[:count]
        guide.encode(texts[:64], batch_size=64)  # warm-up
        self.sync()
        start = time.perf_counter()
        guide.encode(texts, batch_size=64, convert_to_numpy=True)
        self.sync()
        encode = len(texts) / (time.perf_counter() - start)
        cache = GuideCache(guide, guide_spec, root=Path(tempfile.mkdtemp(prefix="gpu-check-cache-")))
        start = time.perf_counter()
        cache.fill(texts)
        self.sync()
        return len(texts) / (time.perf_counter() - start), encode


def available_guides(specs: list[str]) -> tuple[list[str], list[str]]:
    """The guides that load here, and a note for each that does not (mpnet-base when not installed)."""
    from core.errors import GistlabError
    from core.guides.models import load_model

    usable, notes = [], []
    for spec in specs:
        try:
            load_model(spec, device="cpu")
            usable.append(spec)
        except GistlabError as exc:
            notes.append(f"{spec} skipped: {exc}")
    return usable, notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if torch.cuda.is_available():
        device = "cuda"
        name = f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    elif args.allow_cpu:
        device, name = "cpu", f"CPU ({platform.machine()}, {os.cpu_count()} cores): a smoke run, not a GPU figure"
    else:
        print("gpu_check: error: no CUDA GPU on this machine: run it where one is, or pass --allow-cpu "
              "for a CPU smoke run (not a GPU figure).", file=sys.stderr)
        return 2
    if args.bf16 and device == "cuda" and not torch.cuda.is_bf16_supported():
        print("gpu_check: error: this GPU does not support bfloat16: drop --bf16.", file=sys.stderr)
        return 2

    import sentence_transformers

    started = time.perf_counter()
    bench = Bench(args, device)
    guides, notes = available_guides([g.strip() for g in args.guides.split(",") if g.strip()])
    rows = []  # (measure, loss, guide, batch, value, unit)
    for batch in [int(b) for b in args.batches.split(",")]:
        for arm in ("mnrl", "gist", "gist-st"):
            for guide in (guides[:1] if arm == "mnrl" else guides):
                step = statistics.median(bench.step_seconds(arm, guide, batch, args.steps))
                shown_guide = "-" if arm == "mnrl" else guide
                rows.append(("step time", arm, shown_guide, batch, f"{step * 1000:.1f}", "ms"))
                rows.append(("throughput", arm, shown_guide, batch, f"{batch / step:.0f}", "pairs/s"))
    for guide in guides:
        fill, encode = bench.fill_vs_encode(guide, args.fill_texts)
        rows.append(("guide-cache fill", "-", guide, 64, f"{fill:.0f}", "texts/s"))
        rows.append(("plain encode", "-", guide, 64, f"{encode:.0f}", "texts/s"))
    memory = "peak GPU memory" if device == "cuda" else "peak RSS (CPU)"
    for mini in (args.mini_batch_size, None):
        for batch in [int(b) for b in args.memory_batches.split(",")]:
            arm_name = f"gist cached (mini-batch {mini})" if mini else "gist (not cached)"
            mib = bench.peak_memory_mib("gist", guides[0], batch, mini)
            rows.append((memory, arm_name, guides[0], batch, f"{mib:.0f}", "MiB"))

    lines = [
        f"Device: {name}; torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}, "
        f"Python {platform.python_version()}; student {args.student}; {'bf16 autocast' if args.bf16 else 'float32'}; "
        f"step time = median of {args.steps} steps after a warm-up; bundled WordNet triplets. "
        f"Command: `python scripts/gpu_check.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"({time.perf_counter() - started:.0f} s).",
        "",
        "| measure | loss | guide | batch | value | unit |",
        "|---|---|---|---:|---:|---|",
        *[f"| {m} | {loss} | {g} | {b} | {v} | {u} |" for m, loss, g, b, v, u in rows],
    ]
    lines += [""] + [f"- {n}" for n in notes] if notes else []
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
