"""The audit's search at data-set size: exact against the FAISS index, time, peak memory and growth.

For each N (``--rows``) and each search (exact, index) one child process runs
``core.analysis.audit.audit`` on N rows of random D-dimensional embeddings looked up from a table
(no encode is measured; positives lie near their anchors, as in ``benchmarks audit``) and reports
wall and CPU seconds, its peak RSS and, for the index, the recall@k it measured against exact
search. Exact search is run up to ``--exact-max`` rows; beyond, its time is extrapolated from the
growth exponent fitted to the exact rows measured and labelled so. The exponent of each search
(slope of log time on log N) is printed under the table: ~2 for exact, near 1 for the index.

    python -m benchmarks audit_scale --rows 10000,100000,1000000 --exact-max 100000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys

from benchmarks.harness import ROOT, child_env, machine_line, table, timed

THREADED = True
SEARCHES = ("exact", "index")


def arguments(p) -> None:
    p.add_argument("--rows", default="10000,100000,1000000", help="comma-separated N (default 10k, 100k, 1M)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--exact-max", type=int, default=100_000, help="largest N searched exactly; above: extrapolated")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # N:search, measured in this process (a child)


def measure(n: int, dim: int, search: str) -> dict:
    """One audit of ``n`` random rows with ``search``, in this process: seconds, peak RSS, recall."""
    import torch
    from datasets import Dataset

    from core.analysis.audit import AuditSettings, audit
    from core.analysis.neighbours import NeighbourSettings

    ds = Dataset.from_dict({"anchor": [f"a{i}" for i in range(n)], "positive": [f"p{i}" for i in range(n)]})
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(2 * n, dim, generator=g)
    vectors[n:] = vectors[:n] + 1.5 * vectors[n:]  # positives near their anchors
    row = {f"a{i}": i for i in range(n)} | {f"p{i}": n + i for i in range(n)}
    found = {}
    settings = AuditSettings(neighbours=NeighbourSettings(method=search))
    took = timed(lambda: found.setdefault("r", audit(ds, lambda texts: vectors[[row[t] for t in texts]], settings)))
    how = found["r"].summary["search"]
    recall = how.get("recall_at_k", {})
    return {"rows": n, "search": search, "wall": took.wall, "cpu": took.cpu,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "recall": min((r["recall"] for r in recall.values()), default=None), "counts": found["r"].counts()}


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(seconds) on log(rows); None with fewer than two sizes."""
    if len(points) < 2:
        return None
    xs, ys = [math.log(n) for n, _ in points], [math.log(s) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(args) -> None:
    if args.one:
        n, search = args.one.split(":")
        print(json.dumps(measure(int(n), args.dim, search)))
        return
    sizes = [int(x) for x in args.rows.split(",")]
    results = []
    for n in sizes:
        for search in SEARCHES:
            if search == "exact" and n > args.exact_max:
                continue
            argv = [sys.executable, "-m", "benchmarks", "audit_scale", "--one", f"{n}:{search}", "--dim", str(args.dim)]
            argv += ["--threads", str(args.threads)] if args.threads else []
            out = subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, check=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    print(machine_line("torch", "faiss-cpu") + "\n")
    fitted = {s: exponent([(r["rows"], r["cpu"]) for r in results if r["search"] == s]) for s in SEARCHES}
    lines = []
    for n in sizes:
        for search in SEARCHES:
            r = next((r for r in results if r["rows"] == n and r["search"] == search), None)
            if r is not None:
                lines.append([f"{n:,}", search, f"{r['wall']:.1f}", f"{r['cpu']:.1f}", f"{r['peak_mb']:.0f}",
                              "exact" if r["recall"] is None else f"{r['recall']:.4f}", r["counts"]])
            else:
                lines.append([f"{n:,}", search, *_extrapolated(results, fitted[search], n, search)])
    print(table(lines, ["rows", "search", "wall s", "CPU s", "peak RSS MB", "recall@k", "findings"]))
    print("\nfitted growth exponent (CPU s ~ N^e): " +
          ", ".join(f"{s} {'n/a' if e is None else f'{e:.2f}'}" for s, e in fitted.items()))


def _extrapolated(results: list[dict], e: float | None, n: int, search: str) -> list[str]:
    measured = [r for r in results if r["search"] == search]
    if e is None or not measured:
        return ["not run", "not run", "-", "-", "-"]
    last = max(measured, key=lambda r: r["rows"])
    scale = (n / last["rows"]) ** e
    return [f"~{last['wall'] * scale:.0f} (extrapolated)", f"~{last['cpu'] * scale:.0f} (extrapolated)", "-", "-", "-"]
