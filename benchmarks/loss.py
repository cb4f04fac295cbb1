"""The GIST loss step against MNRL and the library's GISTEmbedLoss, and the cache fill.

1. Training step (forward + backward + AdamW step), student bundled:minilm-l3, guide ``--guide``
   (default bundled:minilm-l6; bundled:mpnet-base is the strong 110 M guide with its own tokenizer,
   which GISTEmbedLoss re-tokenises for), bundled WordNet triplets (anchor, positive, negative). Arms:
   ``gist`` (core.method.loss.GISTLoss, guide cache warm), ``mnrl`` (MultipleNegativesRankingLoss, its
   default scale 20) and ``gist-st`` (sentence-transformers' GISTEmbedLoss, which runs the guide
   every step), plus ``mnrl again``, a second MNRL arm whose ratio to ``mnrl`` shows the run's
   noise. Each arm trains its own copy of the student on the same pre-tokenised batches; the arms
   take turns step by step (order rotated every round) so that load on the machine hits them
   alike, and ratios are medians of per-round ratios. Also timed alone: the GIST loss's own
   per-step work (row lookup, cache lookup, mask).
2. Cache fill: ``GuideCache.fill`` into an empty folder vs the guide's own ``encode`` on the same
   texts, alternating, medians; throughput ratio = encode time / fill time.
3. float16 storage check: masks from float16-rounded guide embeddings vs float32, batches of 32,
   both margin strategies at margins 0 / 0.05 / 0.1 (why the cache stores float32).

    python -m benchmarks loss --rounds 20 --fill-texts 2000
    python -m benchmarks loss --guide bundled:mpnet-base --batch-sizes 32 --fill-texts 0 --float16-pairs 0
"""


from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.harness import Timing, machine_line, median, paired_ratio, table, timed

THREADED = True
COLUMNS = ("anchor", "positive", "negative")
# "mnrl again" is a second, identical MNRL arm: its ratio to "mnrl" is the noise floor of the run.
ARMS = ("gist", "mnrl", "mnrl again", "gist-st")
CLOCKS = ("wall", "cpu")  # wall: what a user waits; cpu: what the step costs when other processes share the cores


def arguments(p) -> None:
    p.add_argument("--guide", default="bundled:minilm-l6", help="guide spec of gist and gist-st")
    p.add_argument("--rounds", type=int, default=20, help="timed steps per arm and batch size")
    p.add_argument("--batch-sizes", type=int, nargs="*", default=[32, 64], help="none: skip steps")
    p.add_argument("--fill-texts", type=int, default=2000, help="0: skip the fill benchmark")
    p.add_argument("--fill-repeats", type=int, default=3)
    p.add_argument("--float16-pairs", type=int, default=3200, help="0: skip the float16 check")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")


def sync(device: str):
    """What to wait for before reading a clock: the GPU's queue on cuda, nothing on the CPU."""
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else None


def training_data():
    from core.corpus.bundled import bundled_pairs

    ds = bundled_pairs(["example_definition"]).select_columns(list(COLUMNS))
    return ds.add_column("label", list(range(len(ds))))


def make_batches(ds, student, batch_size: int, count: int, seed: int, device: str):
    """``count`` random batches: (row ids, tokenised features per column on ``device``)."""
    import numpy as np
    import torch
    from sentence_transformers.util import batch_to_device

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        rows = rng.choice(len(ds), size=batch_size, replace=False).tolist()
        part = ds[rows]
        feats = [batch_to_device(student.preprocess(part[c]), device) for c in COLUMNS]
        batches.append((torch.tensor(rows, device=device), feats))
    return batches


def make_arms(ds, guide, cache, device: str) -> dict:
    """One fresh student, optimizer and loss per arm."""
    import torch
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss, MultipleNegativesRankingLoss

    from core.guides.models import load_model
    from core.method.loss import GISTLoss

    arms = {}
    for name in ARMS:
        student = load_model("bundled:minilm-l3", device=device).train()
        if name == "gist":
            loss = GISTLoss(student, cache, ds)
        elif name.startswith("mnrl"):
            loss = MultipleNegativesRankingLoss(student)
        else:
            loss = GISTEmbedLoss(student, guide)
        arms[name] = (loss, torch.optim.AdamW(student.parameters(), lr=2e-5))
    return arms


def step(loss_fn, optimizer, rows, feats) -> None:
    loss = loss_fn([dict(f) for f in feats], rows)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bench_steps(ds, guide, cache, batch_size: int, rounds: int, device: str) -> dict[str, list]:
    """Per arm, a list of step timings; plus the GIST loss's own overhead."""
    from core.guides.models import load_model

    student = load_model("bundled:minilm-l3", device=device)
    batches = make_batches(ds, student, batch_size, rounds + 1, seed=batch_size, device=device)
    for rows, _ in batches:  # warm cache: the gist arm only looks up
        part = ds[rows.tolist()]
        cache.fill([t for c in COLUMNS for t in part[c]])
    arms = make_arms(ds, guide, cache, device)
    names = list(arms)
    times = {name: [] for name in names}
    times["gist overhead"] = []
    for i, (rows, feats) in enumerate(batches):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            took = timed(lambda: step(*arms[name], rows, feats), sync(device))
            if i:  # batch 0 warms every arm up
                times[name].append(took)
        if i:
            times["gist overhead"].append(timed(lambda: gist_overhead(arms["gist"][0], rows), sync(device)))
    return times


