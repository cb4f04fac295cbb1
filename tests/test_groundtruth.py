"""Ground truth of masks: relations cell by cell on hand-made batches, precision/recall by hand."""

import math

import pytest
import torch

from core.method.groundtruth import (
    RELATIONS, SAME_CATEGORY, SAME_MEANING, SAME_WORD, UNRELATED, ground_truth, mask_quality,
    relations, step_quality,
)
from core.method.masking import BLOCKS, BatchMask

M, W, C, U = SAME_MEANING, SAME_WORD, SAME_CATEGORY, UNRELATED

# Three rows: 0 "bank (river)" example -> definition; 1 "bank (money)"; 2 a dog, with a category-
# triplet-like positive (another animal). Negatives: row 0's is the money bank, row 1's a river
# (same category as row 0), row 2's an unrelated verb.
COLUMNS = {
    "anchor": ["we sat on the bank", "the bank lent money", "a dog barked"],
    "positive": ["sloping land by water", "a financial institution", "a feline mammal"],
    "negative": ["a financial institution", "a large natural stream", "move fast"],
    "task": ["ex", "ex", "cat"],
    "anchor_synset": ["n1", "n2", "n3"], "positive_synset": ["n1", "n2", "n4"],
    "negative_synset": ["n2", "n5", "v6"],
    "anchor_lemmas": [["bank"], ["bank", "depository"], ["dog"]],
    "positive_lemmas": [["bank"], ["Bank", "depository"], ["cat"]],
    "negative_lemmas": [["bank", "depository"], ["river"], ["run"]],
    "anchor_category": ["noun.object", "noun.group", "noun.animal"],
    "positive_category": ["noun.object", "noun.group", "noun.animal"],
    "negative_category": ["noun.group", "noun.object", "verb.motion"],
}


def test_no_ground_truth_without_provenance_or_group():
    assert ground_truth({"anchor": ["a"], "positive": ["b"], "task": ["t"]}) is None
    # half the provenance is not ground truth either
    assert ground_truth({"anchor": ["a"], "positive": ["b"], "anchor_synset": ["n1"]}) is None


def test_relations_cell_by_cell():
    truth = ground_truth(COLUMNS, ["negative"])
    assert truth.source == "wordnet"
    rel = relations(truth, BLOCKS)
    # a-p: row 0 vs p1 (money bank, shares the word "bank"), row 1 vs p0 likewise; animals apart.
    assert rel["a-p"].tolist() == [[M, W, U], [W, M, U], [U, U, M]]
    assert rel["a-a"].tolist() == [[M, W, U], [W, M, U], [U, U, M]]
    assert rel["p-p"].tolist() == rel["a-p"].tolist()  # relation to the row, whatever the row side
    # a-n: n0 is row 1's own synset (same-meaning for row 1, same-word for row 0); n1 a river
    # (noun.object: row 0's category); n2 a verb: unrelated to all.
    assert rel["a-n"].tolist() == [[W, C, U], [M, U, U], [U, U, U]]
    assert rel["a-n"].dtype == torch.int8
    # only the blocks asked for
    assert set(relations(truth, ("a-p",))) == {"a-p"}


def test_group_column_makes_rows_of_one_group_same_meaning():
    columns = {"anchor": list("abcd"), "positive": list("efgh"), "negative": list("ijkl"),
               "group": [7, 7, 8, None]}
    truth = ground_truth(columns, ["negative"])
    assert truth.source == "group"
    rel = relations(truth, BLOCKS)
    assert rel["a-a"].tolist() == [[M, M, U, U], [M, M, U, U], [U, U, M, U], [U, U, U, U]]
    assert (rel["a-n"] == U).all()  # negatives belong to no group


def _mask(masked: dict[str, list[list[bool]]]) -> BatchMask:
    m = {b: torch.tensor(v) for b, v in masked.items()}
    cand = {b: torch.ones_like(v) for b, v in m.items()}
    cand["a-p"] &= ~torch.eye(3, dtype=torch.bool)
    scores = {b: torch.zeros(v.shape) for b, v in m.items()}
    return BatchMask(m, scores, cand, torch.zeros(3), torch.zeros(3))


