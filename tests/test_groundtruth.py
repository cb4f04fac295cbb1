"""Ground truth of masks: relations cell by cell on hand-made batches, per task (the task's own
relation decides what a false negative is), precision/recall and the three-way split by hand."""

import math

import pytest
import torch

from core.method.groundtruth import (
    FALSE_NEGATIVE, RELATIONS, SAME_CATEGORY, SAME_WORD, UNRELATED, ground_truth, mask_quality,
    relations, step_quality,
)
from core.method.masking import BLOCKS, BatchMask

M, W, C, U = FALSE_NEGATIVE, SAME_WORD, SAME_CATEGORY, UNRELATED

# Three rows: 0 "bank (river)" example -> definition; 1 "bank (money)"; 2 a category triplet (a dog's
# definition -> another animal's). Negatives: row 0's is the money bank, row 1's a river (same
# category as row 0), row 2's an unrelated verb.
COLUMNS = {
    "anchor": ["we sat on the bank", "the bank lent money", "a dog barked"],
    "positive": ["sloping land by water", "a financial institution", "a feline mammal"],
    "negative": ["a financial institution", "a large natural stream", "move fast"],
    "task": ["example_definition", "example_definition", "category_triplet"],
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
    # a-n: n0 is row 1's own synset (a false negative of row 1, same-word for row 0); n1 a river
    # (noun.object: row 0's category); n2 a verb: unrelated to all.
    assert rel["a-n"].tolist() == [[W, C, U], [M, U, U], [U, U, U]]
    assert rel["a-n"].dtype == torch.int8
    # only the blocks asked for
    assert set(relations(truth, ("a-p",))) == {"a-p"}


def test_group_column_makes_rows_of_one_group_false_negatives():
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
    # a-p: mask row 0's same-word p1 (a related hard negative: a cost) and row 2's unrelated p0.
    # a-n: mask row 1's false negative n0 (a catch).
    mask = _mask({"a-p": [[False, True, False], [False, False, False], [True, False, False]],
                  "a-n": [[False, False, False], [True, False, False], [False, False, False]]})
    q = mask_quality(mask, rel, COLUMNS["task"]).set_index(["task", "block"])
    ap, an, pooled = q.loc[("all", "a-p")], q.loc[("all", "a-n")], q.loc[("all", "all")]
    # precision counts only false negatives: a masked other sense of the word is not a catch
    assert (ap.candidates, ap.masked, ap.precision) == (6, 2, 0.0)
    assert ap["masked_same-word"] == 1 and ap["masked_unrelated"] == 1
    assert (ap.share_related, ap.share_unrelated) == (0.5, 0.5)
    # a-p has no false negative off the diagonal: recall undefined, not 0
    assert ap.false_negatives == 0 and math.isnan(ap.recall)
    assert (an.masked, an.precision, an.false_negatives, an.caught, an.missed, an.recall) == (1, 1.0, 1, 1, 0, 1.0)
    assert (pooled.masked, pooled.precision, pooled.recall) == (3, pytest.approx(1 / 3), 1.0)
    # the three shares of every row with something masked add up to 1
    some = q[q.masked > 0]
    assert ((some.precision + some.share_related + some.share_unrelated) - 1).abs().max() < 1e-9
    # per task: row 2 (category_triplet) masked one unrelated a-p candidate; the example rows the rest
    assert q.loc[("category_triplet", "all")].precision == 0.0
    assert q.loc[("example_definition", "all")].precision == 0.5
    assert list(q.index.get_level_values("task").unique()) == ["all", "example_definition", "category_triplet"]
    nothing = mask_quality(_mask({"a-p": off, "a-n": off}), rel).set_index("block")
    assert math.isnan(nothing.loc["all"].precision) and nothing.loc["a-n"].recall == 0.0
    assert nothing.loc["a-n"].missed == 1
    assert step_quality(mask, rel) == {
        "fn_present": 1, "fn_caught": 1, "fn_precision": pytest.approx(0.3333), "fn_recall": 1.0,
        "related_share": pytest.approx(0.3333), "unrelated_share": pytest.approx(0.3333),
        "fn_precision_a-p": 0.0, "fn_recall_a-p": None, "fn_precision_a-n": 1.0, "fn_recall_a-n": 1.0}


# Four rows, one per case of the three-way split: two definition-task rows and two category
# triplets. Row 0 (example -> definition of a dog), row 1 (a dog's words -> the same definition):
# same synset, so each is the other's false negative. Row 2, 3: category triplets of noun.animal
# (cat -> horse, cow -> sheep): each other's false negatives by category, though no synset is shared;
# for the dog rows the animals are the same category but another synset: related hard negatives.
TASKS = {
    "anchor": ["the dog barked", "dog, domestic dog", "a small feline", "a bovine"],
    "positive": ["a domesticated canid", "a domesticated canid", "a solid-hoofed herbivore", "a woolly ruminant"],
    "negative": ["a hot sausage", "a hot sausage", "move fast", "a kind of rock"],
    "task": ["example_definition", "words_definition", "category_triplet", "category_triplet"],
    "anchor_synset": ["n1", "n1", "n3", "n5"], "positive_synset": ["n1", "n1", "n4", "n6"],
    "negative_synset": ["n2", "n2", "v7", "n8"],
    "anchor_lemmas": [["dog"], ["dog"], ["cat"], ["cow"]],
    "positive_lemmas": [["dog"], ["dog"], ["horse"], ["sheep"]],
    "negative_lemmas": [["hotdog", "dog"], ["hotdog", "dog"], ["run"], ["granite"]],
    "anchor_category": ["noun.animal", "noun.animal", "noun.animal", "noun.animal"],
    "positive_category": ["noun.animal", "noun.animal", "noun.animal", "noun.animal"],
    "negative_category": ["noun.food", "noun.food", "verb.motion", "noun.substance"],
}


def test_each_task_counts_its_own_relation_as_false_negative():
    rel = relations(ground_truth(TASKS, ["negative"]), BLOCKS)
    # a-p: the dog rows share a synset (false negatives of each other); the animals of the category
    # triplets are only the same category for them (a related hard negative). For the category
    # triplets, every animal is a right answer: false negatives, synset or not.
    assert rel["a-p"].tolist() == [[M, M, C, C], [M, M, C, C], [M, M, M, M], [M, M, M, M]]
    # a-n: the hot sausage shares the word "dog" with the dog rows (a related hard negative: another
    # sense), and is unrelated to the animals' category; the verb and the rock are unrelated
    assert rel["a-n"].tolist() == [[W, W, U, U], [W, W, U, U], [U, U, U, U], [U, U, U, U]]
    # without a task column every row is judged by its synset: the category is a hard negative
    plain = relations(ground_truth({k: v for k, v in TASKS.items() if k != "task"}, ["negative"]), ("a-p",))
    assert plain["a-p"].tolist() == [[M, M, C, C], [M, M, C, C], [C, C, M, C], [C, C, C, M]]


def test_three_way_split_per_task():
    rel = relations(ground_truth(TASKS, ["negative"]), ("a-p", "a-n"))
    eye = torch.eye(4, dtype=torch.bool)
    # every off-diagonal a-p candidate and every negative masked
    masked = {"a-p": (~eye).tolist(), "a-n": [[True] * 4 for _ in range(4)]}
    m = {b: torch.tensor(v) for b, v in masked.items()}
    cand = {b: torch.ones_like(v) for b, v in m.items()}
    cand["a-p"] &= ~eye
    mask = BatchMask(m, {b: torch.zeros(v.shape) for b, v in m.items()}, cand, torch.zeros(4), torch.zeros(4))
    q = mask_quality(mask, rel, TASKS["task"]).set_index(["task", "block"])
    # example_definition row 0, a-p: p1 caught (same synset), p2 and p3 same category: 2 costs
    ex = q.loc[("example_definition", "a-p")]
    assert (ex.masked, ex.caught, ex["masked_same-category"], ex.false_negatives) == (3, 1, 2, 1)
    assert ex.precision == pytest.approx(1 / 3) and ex.share_related == pytest.approx(2 / 3) and ex.recall == 1.0
    # category_triplet rows, a-p: all three others are the same category: 6 of 6 caught
    cat = q.loc[("category_triplet", "a-p")]
    assert (cat.masked, cat.caught, cat.precision, cat.recall) == (6, 6, 1.0, 1.0)
    # a-n: the dog rows masked the hot sausage twice each (same word: related), the other 12 are unrelated
    an = q.loc[("all", "a-n")]
    assert (an["masked_same-word"], an.masked_unrelated, an.false_negatives) == (4, 12, 0)
    assert math.isnan(an.recall) and an.share_unrelated == 0.75


def test_bundled_batch_carries_ground_truth_into_pairs():
    from core.corpus.data import load_pairs
    from core.analysis.inspect import Batch, inspect_batch
    from core.method.masking import MarginSettings

    batch = Batch.draw(load_pairs("bundled"), 16, seed=3)
    assert batch.truth is not None and len(batch.tasks) == 16
    rel = batch.relations(BLOCKS)
    assert (rel["a-p"].diagonal() == M).all()  # every row's own positive is a right answer
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
