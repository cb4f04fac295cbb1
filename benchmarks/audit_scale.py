"""The audit's search at data-set size: exact against the FAISS index, time, peak memory, recall and growth.

For each N (``--rows``) and each search (exact, index) one child process runs
``core.analysis.audit.audit`` on N rows of synthetic embeddings, memory-mapped from a ``.npy`` file
(``np.load(mmap_mode="r")``) and looked up by text (no encode is measured), and reports wall and
CPU seconds, its peak RSS (``getrusage`` maxrss: FAISS allocates outside Python, tracemalloc would
miss it; it counts the resident pages of memory-mapped files too: the embeddings, the audit's own
spilled copy and the index's lists), its peak *anonymous* memory (``RssAnon`` sampled every 50 ms:
what the process must hold, the target's "bounded by the embeddings"; in brackets, what it held
before the audit began: Python, torch, datasets and the row texts), the embeddings' own size
for comparison, and, for the index, the recall@k it measured against exact search with the nprobe it chose
per search (a-p/p-p; ``exact`` where a quarter of the lists missed the target and it searched exactly).
Exact search runs up to ``--exact-max`` rows; beyond, its time is extrapolated as N^2 (its cost is
two N x N x D products) from the largest N measured, and labelled so. The growth exponent of each
search (slope of log CPU time on log N over the sizes measured) is printed under the table.

The embeddings (``--data``):

- ``clustered`` (default): a seeded Gaussian mixture around centres that are real guide embeddings
  (``bundled:minilm-l6`` on the bundled positives, encoded once; its rate is printed as the one real
  encode rate). Anchors lie around a centre (cosine ~0.8), each positive near its anchor (~0.82);
  every ``PARAPHRASE_EVERY``-th anchor is a paraphrase of the one before (cosine ~0.99: the other's
  positive is a false negative for it) and every ``DUPLICATE_EVERY``-th positive a near-copy of the
  one before (~0.999), so every kind of finding occurs. An audit sees data like this: texts on a few thousand topics, near neighbours to find.
- ``random``: isotropic Gaussian vectors. In 384 dimensions their cosines all concentrate near 0, so
  no row has a near neighbour: the worst case for any approximate index (its lists or graph cannot
  tell near from far) and nothing an audit meets; an IVF index then probes nearly every list.

    python -m benchmarks audit_scale --rows 10000,100000,1000000 --exact-max 100000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT, AnonymousPeak, child_env, machine_line, table, timed

THREADED = True
SEARCHES = ("exact", "index")
DATA = ("clustered", "random")
CENTRES = 2000  # bundled positives encoded as the mixture's centres
ANCHOR_SPREAD = 0.75  # noise norm around a centre: cosine ~ 1 / sqrt(1 + 0.75^2) = 0.8
POSITIVE_SPREAD = 0.7  # noise norm of a positive around its anchor: cosine ~0.82
PARAPHRASE_EVERY = 20  # every 20th anchor paraphrases the one before (noise norm 0.15: cosine ~0.99)
DUPLICATE_EVERY = 50  # every 50th positive is a near-copy of the one before (cosine ~0.999)
GENERATE_CHUNK = 65536


def arguments(p) -> None:
    p.add_argument("--rows", default="10000,100000,1000000", help="comma-separated N (default 10k, 100k, 1M)")
    p.add_argument("--data", choices=DATA, default="clustered", help="synthetic embeddings (see above; default clustered)")
    p.add_argument("--dim", type=int, default=384, help="dimension of random embeddings (clustered: the guide's)")
    p.add_argument("--exact-max", type=int, default=100_000, help="largest N searched exactly; above: extrapolated")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # N:search:vectors.npy, measured in a child
    p.add_argument("--centres", default=None, help=argparse.SUPPRESS)  # the centres' .npy (clustered data)


def encoded_centres(count: int = CENTRES) -> tuple[np.ndarray, float]:
    """Unit guide embeddings of ``count`` bundled positives, and the encode rate in texts per second."""
    from core.corpus.data import load_pairs
    from core.guides.models import DEFAULT_GUIDE, load_guide

    texts = list(dict.fromkeys(load_pairs("bundled")["positive"]))[:count]
    guide = load_guide(DEFAULT_GUIDE)
    started = time.perf_counter()
    vectors = guide.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32), len(texts) / (time.perf_counter() - started)


def write_vectors(path: Path, n: int, dim: int, centres: np.ndarray | None, seed: int = 0) -> None:
    """``2n`` unit rows (anchors, then their positives) into the ``.npy`` at ``path``, a chunk at a time
    (never all in memory): around ``centres`` (clustered) or isotropic (None)."""
    rng = np.random.default_rng(seed)
    dim = dim if centres is None else centres.shape[1]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(2 * n, dim))

    def unit(x):
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def noise(rows, norm):
        return rng.standard_normal((rows, dim), dtype=np.float32) * (norm / math.sqrt(dim))

    for start in range(0, n, GENERATE_CHUNK):
        rows = min(GENERATE_CHUNK, n - start)
        if centres is None:
            anchors = unit(rng.standard_normal((rows, dim), dtype=np.float32))
            positives = unit(anchors + noise(rows, 1.5))
        else:
            anchors = unit(centres[rng.integers(len(centres), size=rows)] + noise(rows, ANCHOR_SPREAD))
            paraphrases = np.arange(1, rows, PARAPHRASE_EVERY)
            anchors[paraphrases] = unit(anchors[paraphrases - 1] + noise(len(paraphrases), 0.15))
            positives = unit(anchors + noise(rows, POSITIVE_SPREAD))
            copies = np.arange(1, rows, DUPLICATE_EVERY)
            positives[copies] = unit(positives[copies - 1] + noise(len(copies), 0.04))
        out[start:start + rows], out[n + start:n + start + rows] = anchors, positives
    out.flush()


def measure(n: int, search: str, vectors_path: str) -> dict:
    """One audit of the ``n`` rows memory-mapped at ``vectors_path`` with ``search``, in this process."""
    import torch
    from datasets import Dataset

    from core.analysis.audit import AuditSettings, audit
    from core.analysis.neighbours import NeighbourSettings

    vectors = np.load(vectors_path, mmap_mode="r")
    ds = Dataset.from_dict({"anchor": [f"a{i}" for i in range(n)], "positive": [f"p{i}" for i in range(n)]})

    def embed(texts: list[str]) -> torch.Tensor:
        rows = [int(t[1:]) + (n if t[0] == "p" else 0) for t in texts]
        return torch.from_numpy(vectors[rows])

    found = {}
    settings = AuditSettings(neighbours=NeighbourSettings(method=search))
    before = AnonymousPeak.now()  # Python, torch, datasets and the row texts: held before the audit starts
    with AnonymousPeak() as anonymous:
        took = timed(lambda: found.setdefault("r", audit(ds, embed, settings)))
    how = found["r"].summary["search"]
    recalls = list(how.get("recall_at_k", {}).values())
    return {"rows": n, "search": search, "wall": took.wall, "cpu": took.cpu,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "anon_mb": anonymous.mb, "anon_before_mb": before, "embeddings_mb": vectors.nbytes / 2**20,
            "recall": min((r["recall"] for r in recalls), default=None),
            "nprobe": "/".join(str(r.get("nprobe", "exact")) for r in recalls) or None,
            "counts": found["r"].counts()}


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(rows); None with fewer than two sizes."""
    if len(points) < 2:
        return None
    xs, ys = [math.log(n) for n, _ in points], [math.log(s) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(args) -> None:
    if args.one:
        if args.threads:  # --threads means torch's threads; FAISS (OpenMP) gets as many
            import faiss

            faiss.omp_set_num_threads(args.threads)
        n, search, path = args.one.split(":", 2)
        print(json.dumps(measure(int(n), search, path)))
        return
    sizes = [int(x) for x in args.rows.split(",")]
    centres, rate = encoded_centres() if args.data == "clustered" else (None, None)
    results = []
    with tempfile.TemporaryDirectory(prefix="gistlab-audit-scale-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"vectors-{n}.npy"
            write_vectors(path, n, args.dim, centres)
            for search in SEARCHES:
                if search == "exact" and n > args.exact_max:
                    continue
                argv = [sys.executable, "-m", "benchmarks", "audit_scale", "--one", f"{n}:{search}:{path}"]
                argv += ["--threads", str(args.threads)] if args.threads else []
                out = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, check=True).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
            path.unlink()
    print(machine_line("torch", "faiss-cpu") + "\n")
    print(f"data: {args.data}" + (f" (centres: {len(centres)} bundled positives encoded by bundled:minilm-l6 at "
                                  f"{rate:.0f} texts/s)" if centres is not None else f", {args.dim}-d") + "\n")
    print(table(rows(results, sizes), ["rows", "search", "wall s", "CPU s", "peak RSS MB (with mapped files)",
                                       "peak anonymous MB (before)", "embeddings MB", "recall@k (min)", "nprobe (a-p/p-p)",
                                       "findings"]))
    fitted = {s: exponent([(r["rows"], r["cpu"]) for r in results if r["search"] == s]) for s in SEARCHES}
    print("\nfitted growth exponent (CPU s ~ N^e over the sizes measured): " +
          ", ".join(f"{s} {'n/a' if e is None else f'{e:.2f}'}" for s, e in fitted.items()))


def rows(results: list[dict], sizes: list[int]) -> list[list]:
    """The table's lines: each measured cell, and exact search extrapolated where it was not run."""
    lines = []
    for n in sizes:
        for search in SEARCHES:
            r = next((r for r in results if r["rows"] == n and r["search"] == search), None)
            if r is not None:
                anon = "-" if r["anon_mb"] is None else f"{r['anon_mb']:.0f} ({r['anon_before_mb']:.0f})"
                recall = "exact" if r["recall"] is None else f"{r['recall']:.4f}"
                lines.append([f"{n:,}", search, f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{r['peak_mb']:.0f}", anon,
                              f"{r['embeddings_mb']:.0f}", recall, r.get("nprobe") or "-", r["counts"]])
            else:
                lines.append([f"{n:,}", search, *_extrapolated(results, n, search)])
    return lines


def _extrapolated(results: list[dict], n: int, search: str) -> list[str]:
    """Exact search's seconds at ``n`` as N^2 from the largest N measured (its cost is two N x N products)."""
    measured = [r for r in results if r["search"] == search]
    if search != "exact" or not measured:
        return ["not run", "not run", "-", "-", "-", "-", "-", "-"]
    last = max(measured, key=lambda r: r["rows"])
    scale = (n / last["rows"]) ** 2
    return [f"~{last['wall'] * scale:.0f} (extrapolated, N^2)", f"~{last['cpu'] * scale:.0f} (extrapolated, N^2)",
            "-", "-", "-", "-", "-", "-"]
