"""What the guide cache's row checksums cost: on open (every row verified) and per lookup.

A cache of ``--rows`` synthetic rows (random float32 vectors of the guide's dimension, stored with
``GuideCache.add``, so no guide forward pass is timed) is opened ``--repeats`` times; each open is
split into its total and the checksum verification alone (``_failing_rows``). Then batches of
``--batch`` texts (a GIST step at batch 32 with negatives looks up 96) are looked up with
``embed``, total vs the checksum part alone (``row_checksums`` + compare). One torch thread; medians.

    python -m benchmarks cache_checks --rows 100000 --repeats 5
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.harness import machine_line, median, table, timed


def arguments(p) -> None:
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--lookups", type=int, default=200)
    p.add_argument("--guide", default="bundled:minilm-l6")


def median_ms(fn, repeats: int) -> float:
    return median([timed(fn).wall for _ in range(repeats)]) * 1000


def run(args) -> None:
    import numpy as np
    import torch

    from core.guides.cache_rows import digest_array, row_checksums, text_digest
    from core.guides.guide_cache import GuideCache
    from core.guides.models import load_model

    torch.set_num_threads(1)
    guide = load_model(args.guide, device="cpu")
    texts = [f"synthetic text {i}" for i in range(args.rows)]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        cache = GuideCache(guide, args.guide, root=Path(root))
        for lo in range(0, args.rows, 8192):
            chunk = texts[lo : lo + 8192]
            cache.add(chunk, rng.normal(size=(len(chunk), cache.dim)).astype(np.float32))
        open_ms = median_ms(lambda: GuideCache(guide, args.guide, root=Path(root)), args.repeats)
        verify_ms = median_ms(cache._failing_rows, args.repeats)
        batches = [list(rng.choice(texts, size=args.batch, replace=False)) for _ in range(args.lookups)]
        lookup = iter(batches * 2)
        embed_ms = median_ms(lambda: cache.embed(next(lookup)), args.lookups)

        def check(batch=batches[0]):
            digests = [text_digest(t) for t in batch]
            rows = np.fromiter((cache._rows[d] for d in digests), dtype=np.int64, count=len(digests))
            return (row_checksums(np.asarray(cache._array[rows]), digest_array(digests)) != cache._sums[rows]).any()

        check_ms = median_ms(check, args.lookups)
    size_mb = args.rows * cache.dim * 4 / 1e6
    print(f"{machine_line('torch')}; {args.rows} rows x {cache.dim} dims ({size_mb:.0f} MB), {args.repeats} opens, "
          f"{args.lookups} lookups of {args.batch} texts; medians.\n")
    print(table([[f"open ({args.rows} rows, every row verified)", f"{open_ms:.1f}", f"{verify_ms:.1f}"],
                 [f"lookup `embed` of {args.batch} texts", f"{embed_ms:.3f}", f"{check_ms:.3f} (incl. hashing the texts)"]],
                ["operation", "total ms", "of which checksums ms"]))
