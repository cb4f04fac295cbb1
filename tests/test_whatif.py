"""The margin sweep equals guided_mask at every margin and only grows with the margin."""

import numpy as np
import pytest

from core.analysis.inspect import Batch, embed_batch, encoder, mask_batch
from core.method.masking import MarginSettings
from core.analysis.whatif import ALL, margin_sweep

MARGINS = [-0.2, -0.05, 0.0, 0.05, 0.1, 0.3, 0.6]


@pytest.fixture
def batches():
    a = ["a cat sat on the mat", "dogs bark at night", "the stock market fell", "a kitten on a rug"]
    p = ["feline resting", "canine noise", "shares dropped", "young cat lying down"]
    n = ["a car engine", "dogs bark at night", "a red apple", "cold ice"]
    return [Batch([0, 1, 2, 3], a, p, [n], ["negative"]),
            Batch([3, 2, 1, 0], a[::-1], p[::-1], [n[::-1]], ["negative"])]


class Counting:
    def __init__(self, model):
        self.embed, self.calls = encoder(model), 0

    def __call__(self, texts):
        self.calls += 1
        return self.embed(texts)


@pytest.mark.parametrize("contrast", [(True, True), (False, True), (True, False)])
def test_sweep_equals_guided_mask_at_each_margin(minilm_l6, batches, contrast):
    guide = Counting(minilm_l6)
    table = margin_sweep(batches, guide, MARGINS, *contrast)
    assert guide.calls == len(batches)  # one encode per batch for the whole sweep
    embedded = [embed_batch(b, encoder(minilm_l6)) for b in batches]
    for strategy in ("absolute", "relative"):
        for margin in MARGINS:
            settings = MarginSettings(strategy, margin, *contrast)
            masks = [mask_batch(b, e, settings) for b, e in zip(batches, embedded)]
            got = table[(table.strategy == strategy) & (table.margin == margin)].set_index("block")
            for block in masks[0].blocks:
                assert got.loc[block, "masked"] == sum(int(m.masked_candidates(block).sum()) for m in masks)
                assert got.loc[block, "candidates"] == sum(int(m.candidates[block].sum()) for m in masks)
            total = sum(int(m.masked_candidates(b).sum()) for m in masks for b in m.blocks)
            assert got.loc[ALL, "masked"] == total


def test_fraction_non_decreasing_in_margin(minilm_l6, batches):
    table = margin_sweep(batches, encoder(minilm_l6), np.linspace(-0.5, 1.0, 31))
    for (_, _), curve in table.groupby(["strategy", "block"]):
        fractions = curve.sort_values("margin").masked_fraction.to_numpy()
        assert (np.diff(fractions) >= 0).all()
        assert 0.0 <= fractions.min() and fractions.max() <= 1.0
    # the identical text (row 1's negative = its anchor) stays masked even at margin -0.5
    low = table[(table.margin == -0.5) & (table.block == "a-n")]
    assert (low.masked >= 2).all()  # once per batch
    assert set(table.block) == {"a-p", "a-a", "p-p", "a-n", ALL}


def test_precision_recall_floor_and_tasks_equal_the_mask_quality_at_each_margin(minilm_l6):
    """Bundled batches (ground truth, tasks) of two sizes: every sweep row equals mask_quality of
    guided_mask at that margin, with and without the floor; progress reports every batch."""
    from core.corpus.data import load_pairs
    from core.method.groundtruth import mask_quality

    ds = load_pairs("bundled")
    batches = [Batch.draw(ds, 12, seed) for seed in range(3)] + [Batch.draw(ds, 7, 9)]
    calls = []
    table = margin_sweep(batches, encoder(minilm_l6), [0.0, 0.1, 0.3], positive_floor=0.4, by_task=True,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)] and table.attrs["ground_truth"]
    embedded = [embed_batch(b, encoder(minilm_l6)) for b in batches]
    for floor in (None, 0.4):
        for margin in (0.0, 0.3):
            settings = MarginSettings("relative", margin, positive_floor=floor)
            masks = [mask_batch(b, e, settings) for b, e in zip(batches, embedded)]
            quality = sum(mask_quality(m, b.relations(m.blocks), b.tasks).set_index(["task", "block"])
                          [["masked", "candidates", "masked_false-negative", "masked_same-word",
                            "masked_same-category", "masked_unrelated", "false_negatives"]]
                          for b, m in zip(batches, masks))
            got = table[(table.strategy == "relative") & (table.margin == margin)
                        & (table.positive_floor.isna() if floor is None else table.positive_floor == floor)]
            got = got.set_index(["task", "block"])
            assert len(got) == len(quality.dropna())  # every task of every batch, every block and all
            for key, row in quality.dropna().iterrows():
                for column in row.index:
                    assert got.loc[key, column] == row[column], (floor, margin, key, column)
                masked, caught = row["masked"], row["masked_false-negative"]
                expect = caught / masked if masked else np.nan  # false negatives masked / masked
                assert got.loc[key, "precision"] == pytest.approx(expect, nan_ok=True)
                related = (row["masked_same-word"] + row["masked_same-category"]) / masked if masked else np.nan
                assert got.loc[key, "share_related"] == pytest.approx(related, nan_ok=True)
                present = row["false_negatives"]
                assert got.loc[key, "recall"] == pytest.approx(caught / present if present else np.nan,
                                                               nan_ok=True)


def test_without_ground_truth_the_quality_columns_are_empty(minilm_l6, batches):
    table = margin_sweep(batches, encoder(minilm_l6), MARGINS)
    assert not table.attrs["ground_truth"] and table["precision"].isna().all()
    assert set(table.task) == {ALL} and table.positive_floor.isna().all()
