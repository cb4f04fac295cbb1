"""core.corpus.false_negatives: the rate measured on sampled batches is close to the one asked for,
deterministic per seed, ground truth kept; training at a rate records it and pairs arms on identical batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset

from core.corpus.data import load_pairs, sample_batch
from core.corpus.false_negatives import (
    add_false_negatives, check_rate, cluster_sizes, false_negative_plan, with_false_negatives,
)
from core.errors import GistlabError
from core.method.groundtruth import FALSE_NEGATIVE


@pytest.fixture(scope="module")
def bundled():
    return load_pairs("bundled")


def a_p_false_negatives_per_row(ds, rows) -> float:
    """Mean count, per row, of other rows' positives that are false negatives of it (the a-p block)."""
    from core.analysis.inspect import Batch

    rel = Batch.from_dataset(ds, rows).relations(("a-p",))["a-p"].numpy()
    off = ~np.eye(len(rows), dtype=bool)
    return float(((rel == FALSE_NEGATIVE) & off).sum() / len(rows))


@pytest.mark.parametrize("size", [16, 64])
def test_cluster_sizes_fill_the_batch_at_the_mean_rate(size):
    for rate in (0.0, 0.05, 0.1, 0.2, 0.5):
        sizes = cluster_sizes(size, rate)
        assert sum(sizes) == size and min(sizes) >= 1
        partners = sum(k * (k - 1) for k in sizes) / size  # a row in a cluster of k has k - 1 partners
        assert partners == pytest.approx(rate * size, abs=0.6), (size, rate, sizes)


@pytest.mark.parametrize("task", ["example_definition", "words_definition"])
def test_measured_rate_is_close_to_the_requested_one(bundled, task):
    # random batches of the definition tasks hold almost no false negative: what is measured is what was added
    for size, rate in ((16, 0.1), (32, 0.05), (64, 0.1), (64, 0.2)):
        measured = []
        for seed in range(4):
            pairs, rows = with_false_negatives(bundled, sample_batch(bundled, size, seed, task), rate, seed)
            assert len(rows) == size and len(set(rows)) == size
            measured.append(a_p_false_negatives_per_row(pairs, rows))
        assert np.mean(measured) == pytest.approx(rate * size, rel=0.15), (size, rate)
        assert a_p_false_negatives_per_row(bundled, sample_batch(bundled, size, 0, task)) < 0.1


def test_deterministic_per_seed_and_ground_truth_kept(bundled):
    rows = sample_batch(bundled, 32, 7)
    one, batch_one = with_false_negatives(bundled, rows, 0.15, seed=7)
    two, batch_two = with_false_negatives(bundled, rows, 0.15, seed=7)
    assert batch_one == batch_two and one[batch_one] == two[batch_two]
    three, other = with_false_negatives(bundled, rows, 0.15, seed=8)
    assert len(one) > len(bundled) and set(one.column_names) == set(bundled.column_names)
    assert one[len(bundled) - 1] == bundled[len(bundled) - 1]  # original rows keep their ids and texts
    added = [r for r in batch_one if r >= len(bundled)]
    assert added and batch_one[0] == rows[0]  # a cluster starts with its source row
    picked = one[batch_one]
    for k, r in enumerate(batch_one):  # every added row has the meaning of its cluster's source, and its task
        if r >= len(bundled):
            source = max(j for j in range(k) if batch_one[j] < len(bundled))
            relation = "positive_category" if picked["task"][source] == "category_triplet" else "positive_synset"
            assert picked[relation][k] == picked[relation][source] and picked["task"][k] == picked["task"][source]
    assert three[other]["anchor"] != one[batch_one]["anchor"]  # another seed draws other rows of each meaning


