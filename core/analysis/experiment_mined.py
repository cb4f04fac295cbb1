"""The ``mined`` arm's data: the training data with its negatives replaced by guide-filtered mined ones.

Mined once per experiment and student (core.analysis.mining with its defaults: the student as
retriever, :data:`core.analysis.experiment_plan.HARD_GUIDE` as filter) and stored in the experiment's
folder with the mining summary beside it; a rerun reuses both. Every row of the data is kept, in its
order, with its task and ground-truth columns, so the mined arm draws the same batches as every other
arm at a (rate, seed), and a false-negative rate can still be applied on top (its added rows are rows
of this data: they carry their source row's mined negatives). A row mining left with fewer than
``num_negatives`` survivors (mine() would drop it) fills its empty slots with the data's own negative
(else another row's positive) and is counted in the summary (``rows_padded``). The mined negatives'
ground truth is the provenance of the row whose positive they are (``negative_<k>_synset`` ...), so
the a-n block is judged like the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from core.analysis.experiment_plan import HARD_GUIDE, short_name
from core.corpus.data import PROVENANCE_KINDS, negative_columns

ROW = "_row"  # the original row id, carried through mining to put its negatives back in place


def mined_path(root: Path, student: str) -> Path:
    """Where the mined data of ``student`` lives in the experiment folder ``root``."""
    return root / "mined" / f"{short_name(student)}.parquet"


def summary_path(data: Path) -> Path:
    """The mining summary beside the mined data."""
    return data.with_name(data.stem + ".summary.json")


def read_summary(data: Path) -> dict | None:
    """The mining summary of ``data`` (None when not mined yet or unreadable)."""
    try:
        return json.loads(summary_path(data).read_text())
    except (OSError, ValueError):
        return None


def ensure_mined(data: str, student: str, out: Path, log: Callable[[str], None] = lambda m: None) -> Path:
    """Mine ``data`` for ``student`` into ``out`` unless its summary is already there (written last)."""
    if read_summary(out) is not None and out.is_file():
        return out
    from core.analysis.mining import MiningSettings, mine
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.guides.models import load_guide, load_model

    log(f"mining negatives for the mined arm ({student} retrieves, {HARD_GUIDE} filters) into {out}")
    ds = load_pairs(data)
    ds = ds.add_column(ROW, list(range(len(ds))))
    settings = MiningSettings()
    result = mine(ds, load_model(student), GuideCache(load_guide(HARD_GUIDE, student), HARD_GUIDE).embed, settings,
                  about={"data": data, "retriever": student, "guide": HARD_GUIDE})
    full, padded = _all_rows(ds, result.dataset, settings.num_negatives)
    out.parent.mkdir(parents=True, exist_ok=True)
    full.to_parquet(str(out))
    summary_path(out).write_text(json.dumps({**result.summary, "rows_padded": padded}, indent=2))
    return out


def _all_rows(ds, mined, k: int):
    """``ds`` (without its old negatives and their provenance) with ``negative_1..k`` from ``mined``
    for every row; rows mining dropped are padded (module docstring). Returns (data, padded rows)."""
    found = dict(zip(mined[ROW], zip(*(mined[f"negative_{j + 1}"] for j in range(k)))))
    own = ds[negative_columns(ds)[0]] if negative_columns(ds) else None
    positives = ds["positive"]
    rows, padded = [], 0
    for r in range(len(ds)):
        if r in found:
            rows.append(list(found[r]))
        else:
            padded += 1
            rows.append([own[r] if own else positives[(r + 1) % len(ds)]] * k)
    old = [c for c in ds.column_names if c.startswith("negative")]
    out = ds.remove_columns([*old, ROW])
    provenance = {kind: dict(zip(positives, ds[f"positive_{kind}"])) for kind in PROVENANCE_KINDS
                  if f"positive_{kind}" in ds.column_names}
    for j in range(k):
        texts = [row[j] for row in rows]
        out = out.add_column(f"negative_{j + 1}", texts)
        for kind, of in provenance.items():
            out = out.add_column(f"negative_{j + 1}_{kind}", [of.get(t) for t in texts])
    return out, padded
