"""Cost of the whole-data-set audit's search (core/analysis/audit.py) without the guide: random unit vectors.

Times ``core.analysis.audit.audit`` on N rows of D-dimensional embeddings looked up from a table (so no
encode is measured), and reports wall and CPU seconds and peak memory. The search is two N x N x D
matrix products in chunks; its cost grows with N^2, which is how docs/PERFORMANCE.md extrapolates
to 100k rows.

    python scripts/bench_audit.py --rows 24000 --dim 384
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=24000)
    p.add_argument("--dim", type=int, default=384)
    args = p.parse_args()

    import torch
    from datasets import Dataset

    from core.analysis.audit import AuditSettings, audit

    n, d = args.rows, args.dim
    ds = Dataset.from_dict({"anchor": [f"a{i}" for i in range(n)], "positive": [f"p{i}" for i in range(n)]})
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, d, generator=g)
    vectors = torch.cat([base, base + 1.5 * torch.randn(n, d, generator=g)])  # positives near their anchors
    row = {f"a{i}": i for i in range(n)} | {f"p{i}": n + i for i in range(n)}
    started, cpu = time.perf_counter(), time.process_time()
    report = audit(ds, lambda texts: vectors[[row[t] for t in texts]], AuditSettings())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows {n}, dim {d}, torch threads {torch.get_num_threads()}: {wall:.1f} s wall, {cpu:.1f} CPU-s, "
          f"peak RSS {peak:.0f} MB, findings {report.counts()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
