"""scripts/make_big_pairs.py: seeded, reworded rows of the bundled pairs that keep their ground truth."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_big_pairs.py"


def test_rows_are_seeded_reworded_and_keep_their_provenance():
    from core.analysis.audit import dataset_relations
    from core.corpus.bundled import bundled_pairs

    script = runpy.run_path(str(SCRIPT))  # its functions, without running main
    make, frames = script["make"], script["FRAMES"]
    ds = make(500, seed=1)
    assert len(ds) == 500 and ds["anchor"] == make(500, seed=1)["anchor"]
    assert ds["anchor"] != make(500, seed=2)["anchor"]
    assert {"anchor_synset", "positive_synset", "task"} <= set(ds.column_names)
    bundled = bundled_pairs()
    source = {(r["anchor_synset"], r["positive_synset"]): (k, r["positive"]) for k, r in enumerate(bundled)}
    drawn = []
    for row in ds.select(range(20)):
        k, original = source[(row["anchor_synset"], row["positive_synset"])]
        assert any(frame.format(original) == row["positive"] for frame in frames)
        drawn.append(k)
    own, drawn = np.arange(20), np.array(drawn)  # each row's own pair: the same relation as its source row's
    assert (dataset_relations(ds)(own, own) == dataset_relations(bundled)(drawn, drawn)).all()