def test_precision_and_recall_by_hand():
    rel = relations(ground_truth(COLUMNS, ["negative"]), ("a-p", "a-n"))
    off = [[False] * 3 for _ in range(3)]
    # a-p: mask row 0's same-word p1 and row 2's unrelated p0. a-n: mask row 1's same-meaning n0.
    mask = _mask({"a-p": [[False, True, False], [False, False, False], [True, False, False]],
                  "a-n": [[False, False, False], [True, False, False], [False, False, False]]})
    q = mask_quality(mask, rel, COLUMNS["task"]).set_index(["task", "block"])
    ap, an, pooled = q.loc[("all", "a-p")], q.loc[("all", "a-n")], q.loc[("all", "all")]
    assert (ap.candidates, ap.masked, ap.precision) == (6, 2, 0.5)
    assert ap["masked_same-word"] == 1 and ap["masked_unrelated"] == 1 and ap["share_same-word"] == 0.5
    # a-p has no same-meaning candidate off the diagonal: recall undefined, not 0
    assert ap.same_meaning_candidates == 0 and math.isnan(ap.recall)
    assert (an.masked, an.precision, an.same_meaning_candidates, an.recall) == (1, 1.0, 1, 1.0)
    assert (pooled.masked, pooled.precision, pooled.recall) == (3, pytest.approx(2 / 3), 1.0)
    # per task: row 2 ("cat") masked one unrelated a-p candidate; the "ex" rows everything else
    assert q.loc[("cat", "all")].precision == 0.0 and q.loc[("ex", "all")].precision == 1.0
    assert list(q.index.get_level_values("task").unique()) == ["all", "ex", "cat"]
    nothing = mask_quality(_mask({"a-p": off, "a-n": off}), rel).set_index("block")
    assert math.isnan(nothing.loc["all"].precision) and nothing.loc["a-n"].recall == 0.0
    assert step_quality(mask, rel) == {
        "mask_precision": pytest.approx(0.6667), "mask_recall": 1.0, "mask_precision_a-p": 0.5,
        "mask_recall_a-p": None, "mask_precision_a-n": 1.0, "mask_recall_a-n": 1.0}


def test_bundled_batch_carries_ground_truth_into_pairs():
    from core.corpus.data import load_pairs
    from core.analysis.inspect import Batch, inspect_batch
    from core.method.masking import MarginSettings

    batch = Batch.draw(load_pairs("bundled"), 16, seed=3)
    assert batch.truth is not None and len(batch.tasks) == 16
    rel = batch.relations(BLOCKS)
    assert (rel["a-p"].diagonal() == M).all()  # every row's own positive is its meaning
    g = torch.Generator().manual_seed(0)
    report = inspect_batch(batch, lambda texts: torch.randn(len(texts), 8, generator=g), MarginSettings())
    assert report.pairs["relation"].isin(RELATIONS).all() and len(report.pairs) > 0
    quality = report.quality.set_index(["task", "block"])
    assert quality.loc[("all", "all")].masked == len(report.pairs)
    # the pairs table and the quality table count the same relations, block by block
    by_relation = report.pairs.groupby(["block", "relation"]).size()
    for (block, relation), n in by_relation.items():
        assert quality.loc[("all", block), f"masked_{relation}"] == n
    for block in BLOCKS:  # and each masked cell's relation is the cell's code
        i, c = report.mask.masked_candidates(block).nonzero(as_tuple=True)
        codes = sorted(RELATIONS[k] for k in rel[block][i, c].tolist())
        assert codes == sorted(report.pairs[report.pairs.block == block].relation)
    # data without ground truth says so: no quality table, no relations
    plain = Batch.from_dataset(load_pairs("bundled").select_columns(["anchor", "positive"]), [0, 1, 2])
    assert plain.truth is None and plain.quality(report.mask) is None


def test_stacked_batches_give_each_batch_its_relations():
    from core.method.groundtruth import stack_truths

    other = {k: v[::-1] for k, v in COLUMNS.items()}
    other["anchor_lemmas"] = [["cat", "true_cat"], ["bank"], ["bank"]]  # another vocabulary size
    truths = [ground_truth(COLUMNS, ["negative"]), ground_truth(other, ["negative"])]
    together = relations(stack_truths(truths), BLOCKS)
    for k, truth in enumerate(truths):
        for block, codes in relations(truth, BLOCKS).items():
            assert torch.equal(together[block][k], codes), (k, block)
