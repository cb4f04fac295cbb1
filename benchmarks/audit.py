"""The whole-data-set audit's search (core.analysis.audit) without the guide: random unit vectors.

Times ``core.analysis.audit.audit`` on N rows of D-dimensional embeddings looked up from a table (so no
encode is measured), and reports wall and CPU seconds and peak memory. The search is two N x N x D
matrix products in chunks; its cost grows with N^2, which is how docs/PERFORMANCE.md extrapolates
to 100k rows.

    python -m benchmarks audit --rows 24000 --dim 384
"""

from __future__ import annotations

import resource

from benchmarks.harness import machine_line, table, timed

THREADED = True


def arguments(p) -> None:
    p.add_argument("--rows", type=int, default=24000)
    p.add_argument("--dim", type=int, default=384)


def run(args) -> None:
    import torch
    from datasets import Dataset

    from core.analysis.audit import AuditSettings, audit

    n, d = args.rows, args.dim
    ds = Dataset.from_dict({"anchor": [f"a{i}" for i in range(n)], "positive": [f"p{i}" for i in range(n)]})
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, d, generator=g)
    vectors = torch.cat([base, base + 1.5 * torch.randn(n, d, generator=g)])  # positives near their anchors
    row = {f"a{i}": i for i in range(n)} | {f"p{i}": n + i for i in range(n)}
    found = {}
    took = timed(lambda: found.setdefault("report", audit(ds, lambda texts: vectors[[row[t] for t in texts]],
                                                          AuditSettings())))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(machine_line("torch") + "\n")
    print(table([[n, d, f"{took.wall:.1f}", f"{took.cpu:.1f}", f"{peak:.0f}", found["report"].counts()]],
                ["rows", "dim", "wall s", "CPU s", "peak RSS MB", "findings"]))
