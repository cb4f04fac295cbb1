"""Two guides on one batch: agreement, the cells one guide masks and the other keeps, who is right there."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from core.cli import main
from core.method.groundtruth import ground_truth
from core.analysis.guide_compare import (
    CELL_STATES, DISAGREEMENT_COLUMNS, cell_states, compare_embedded, compare_guides, jaccard,
)
from core.analysis.inspect import Batch, Embedded
from core.method.masking import MarginSettings, guided_mask

AP_ONLY = MarginSettings(contrast_anchors=False, contrast_positives=False)


def unit(*xs) -> torch.Tensor:
    t = torch.tensor(xs, dtype=torch.float32)
    return t / t.norm()


def three_rows(with_truth: bool = True) -> Batch:
    """Row 2's pair has the same meaning (synset) as row 0's; row 1 is unrelated to both."""
    columns = {"anchor": ["a zero", "a one", "a two"], "positive": ["p zero", "p one", "p two"],
               "anchor_synset": ["s.0", "s.1", "s.0"], "positive_synset": ["s.0", "s.1", "s.0"]}
    truth = ground_truth(columns) if with_truth else None
    return Batch([10, 11, 12], columns["anchor"], columns["positive"], [], [], truth=truth)


# Row 0 of guide A finds p1 closer than its own positive (a wrong mask: unrelated); guide B finds
# p2 closer (a right mask: a false negative, same synset). Rows 1 and 2 score their own positive 1.0: nothing masked.
GUIDE_A = Embedded(anchor=torch.stack([unit(1, 0, 0), unit(1, .2, 0), unit(0, 0, 1)]),
                   positive=torch.stack([unit(1, 1, 0), unit(1, .2, 0), unit(0, 0, 1)]), negatives=[])
GUIDE_B = Embedded(anchor=torch.stack([unit(1, 0, 0), unit(0, 0, 1), unit(1, 0, .2)]),
                   positive=torch.stack([unit(1, 1, 0), unit(0, 0, 1), unit(1, 0, .2)]), negatives=[])


def test_disagreements_carry_relation_and_both_scores():
    result = compare_embedded(three_rows(), GUIDE_A, GUIDE_B, AP_ONLY, ("small", "strong"))
    table = result.disagreements.set_index("masked_by")
    assert list(result.disagreements.columns) == list(DISAGREEMENT_COLUMNS) and len(table) == 2
    small, strong = table.loc["small"], table.loc["strong"]
    assert (small["row"], small["candidate"], small["relation"]) == (0, "p one", "unrelated")
    assert (strong["row"], strong["candidate"], strong["relation"]) == (0, "p two", "false-negative")
    assert small["score_a"] > small["threshold_a"] and small["score_b"] <= small["threshold_b"]
    assert strong["score_b"] > strong["threshold_b"] and strong["score_a"] <= strong["threshold_a"]
    assert result.agreement == {"a-p": 0.0, "all": 0.0}
    summary = result.summary.set_index("guide")
    assert summary.loc["small", "precision"] == 0.0 and summary.loc["strong", "precision"] == 1.0
    assert summary.loc["small", "recall"] == 0.0 and summary.loc["strong", "recall"] == 0.5  # p0 of row 2 kept
    assert summary.loc["strong", "only_this_guide_false_negatives"] == 1.0
    # the small guide's one mask is a cost (unrelated); two false negatives present (p2 for row 0, p0 for row 2)
    assert summary.loc["small", "share_unrelated"] == 1.0 and list(summary["false_negatives"]) == [2, 2]
    assert list(summary["unrelated"]) == [1, 0] and list(summary["related"]) == [0, 0]  # counts, not shares
    assert list(summary["masked"]) == [1, 1] and list(summary["only_this_guide"]) == [1, 1]
    candidates = sum(int(result.a.candidates[b].sum()) for b in result.a.blocks)
    assert list(summary["candidates"]) == [candidates, candidates] > [1, 1]  # one batch: one denominator
    states = cell_states(result, "a-p")  # the page's map: 1 = A only, 2 = B only, NaN = own positive
    assert states[0, 1] == 1 and states[0, 2] == 2 and np.isnan(np.diag(states)).all()
    assert CELL_STATES[1] == "A only" and np.nansum(states) == 3


def test_without_ground_truth_precision_is_nan_not_zero():
    result = compare_embedded(three_rows(with_truth=False), GUIDE_A, GUIDE_B, AP_ONLY, ("a", "b"))
    assert not result.has_ground_truth and result.disagreements["relation"].isna().all()
    assert result.summary[["related", "unrelated"]].isna().all().all()
    assert result.summary[["precision", "recall", "only_this_guide_false_negatives"]].isna().all().all()


def test_jaccard_per_block_and_pooled():
    torch.manual_seed(0)
    a_emb, p_emb, n_emb = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 8)
    a = guided_mask(a_emb, p_emb, [n_emb], MarginSettings(margin=0.3))
    b = guided_mask(a_emb + 0.5 * torch.randn(6, 8), p_emb, [n_emb], MarginSettings(margin=0.3))
    scores = jaccard(a, b)
    both = sum(int((a.masked_candidates(k) & b.masked_candidates(k)).sum()) for k in a.blocks)
    either = sum(int((a.masked_candidates(k) | b.masked_candidates(k)).sum()) for k in a.blocks)
    assert 0 < both < either and math.isclose(scores["all"], both / either)
    assert set(scores) == {"a-p", "a-a", "p-p", "a-n", "all"} and jaccard(a, a)["all"] == 1.0
    empty = guided_mask(a_emb, p_emb, [n_emb], MarginSettings(margin=-5.0))  # masks no candidate
    assert jaccard(empty, empty) == dict.fromkeys(scores, 1.0)  # nothing masked by either: full agreement


def test_same_guide_twice_agrees_fully(tiny_model):
    batch = three_rows()
    embed = lambda texts: tiny_model.encode(texts, convert_to_tensor=True).cpu()  # noqa: E731
    result = compare_guides(batch, embed, embed, MarginSettings(margin=0.2), ("tiny", "tiny"))
    assert result.names == ("tiny (A)", "tiny (B)") and result.disagreements.empty
    assert result.agreement["all"] == 1.0
    assert result.summary["masked"].iloc[0] == result.summary["masked"].iloc[1] > 0


@pytest.fixture
def grouped_csv(tmp_path):
    """Pairs with a ``group`` column (ground truth; a batch holds one row per group)."""
    path = tmp_path / "grouped.csv"
    pd.DataFrame({"anchor": [f"a note about topic {i % 8}, take {i}" for i in range(32)],
                  "positive": [f"topic {i % 8} explained, version {i}" for i in range(32)],
                  "group": [i % 16 for i in range(32)]}).to_csv(path, index=False)
    return path


def test_cli_compare_prints_precision_agreement_and_writes_csv(grouped_csv, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "disagreements.csv"
    code = main(["inspect", "--data", str(grouped_csv), "--batch-size", "12", "--guide", "bundled:minilm-l6",
                 "--compare-guide", "self", "--student", str(tiny_model_dir), "--csv", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "guide A bundled:minilm-l6 vs guide B self" in printed.out
    assert "precision" in printed.out and "agreement (Jaccard of the masked pairs): " in printed.out
    table = pd.read_csv(out)
    assert list(table.columns) == list(DISAGREEMENT_COLUMNS) and len(table) > 0
    assert set(table["masked_by"]) <= {"bundled:minilm-l6", "self"}
    assert set(table["relation"]) <= {"false-negative", "same-word", "same-category", "unrelated"}
    assert f"{len(table)} pairs masked by one guide only" in printed.out


def test_cli_compare_bad_guide_is_one_line(grouped_csv, capsys):
    code = main(["inspect", "--data", str(grouped_csv), "--batch-size", "8", "--compare-guide", "bundled:nope"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gistlab: error: ")]
    assert code == 2 and len(errors) == 1 and "Unknown bundled model 'bundled:nope'" in errors[0]


def test_minilm_vs_mpnet_on_a_bundled_batch(mpnet):
    """The real strong guide (skipped without its packages, and in CI): both masks' precision and agreement."""
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.guides.models import load_guide

    batch = Batch.draw(load_pairs("bundled"), 64, 0)
    specs = ("bundled:minilm-l6", "bundled:mpnet-base")
    caches = [GuideCache(load_guide(specs[0]), specs[0]), GuideCache(mpnet, specs[1])]
    result = compare_guides(batch, caches[0].embed, caches[1].embed, MarginSettings(), specs)
    assert result.has_ground_truth and result.summary["precision"].notna().all()
    assert 0 < result.agreement["all"] < 1 and len(result.disagreements) > 0
