"""Cost per training step of every false-negative recipe against MNRL, side by side (issue 25).

Each loss arm of ``gistlab train --loss`` is built by the trainer's own
:func:`core.training.arms.build_loss` from a :class:`core.training.config.TrainConfig` (train's
defaults: margin 0, judge margin 0.1, hardness of the library's defaults), trains its own copy of the
student (bundled:minilm-l3) on the same pre-tokenised bundled batches, and the arms take turns step
by step (first arm rotated every round), so load on the machine falls on all alike. A step is
forward + backward + AdamW step. ``mnrl again`` is a second MNRL arm: its ratio to ``mnrl`` is the
run's noise floor. Ratios are medians of per-round ratios to ``mnrl``. The guided arms read a warm
guide cache (filled before timing, as a run fills it before its first step), so their cost is the
cache lookup and the mask; self-judge reuses the student's own forward (no guide at all).

    python -m benchmarks recipes --rounds 20 --batch-sizes 16 64
"""

from __future__ import annotations

from benchmarks.harness import fresh_workspace, machine_line, table, timed
from benchmarks.loss import CLOCKS, COLUMNS, clock_median, make_batches, mnrl_ratio, step, sync, training_data

THREADED = True
ARMS = ("mnrl", "mnrl again", "gist", "self-judge", "mnrl-hard", "gist-hard")


def arguments(p) -> None:
    p.add_argument("--guide", default="bundled:minilm-l6", help="guide spec of gist and gist-hard")
    p.add_argument("--rounds", type=int, default=20, help="timed steps per arm and batch size")
    p.add_argument("--batch-sizes", type=int, nargs="*", default=[16, 64])


def make_arms(ds, guide_spec: str, shared) -> dict:
    """One fresh student, loss (the trainer's build_loss) and optimizer per arm."""
    import torch

    from core.guides.models import load_model
    from core.training.arms import build_loss
    from core.training.config import TrainConfig

    arms = {}
    for name in ARMS:
        config = TrainConfig(loss=name.split()[0], guide=guide_spec, student="bundled:minilm-l3")
        student = load_model(config.student).train()
        loss, _ = build_loss(config, student, ds, shared)
        arms[name] = (loss, torch.optim.AdamW(student.parameters(), lr=2e-5))
    return arms


def bench(ds, guide_spec: str, batch_size: int, rounds: int) -> dict[str, list]:
    """Per arm, its step timings over ``rounds`` rounds (after one warm-up round)."""
    from core.guides.models import load_model
    from core.training.arms import Shared
    from core.training.config import TrainConfig

    shared = Shared()
    batches = make_batches(ds, load_model("bundled:minilm-l3"), batch_size, rounds + 1, seed=batch_size, device="cpu")
    cache = shared.guide_cache(TrainConfig(guide=guide_spec, student="bundled:minilm-l3"))
    for rows, _ in batches:
        part = ds[rows.tolist()]
        cache.fill([t for c in COLUMNS for t in part[c]])
    arms = make_arms(ds, guide_spec, shared)
    names = list(arms)
    times = {name: [] for name in names}
    for i, (rows, feats) in enumerate(batches):
        for name in names[i % len(names):] + names[: i % len(names)]:
            took = timed(lambda: step(*arms[name], rows, feats), sync("cpu"))
            if i:  # round 0 warms every arm up
                times[name].append(took)
    return times


def run(args) -> None:
    with fresh_workspace():  # a cold, private guide cache
        ds = training_data()
        print(f"{machine_line('torch', 'sentence-transformers')}")
        print(f"student bundled:minilm-l3, guide {args.guide} (gist, gist-hard); bundled example_definition "
              f"triplets ({len(ds)} rows); {args.rounds} timed steps per arm after 1 warm-up, arms interleaved\n")
        rows = []
        for batch_size in args.batch_sizes:
            t = bench(ds, args.guide, batch_size, args.rounds)
            for clock in CLOCKS:
                rows.append([batch_size, clock, *(f"{clock_median(t[a], clock) * 1e3:.1f}" for a in ARMS),
                             *(f"{mnrl_ratio(t, a, clock):.3f}" for a in ARMS[1:])])
        print(table(rows, ["batch", "clock", *(f"{a} ms" for a in ARMS), *(f"{a} / mnrl" for a in ARMS[1:])]))
