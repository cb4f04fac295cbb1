"""The margin what-if sweep: before (one broadcast comparison per batch) and after (all
batches sorted once, searchsorted per threshold), side by side on the same cached embeddings.

Guide bundled:minilm-l6 through a warm GuideCache (filled before timing), bundled WordNet
triplets (4 blocks), ``--batches`` seeded batches of ``--batch-size``, margins -0.10..+0.50 in
steps of 0.01 (the Margin what-if page's defaults) x 2 strategies. Each repeat times, in turn:

- ``before``: the sweep as it was (masked fraction per block only), kept here verbatim;
- ``after``: :func:`core.analysis.whatif.margin_sweep`, which also splits every count by ground-truth
  relation (precision and recall against the margin);
- ``after + floor + tasks``: the same with a positive floor (every curve twice) and per task;
- drawing the batches (:func:`core.analysis.inspect.sample_batches`, which the page does first).

The before and after masked counts are checked equal. Medians (min-max) over ``--repeats``.

    python -m benchmarks whatif --batches 50 --repeats 5
"""


from __future__ import annotations

import os

from benchmarks.harness import fresh_workspace, interleaved, machine_line, median, table


def arguments(p) -> None:
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)


def broadcast_sweep(batches, guide, margins, contrast_anchors=True, contrast_positives=True):
    """The sweep before this change (core/analysis/whatif.py at 07a65da): masked fraction per block only."""
    import pandas as pd
    import torch

    from core.analysis.inspect import embed_batch, mask_batch, one_thread
    from core.method.masking import STRATEGIES, MarginSettings, thresholds

    margins = [float(m) for m in margins]
    grid = torch.tensor(margins, dtype=torch.float32)
    masked, totals = {}, {}
    embedded = [embed_batch(batch, guide) for batch in batches]
    with one_thread():
        for batch, guide_emb in zip(batches, embedded):
            base = mask_batch(batch, guide_emb, MarginSettings("absolute", -3.0, contrast_anchors, contrast_positives))
            g = base.positive_scores[:, None]
            for strategy in STRATEGIES:
                t = thresholds(g, MarginSettings(strategy, grid))
                for block in base.blocks:
                    hit = (base.guide_scores[block][:, :, None] > t[:, None, :]) | base.masked[block][:, :, None]
                    hit &= base.candidates[block][:, :, None]
                    masked[(strategy, block)] = masked.get((strategy, block), 0) + hit.sum(dim=(0, 1))
            for block in base.blocks:
                totals[block] = totals.get(block, 0) + int(base.candidates[block].sum())
    records = []
    for strategy in STRATEGIES:
        blocks = [b for (s, b) in masked if s == strategy]
        pooled = sum(masked[(strategy, b)] for b in blocks)
        for block, counts, total in [*((b, masked[(strategy, b)], totals[b]) for b in blocks),
                                     ("all", pooled, sum(totals.values()))]:
            for m, n in zip(margins, counts.tolist()):
                records.append({"strategy": strategy, "margin": m, "block": block, "masked": int(n),
                                "candidates": total, "masked_fraction": n / max(total, 1)})
    return pd.DataFrame.from_records(records)


def run(args) -> None:
    import numpy as np

    from core.analysis.inspect import sample_batches
    from core.analysis.whatif import ALL, margin_sweep
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.guides.models import load_model

    print(machine_line("torch"), flush=True)
    with fresh_workspace("gistlab-bench-whatif-"):
        ds = load_pairs("bundled")
        cache = GuideCache(load_model("bundled:minilm-l6", device="cpu"), "bundled:minilm-l6")
        batches = sample_batches(ds, args.batches, args.batch_size, seed=0)
        for b in batches:
            cache.fill(b.texts())  # warm, as on the page after the first sweep
        margins = np.round(np.arange(-10, 51) / 100, 2).tolist()

        before = broadcast_sweep(batches, cache.embed, margins)
        after = margin_sweep(batches, cache.embed, margins)
        same = after[after.task == ALL].set_index(["strategy", "margin", "block"]).masked
        old = before.set_index(["strategy", "margin", "block"]).masked
        assert (old.sort_index() == same.sort_index()).all(), "before and after disagree"

        times = interleaved({
            "before: broadcast per batch (masked fractions only)":
                lambda: broadcast_sweep(batches, cache.embed, margins),
            "after: sorted once + searchsorted (+ precision/recall by relation)":
                lambda: margin_sweep(batches, cache.embed, margins),
            "after, with a positive floor (0.3) and per task":
                lambda: margin_sweep(batches, cache.embed, margins, positive_floor=0.3, by_task=True),
            "drawing the batches (`sample_batches`, with ground truth)":
                lambda: sample_batches(ds, args.batches, args.batch_size, seed=0),
        }, args.repeats)
    print(f"\nMargin what-if, {args.batches} batches of {args.batch_size}, {len(margins)} margins x 2 "
          f"strategies, warm guide cache; median (min-max) of {args.repeats} repeats, side by side:\n")
    base = median([t.wall for t in next(iter(times.values()))])
    rows = []
    for name, values in times.items():
        walls = [t.wall for t in values]
        rows.append([name, f"{median(walls) * 1000:.0f}", f"{min(walls) * 1000:.0f}-{max(walls) * 1000:.0f}",
                     f"{median(walls) / base:.2f}x"])
    print(table(rows, ["operation", "median ms", "range ms", "vs before"]))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
