"""The strategies' verdicts on one batch: the self-judge is the masking rule at margin -0.1 on the student's
embeddings, MNRL masks nothing, the hardness arms weight what they keep as the library's MNRL does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.analysis.inspect import Batch, Embedded
from core.analysis.strategies import Strategy, compare_strategies, unmasked, verdict
from core.errors import GistlabError
from core.method.groundtruth import ground_truth
from core.method.masking import MarginSettings, cosine_matrix, guided_mask

B = 8
SYNSETS = ["s.0", "s.1", "s.0", "s.2", "s.1", "s.3", "s.4", "s.0"]  # rows 0, 2, 7 and 1, 4 share a meaning


def batch(with_truth: bool = True) -> Batch:
    columns = {"anchor": [f"anchor {i}" for i in range(B)], "positive": [f"positive {i}" for i in range(B)],
               "negative": [f"negative {i}" for i in range(B)],
               "anchor_synset": SYNSETS, "positive_synset": SYNSETS, "negative_synset": [f"n.{i}" for i in range(B)]}
    columns["positive"][5] = "positive 3"  # row 5's positive text equals row 3's: always masked for both rows
    truth = ground_truth(columns, ["negative"]) if with_truth else None
    return Batch(list(range(B)), columns["anchor"], columns["positive"], [columns["negative"]], ["negative"],
                 truth=truth)


def embedded(seed: int) -> Embedded:
    g = torch.Generator().manual_seed(seed)
    return Embedded(torch.randn(B, 6, generator=g), torch.randn(B, 6, generator=g), [torch.randn(B, 6, generator=g)])


STUDENT, GUIDE = embedded(0), embedded(1)
SHARED = MarginSettings(margin=0.05, positive_floor=0.2)  # the self-judge must ignore both


def test_self_judge_is_the_masking_rule_at_margin_minus_judge_margin_on_the_student():
    b = batch()
    judged = verdict(Strategy("self-judge"), b, SHARED, student=STUDENT).mask
    rule = guided_mask(STUDENT.anchor, STUDENT.positive, STUDENT.negatives,
                       MarginSettings("absolute", -0.1, SHARED.contrast_anchors, SHARED.contrast_positives),
                       anchor_texts=b.anchors, positive_texts=b.positives, negative_texts=b.negatives)
    for block in rule.blocks:
        assert torch.equal(judged.masked[block], rule.masked[block])
    # in words (Qwen3-Embedding): candidate j of row i masked when s_ij > s(i, pos_i) + 0.1, or its text is a row text
    s = cosine_matrix(STUDENT.anchor, STUDENT.positive)
    expected = (s > s.diagonal()[:, None] + 0.1) & ~torch.eye(B, dtype=torch.bool)
    expected[3, 5] = expected[5, 3] = True  # the same positive text
    assert torch.equal(judged.masked_candidates("a-p"), expected)
    assert 0 < judged.masked_fraction() < 1  # the rule is live here, not trivially empty or full
    wider = verdict(Strategy("self-judge", judge_margin=-0.2), b, SHARED, student=STUDENT).mask
    assert wider.masked_fraction() > judged.masked_fraction()  # a lower judge margin masks more


def test_mnrl_masks_nothing_and_keeps_every_false_negative():
    b = batch()
    mnrl = verdict(Strategy("mnrl"), b, SHARED)
    gist = verdict(Strategy("gist", "guide"), b, SHARED, guide=GUIDE)
    assert mnrl.weights is None and mnrl.mask.masked_fraction() == 0.0
    assert mnrl.mask.blocks == gist.mask.blocks
    for block in mnrl.mask.blocks:  # the same candidate cells, none masked
        assert torch.equal(mnrl.mask.candidates[block], gist.mask.candidates[block])
        assert not mnrl.mask.masked[block].any() and mnrl.mask.guide_scores[block].isnan().all()
    result = compare_strategies(b, gist, mnrl, SHARED)
    summary = result.summary.set_index("guide")
    assert result.names == ("guide", "MNRL")
    assert summary.loc["MNRL", "masked"] == 0 and summary.loc["MNRL", "caught"] == 0
    assert summary.loc["MNRL", "recall"] == 0.0 and math.isnan(summary.loc["MNRL", "precision"])
    assert summary.loc["MNRL", "false_negatives"] == summary.loc["guide", "false_negatives"] > 0
    assert set(result.disagreements["masked_by"]) == {"guide"}
    assert len(result.disagreements) == summary.loc["guide", "masked"] > 0
    assert result.agreement["all"] == 0.0


def test_two_gist_strategies_compare_as_two_guides():
    b = batch()
    a = verdict(Strategy("gist", "small"), b, SHARED, guide=GUIDE)
    c = verdict(Strategy("gist", "strong"), b, SHARED, guide=STUDENT)
    result = compare_strategies(b, a, c, SHARED)
    assert result.names == ("small", "strong") and result.summary["weighted"].isna().all()
    rule = guided_mask(GUIDE.anchor, GUIDE.positive, GUIDE.negatives, SHARED, anchor_texts=b.anchors,
                       positive_texts=b.positives, negative_texts=b.negatives)
    assert all(torch.equal(a.mask.masked[k], rule.masked[k]) for k in rule.blocks)  # the shared settings, floor too


def test_hardness_weights_are_the_library_penalty_on_what_is_kept():
    b = batch()
    hard = verdict(Strategy("mnrl-hard"), b, SHARED, student=STUDENT)
    config = Strategy("mnrl-hard").config(SHARED)
    assert hard.mask.masked_fraction() == 0.0 and set(hard.weights) == {"a-p", "a-n"}
    s = cosine_matrix(STUDENT.anchor, STUDENT.positive)
    weights = hard.weights["a-p"]
    off = ~torch.eye(B, dtype=torch.bool)
    # in_batch_negatives (the default): every other row's positive, weight exp(strength * cos); the target never
    assert config.hardness_mode == "in_batch_negatives" and weights.diagonal().isnan().all()
    assert torch.allclose(weights[off], (config.hardness_strength * s[off]).exp())
    an = hard.weights["a-n"]  # own negative is not an in-batch negative in this mode
    assert an.diagonal().isnan().all() and not an[off].isnan().any()

    gist = verdict(Strategy("gist", "guide"), b, SHARED, guide=GUIDE)
    both = verdict(Strategy("gist-hard", "guide"), b, SHARED, guide=GUIDE, student=STUDENT)
    for block in gist.mask.blocks:  # gist-hard masks exactly as gist, then weights what is left
        assert torch.equal(both.mask.masked[block], gist.mask.masked[block])
    kept = gist.mask.candidates["a-p"] & ~gist.mask.masked["a-p"]
    assert torch.equal(~both.weights["a-p"].isnan(), kept)

    summary = compare_strategies(b, gist, both, SHARED).summary.set_index("guide")
    assert math.isnan(summary.loc["guide", "weighted"])
    assert summary.loc["guide + hardness", "weighted"] == int(kept.sum()) + int((~both.weights["a-n"].isnan()).sum())
    assert summary.loc["guide + hardness", "weight_max"] >= summary.loc["guide + hardness", "weight_median"] > 0


def test_without_ground_truth_the_weights_on_false_negatives_are_nan():
    hard = verdict(Strategy("mnrl-hard"), batch(False), SHARED, student=STUDENT)
    row = compare_strategies(batch(False), verdict(Strategy("mnrl"), batch(False), SHARED), hard, SHARED).summary
    assert np.isnan(row["weight_median_false_negatives"].iloc[1]) and row["weighted"].iloc[1] > 0


def test_unmasked_keeps_the_settings_blocks():
    mask = unmasked(batch(), MarginSettings(contrast_anchors=False, contrast_positives=False))
    assert mask.blocks == ("a-p", "a-n") and int(mask.candidates["a-p"].sum()) == B * (B - 1)


def test_bad_strategies_are_one_line():
    with pytest.raises(GistlabError, match="needs a guide"):
        Strategy("gist")
    with pytest.raises(GistlabError, match="Unknown strategy 'gist-st'"):
        Strategy("gist-st", "bundled:minilm-l6")
    with pytest.raises(ValueError, match="needs the student's embeddings"):
        verdict(Strategy("self-judge"), batch(), SHARED, guide=GUIDE)
