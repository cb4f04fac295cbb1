"""core.analysis.experiment_mined: the rows the experiment trains on, and the mined data put back in place."""

from __future__ import annotations

from datasets import Dataset

from core.analysis.experiment import ExperimentConfig
from core.analysis.experiment_mined import ROW, _all_rows, mined_path, used_rows
from core.corpus.data import epoch_batches
from core.corpus.false_negatives import false_negative_plan


def grouped(n: int = 40) -> Dataset:
    return Dataset.from_dict({"anchor": [f"a{i}" for i in range(n)], "positive": [f"p{i}" for i in range(n)],
                              "negative": [f"n{i}" for i in range(n)], "group": [i // 2 for i in range(n)]})


def test_used_rows_hold_every_text_any_plan_trains_on():
    ds = grouped()
    config = ExperimentConfig(seeds=(0, 1), rates=(0.0, 0.25), steps=2, batch_size=8, homogeneous=False)
    used = used_rows(ds, config)
    texts = set(ds.select(used)["anchor"])
    for seed in (0, 1):
        assert {r for b in epoch_batches(ds, 8, seed, 0, False)[:2] for r in b} <= set(used)
        plan = false_negative_plan(ds, 8, seed, 0.25, steps=2)
        trained = {plan.pairs[r]["anchor"] for b in plan.batches(0)[:2] for r in b}
        assert trained <= texts  # the added rows are copies of used rows
    assert len(used) < len(ds)  # 2 steps of 8 at 2 seeds: not the whole data


def test_every_row_kept_in_order_with_mined_negatives_padding_and_provenance():
    ds = Dataset.from_dict({"anchor": ["a0", "a1", "a2"], "positive": ["p0", "p1", "p2"], "negative": ["n0", "n1", "n2"],
                            "positive_synset": ["s0", "s1", "s2"], "negative_synset": ["x", "y", "z"],
                            ROW: [0, 1, 2]})
    mined = Dataset.from_dict({ROW: [0, 2], "negative_1": ["p1", "p0"], "negative_2": ["p2", "p1"]})
    out, padded = _all_rows(ds, mined, 2)
    assert padded == 1 and out["anchor"] == ["a0", "a1", "a2"]
    assert out["negative_1"] == ["p1", "n1", "p0"] and out["negative_2"] == ["p2", "n1", "p1"]
    assert out["negative_1_synset"] == ["s1", "y", "s0"]  # a mined negative is a positive: its provenance
    assert "negative" not in out.column_names and "negative_synset" not in out.column_names and ROW not in out.column_names


def test_the_mined_file_is_named_by_what_decides_its_rows(tmp_path):
    config = ExperimentConfig(out=str(tmp_path), seeds=(0,))
    path = mined_path(config, "bundled:minilm-l3")
    assert path.parent == tmp_path / "mined" and path.name.startswith("minilm-l3-")
    assert mined_path(ExperimentConfig(out=str(tmp_path), seeds=(0, 1)), "bundled:minilm-l3") != path
    assert mined_path(ExperimentConfig(out=str(tmp_path), seeds=(0,), lr=1e-5), "bundled:minilm-l3") == path