def test_rate_zero_is_the_data_as_it_is_and_bad_rates_or_data_are_refused(bundled):
    rows = sample_batch(bundled, 8, 0)
    assert with_false_negatives(bundled, rows, 0.0, 0) == (bundled, rows)
    for bad in (-0.1, 0.9, float("nan")):
        with pytest.raises(GistlabError, match="--false-negatives must be a rate"):
            check_rate(bad)
    plain = Dataset.from_dict({"anchor": list("abcd"), "positive": list("efgh")})
    with pytest.raises(GistlabError, match="needs data with ground truth"):
        add_false_negatives(plain, [[0, 1, 2, 3]], 0.5, 0)


def test_group_data_gets_rows_of_the_same_group():
    ds = Dataset.from_dict({"anchor": [f"a{k}" for k in range(12)], "positive": [f"p{k}" for k in range(12)],
                            "group": [k // 3 for k in range(12)]})
    pairs, [batch] = add_false_negatives(ds, [[0, 3, 6, 9]], 0.5, 0)  # clusters of 3: 2 partners per row
    groups = pairs[batch]["group"]
    assert groups[:3] == [0, 0, 0] and len(set(pairs[batch]["anchor"][:3])) == 3  # other rows of the group first


def test_plan_covers_the_steps_and_is_the_same_for_every_call(bundled):
    small = bundled.select(range(0, 24000, 100))  # 240 rows: 7 batches of 32 an epoch
    plan = false_negative_plan(small, 32, seed=1, rate=0.1, steps=10)
    again = false_negative_plan(small, 32, seed=1, rate=0.1, steps=10)
    assert len(plan.epoch_plans) == 2 and plan.epoch_plans == again.epoch_plans
    assert plan.batches(2) == plan.batches(0) and plan.added_rows == len(plan.pairs) - len(small)
    assert all(len(b) == 32 for epoch in plan.epoch_plans for b in epoch)


@pytest.mark.filterwarnings("ignore:learns nothing")  # a random tiny guide masks every candidate
def test_training_at_a_rate_records_it_and_pairs_arms_on_identical_batches(bundled, tiny_model_dir, tmp_path):
    """Both arms train on the same rebuilt batches; the run records the rate and false negatives per
    step; the recorded masks judged again (core.analysis.run_quality) give the recorded figures."""
    from core.analysis.run_quality import run_quality
    from core.training.runs import read_metrics
    from core.training.train import TrainConfig, train_arms

    data = tmp_path / "pairs.parquet"
    bundled.select(range(0, 24000, 200)).to_parquet(data)
    common = dict(data=str(data), student=str(tiny_model_dir), guide=str(tiny_model_dir), steps=2, batch_size=8,
                  false_negatives=0.25, margin=0.1, margin_strategy="relative")
    configs = [TrainConfig.from_dict({"loss": loss, "out": str(tmp_path / "{loss}"), **common}) for loss in ("gist", "mnrl")]
    runs = list(train_arms(configs))
    batches = [(run / "batches.jsonl").read_text() for run in runs]
    assert batches[0] == batches[1] and max(max(json.loads(x)["rows"]) for x in batches[0].splitlines()) >= 120
    assert json.loads((runs[0] / "config.json").read_text())["false_negatives"] == 0.25
    metrics = read_metrics(runs[0])
    assert (metrics["fn_present"] > 0).all()  # about 2 right answers per row and block at rate 0.25 of 8
    judged = run_quality(runs[0]).set_index("step")
    for _, step in metrics.iterrows():
        for key in ("fn_present", "fn_caught", "fn_precision", "fn_recall"):
            got, recorded = judged.loc[step["step"], key], step[key]
            assert (got == recorded) or (got != got and recorded != recorded), (step["step"], key)


def test_ground_truth_is_a_group_column_or_the_bundled_provenance():
    from core.corpus.false_negatives import has_ground_truth

    assert has_ground_truth(["anchor", "positive", "group"]) and has_ground_truth(["anchor", "positive_synset"])
    assert not has_ground_truth(["anchor", "positive", "anchor_synset"])  # the positive's meaning is what counts