def gist_overhead(loss, rows) -> None:
    """The GIST loss's own work on a batch, without the student: texts, cache lookup, mask."""
    from core.method.masking import guided_mask

    batch = loss.texts[rows.tolist()]
    columns = [batch[c] for c in loss.columns]
    guide = loss.guide_cache.embed([t for col in columns for t in col]).to(rows.device)
    guide = guide.view(len(columns), len(rows), -1)
    guided_mask(guide[0], guide[1], list(guide[2:]), loss.settings, columns[0], columns[1], columns[2:])


def bench_fill(guide, spec: str, texts: list[str], repeats: int, batch_size: int, device: str) -> tuple[list, list]:
    """Timings of the guide's encode and of filling an empty cache, alternating."""
    from core.guides.guide_cache import GuideCache

    encode_s, fill_s = [], []
    guide.encode(texts[:batch_size], batch_size=batch_size)  # warm-up
    for _ in range(repeats):
        encode_s.append(timed(lambda: guide.encode(texts, batch_size=batch_size), sync(device)))
        with tempfile.TemporaryDirectory() as root:
            cache = GuideCache(guide, spec, root=Path(root), batch_size=batch_size)
            fill_s.append(timed(lambda: cache.fill(texts), sync(device)))
    return encode_s, fill_s


def float16_flips(cache, anchors: list[str], positives: list[str]) -> tuple[int, int]:
    """Mask cells that change when the guide embeddings are rounded to float16."""
    from core.method.masking import MarginSettings, guided_mask

    a, p = cache.embed(anchors), cache.embed(positives)
    flips = cells = 0
    for strategy in ("absolute", "relative"):
        for margin in (0.0, 0.05, 0.1):
            settings = MarginSettings(strategy, margin)
            for s in range(0, len(a) - 31, 32):
                full = guided_mask(a[s:s + 32], p[s:s + 32], (), settings)
                half = guided_mask(a[s:s + 32].half().float(), p[s:s + 32].half().float(), (), settings)
                for block, masked in full.masked.items():
                    flips += int((masked != half.masked[block]).sum())
                    cells += masked.numel()
    return flips, cells


def clock_median(times: list[Timing], clock: str) -> float:
    """Median seconds of one clock ("wall" or "cpu")."""
    return median([getattr(t, clock) for t in times])


def mnrl_ratio(times: dict, arm: str, clock: str) -> float:
    """Median over rounds of arm / mnrl on the same batch, timed next to each other."""
    return paired_ratio([getattr(t, clock) for t in times[arm]], [getattr(t, clock) for t in times["mnrl"]])


def report_fill(ds, guide, args) -> None:
    texts = list(dict.fromkeys(ds["anchor"][: args.fill_texts] + ds["positive"][: args.fill_texts]))
    texts = texts[: args.fill_texts]
    encode_s, fill_s = bench_fill(guide, args.guide, texts, args.fill_repeats, 64, args.device)
    rows = []
    for clock in CLOCKS:
        encode, fill = clock_median(encode_s, clock), clock_median(fill_s, clock)
        rows.append([len(texts), clock, f"{encode:.2f}", f"{fill:.2f}", f"{len(texts) / encode:.0f}",
                     f"{len(texts) / fill:.0f}", f"{encode / fill:.3f}"])
    print("\n" + table(rows, ["texts", "clock", "guide.encode s", "GuideCache.fill s", "encode texts/s",
                              "fill texts/s", "fill / encode throughput"]))


def report_float16(ds, guide, spec: str, n: int) -> None:
    from core.guides.guide_cache import GuideCache

    with tempfile.TemporaryDirectory() as root:
        cache = GuideCache(guide, spec, root=Path(root))
        flips, cells = float16_flips(cache, ds["anchor"][:n], ds["positive"][:n])
    print(f"\nfloat16 storage: {flips} of {cells} mask cells change vs float32 "
          f"({n} example->definition pairs, batches of 32, absolute+relative x margins 0/0.05/0.1)")


def report_steps(ds, guide, args) -> None:
    from core.guides.guide_cache import GuideCache

    with tempfile.TemporaryDirectory() as root:
        cache = GuideCache(guide, args.guide, root=Path(root))
        rows = []
        for batch_size in args.batch_sizes:
            t = bench_steps(ds, guide, cache, batch_size, args.rounds, args.device)
            for clock in CLOCKS:
                rows.append([batch_size, clock, *(f"{clock_median(t[a], clock) * 1e3:.1f}" for a in ARMS),
                             *(f"{mnrl_ratio(t, a, clock):.3f}" for a in ("gist", "mnrl again", "gist-st")),
                             f"{clock_median(t['gist overhead'], clock) * 1e3:.1f}"])
    print(table(rows, ["batch", "clock", "gist ms", "mnrl ms", "mnrl again ms", "gist-st ms", "gist / mnrl",
                       "mnrl again / mnrl", "gist-st / mnrl", "gist overhead ms"]))


def run(args) -> None:
    import platform

    import torch

    from core.guides.models import load_guide

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    ds = training_data()
    guide = load_guide(args.guide, device=args.device)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.node()
    print(f"{machine_line('torch', 'sentence-transformers')}; device {args.device} ({device_name})")
    print(f"student bundled:minilm-l3, guide {args.guide}")
    print(f"data: bundled example_definition triplets ({len(ds)} rows), {args.rounds} timed steps "
          "per arm after 1 warm-up, arms interleaved\n")

    if args.batch_sizes:
        report_steps(ds, guide, args)
    if args.fill_texts:
        report_fill(ds, guide, args)
    if args.float16_pairs:
        report_float16(ds, guide, args.guide, args.float16_pairs)
