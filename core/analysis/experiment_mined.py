"""The ``mined`` arm's data: the training data with its negatives replaced by guide-filtered mined ones.

Mined once per experiment and student (core.analysis.mining with its defaults: the student as
retriever, :data:`core.analysis.experiment_plan.HARD_GUIDE` as filter) and stored in the experiment's
folder with the mining summary beside it; a rerun reuses both. Only the rows the experiment trains on
are mined (:func:`used_rows`: every row of the first ``steps`` batches of every (seed, rate) plan, the
rows a false-negative rate adds included), with their positives as the candidates, because encoding
the whole bundled data with two models takes longer on 2 CPU cores than the rest of the experiment;
the file's name carries a digest of what decides those rows. Every row of the data is kept, in its
order, with its task and ground-truth columns, so the mined arm draws the same batches as every other
arm at a (rate, seed), and a false-negative rate can still be applied on top (its added rows are rows
of this data: they carry their source row's mined negatives). A row not mined (never trained on) or
left by mining with fewer than ``num_negatives`` survivors (mine() would drop it) fills its empty
slots with the data's own negative (else another row's positive); the summary counts both
(``rows_not_used``, ``rows_padded``). The mined negatives'
ground truth is the provenance of the row whose positive they are (``negative_<k>_synset`` ...), so
the a-n block is judged like the others.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from core.analysis.experiment_plan import HARD_GUIDE, short_name
from core.corpus.data import PROVENANCE_KINDS, negative_columns

if TYPE_CHECKING:
    from core.analysis.experiment import ExperimentConfig

ROW = "_row"  # the original row id, carried through mining to put its negatives back in place


def mined_path(config: ExperimentConfig, student: str) -> Path:
    """Where the mined data of ``student`` lives in the experiment's folder, named by what decides its rows."""
    decides = {"data": config.data, "seeds": list(config.seeds), "rates": [float(r) for r in config.rates],
               "steps": config.steps, "batch_size": config.batch_size, "homogeneous": config.homogeneous}
    digest = hashlib.sha1(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:6]
    return config.root() / "mined" / f"{short_name(student)}-{digest}.parquet"


def used_rows(ds, config: ExperimentConfig) -> list[int]:
    """Ids of the rows of ``ds`` any arm of ``config`` trains on: the first ``steps`` batches of each
    (seed, rate) plan (core.corpus.false_negatives), a rate's added rows as the rows they copy."""
    from core.corpus.false_negatives import false_negative_plan

    marked = ds.add_column(ROW, list(range(len(ds))))
    used: set[int] = set()
    for seed in config.seeds:
        for rate in dict.fromkeys(config.rates):
            plan = false_negative_plan(marked, config.batch_size, seed, rate, homogeneous=config.homogeneous,
                                       steps=config.steps)
            source = plan.pairs[ROW]
            batches = [b for epoch in range(len(plan.epoch_plans)) for b in plan.batches(epoch)][:config.steps]
            used.update(source[r] for b in batches for r in b)
    return sorted(used)


def summary_path(data: Path) -> Path:
    """The mining summary beside the mined data."""
    return data.with_name(data.stem + ".summary.json")


def read_summary(data: Path) -> dict | None:
    """The mining summary of ``data`` (None when not mined yet or unreadable)."""
    try:
        return json.loads(summary_path(data).read_text())
    except (OSError, ValueError):
        return None


def ensure_mined(config: ExperimentConfig, student: str, log: Callable[[str], None] = lambda m: None) -> Path:
    """Mine the experiment's data for ``student`` (:func:`mined_path`) unless its summary is already there
    (written last)."""
    out = mined_path(config, student)
    if read_summary(out) is not None and out.is_file():
        return out
    from core.analysis.mining import MiningSettings, mine
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.guides.models import load_guide, load_model

    ds = load_pairs(config.data)
    settings = MiningSettings()
    used = used_rows(ds, config)
    if len(set(ds.select(used)["positive"])) <= settings.candidates:  # too few to retrieve from: mine them all
        used = list(range(len(ds)))
    log(f"mining negatives for the mined arm ({student} retrieves, {HARD_GUIDE} filters) for the {len(used):,} "
        f"rows the experiment trains on, into {out}")
    ds = ds.add_column(ROW, list(range(len(ds))))
    result = mine(ds.select(used), load_model(student), GuideCache(load_guide(HARD_GUIDE, student), HARD_GUIDE).embed,
                  settings, about={"data": config.data, "retriever": student, "guide": HARD_GUIDE})
    full, padded = _all_rows(ds, result.dataset, settings.num_negatives)
    out.parent.mkdir(parents=True, exist_ok=True)
    full.to_parquet(str(out))
    summary = {**result.summary, "rows_not_used": len(ds) - len(used),
               "rows_padded": padded - (len(ds) - len(used))}
    summary_path(out).write_text(json.dumps(summary, indent=2))
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
    kept = {kind: ds[f"negative_{kind}"] for kind in provenance if own and f"negative_{kind}" in ds.column_names}
    for j in range(k):
        texts = [row[j] for row in rows]
        out = out.add_column(f"negative_{j + 1}", texts)
        for kind, of in provenance.items():  # a padded slot keeps its own negative's provenance
            mined_slot = [r in found or kind not in kept for r in range(len(ds))]
            out = out.add_column(f"negative_{j + 1}_{kind}", [of.get(t) if m else kept[kind][r]
                                                              for r, (t, m) in enumerate(zip(texts, mined_slot))])
    return out, padded
