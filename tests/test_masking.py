"""The masking rule of GUIDE.md section 1, checked cell by cell on hand-made embeddings."""

import math

import pytest
import torch

from core.method.masking import MarginSettings, guided_mask, thresholds


def unit(*angles_deg):
    """2-D unit vectors at the given angles, so every cosine is known exactly."""
    return torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles_deg])


def test_absolute_rule_is_strict_and_keeps_target():
    # Row 0: anchor at 0 deg, positive at 60 deg (g = 0.5). Row 1's positive sits at 30 deg: closer.
    anchor = unit(0, 90)
    positive = unit(60, 30)
    m = guided_mask(anchor, positive, settings=MarginSettings(contrast_anchors=False,
                                                             contrast_positives=False))
    assert m.positive_scores[0] == pytest.approx(0.5, abs=1e-6)
    # a0 vs p1: cos 30 = 0.866 > 0.5 -> masked; target a0 vs p0 never masked.
    assert m.masked["a-p"].tolist()[0] == [False, True]
    # Row 1: a1 at 90, p1 at 30: g = 0.5; a1 vs p0 at 60: cos 30 = 0.866 > 0.5 -> masked.
    assert m.masked["a-p"].tolist()[1] == [True, False]


def test_equal_score_is_not_masked_strict_comparison():
    anchor = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[0.6, 0.8], [0.8, 0.6]])  # g0 = 0.6, a0 vs p1 = 0.8
    m = guided_mask(anchor, positive, settings=MarginSettings(margin=0.2, contrast_anchors=False,
                                                             contrast_positives=False))
    # threshold 0.4; a0 vs p1 = 0.8 > 0.4 masked. Now make the candidate exactly equal.
    assert bool(m.masked["a-p"][0, 1])
    m2 = guided_mask(anchor, torch.tensor([[0.6, 0.8], [0.6, 0.8]]),
                     settings=MarginSettings(contrast_anchors=False, contrast_positives=False))
    # Row 0: candidate p1 identical in direction to p0 -> score == g0 -> not masked (strict >).
    assert not bool(m2.masked["a-p"][0, 1])


@pytest.mark.parametrize("g,margin,expected", [(0.5, 0.1, 0.45), (-0.5, 0.1, -0.55), (0.8, 0.0, 0.8)])
def test_relative_threshold_uses_abs_of_positive_score(g, margin, expected):
    t = thresholds(torch.tensor([g]), MarginSettings("relative", margin))
    assert float(t[0]) == pytest.approx(expected)


def test_absolute_threshold():
    t = thresholds(torch.tensor([0.5, -0.2]), MarginSettings("absolute", 0.1))
    assert t.tolist() == pytest.approx([0.4, -0.3])


def test_self_similarities_always_masked_even_with_negative_margin():
    torch.manual_seed(0)
    a, p = torch.randn(4, 8), torch.randn(4, 8)
    # margin -5: threshold g + 5 > 1, so the plain rule would mask nothing at all.
    m = guided_mask(a, p, settings=MarginSettings(margin=-5.0))
    assert m.masked["a-a"].diagonal().all() and m.masked["p-p"].diagonal().all()
    assert not m.masked["a-a"].fill_diagonal_(False).any()
    assert not m.masked["a-p"].any()
    assert m.masked_fraction() == 0.0


def test_identical_texts_masked_target_never():
    torch.manual_seed(1)
    a, p, n = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    anchors = ["cat", "dog", "cat"]  # row 2 duplicates row 0's anchor
    positives = ["feline", "canine", "cat"]  # row 2's positive equals its own anchor
    negatives = [["dog", "x", "y"]]  # negative of row 0 equals row 1's anchor
    m = guided_mask(a, p, [n], MarginSettings(margin=-5.0), anchors, positives, negatives)
    assert not m.masked["a-p"].diagonal().any()  # row 2 target kept although texts are equal
    assert bool(m.masked["a-a"][0, 2]) and bool(m.masked["a-a"][2, 0])  # duplicate anchors
    assert bool(m.masked["a-p"][0, 2])  # p2 == "cat" == a0
    assert bool(m.masked["a-n"][1, 0])  # negative "dog" == a1
    assert not bool(m.masked["a-n"][0, 0])


def test_blocks_follow_contrast_options_and_negative_columns():
    torch.manual_seed(2)
    a, p = torch.randn(5, 4), torch.randn(5, 4)
    negs = [torch.randn(5, 4), torch.randn(5, 4)]
    m = guided_mask(a, p, negs, MarginSettings(contrast_anchors=False))
    assert m.blocks == ("a-p", "p-p", "a-n")
    assert m.masked["a-n"].shape == (5, 10)
    # column k*B + j is negative column k of row j
    expected = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(negs[1][3], dim=0)
    assert torch.allclose(m.guide_scores["a-n"][:, 5 + 3], expected, atol=1e-6)


def test_pp_block_uses_row_threshold_of_anchor_positive():
    anchor = unit(0, 180)
    positive = unit(80, 100)  # g = cos 80 = 0.17 for both rows; p0 vs p1 = cos 20 = 0.94
    m = guided_mask(anchor, positive, settings=MarginSettings())
    assert bool(m.masked["p-p"][0, 1]) and bool(m.masked["p-p"][1, 0])


def test_counts_and_fractions_exclude_targets_and_self():
    anchor = unit(0, 90)
    positive = unit(60, 30)
    m = guided_mask(anchor, positive, settings=MarginSettings(contrast_anchors=True,
                                                             contrast_positives=False))
    # a-p: 2 candidates both masked; a-a: a0 vs a1 cos 0 = 0 < 0.5 -> not masked.
    assert m.row_counts()["a-p"].tolist() == [1, 1]
    assert m.row_counts()["a-a"].tolist() == [0, 0]
    assert m.block_fractions() == {"a-p": 1.0, "a-a": 0.0}
    assert m.masked_fraction() == pytest.approx(2 / 4)


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError, match="margin_strategy"):
        MarginSettings("sideways")


def test_positive_floor_raises_low_thresholds_only():
    settings = MarginSettings("absolute", 0.1, positive_floor=0.3)
    assert thresholds(torch.tensor([0.05, 0.9]), settings).tolist() == pytest.approx([0.3, 0.8])
    grid = thresholds(torch.tensor([[0.05], [0.9]]), MarginSettings("relative", torch.tensor([0.0, 0.5]),
                                                                      positive_floor=0.3))
    assert grid.flatten().tolist() == pytest.approx([0.3, 0.3, 0.9, 0.45])
    with pytest.raises(ValueError, match="positive_floor"):
        MarginSettings(positive_floor=1.5)


def test_weak_positive_masks_everything_until_the_floor_is_set():
    # Row 0's guide barely believes its pair (a0 at 0 deg, p0 at 85 deg: g0 = 0.087), so every
    # candidate of the batch beats it; rows 1-3 are ordinary (their positives at 5 deg from them).
    anchor = unit(0, 20, 40, 60)
    positive = unit(85, 25, 45, 65)
    off = guided_mask(anchor, positive)
    assert off.weak_rows().tolist() == [True, False, False, False] and off.weak_row_count() == 1
    assert off.row_fractions()[0] == 1.0 and off.weak_row_count(share=1.01) == 0
    floored = guided_mask(anchor, positive, settings=MarginSettings(positive_floor=0.5))
    assert floored.weak_row_count() == 0 and floored.masked_fraction() < off.masked_fraction()
    for block in off.blocks:
        # the floor keeps exactly the row-0 candidates the guide scores at or below 0.5 ...
        expected = off.masked[block].clone()
        expected[0] &= off.guide_scores[block][0] > 0.5
        if block in ("a-a", "p-p"):
            expected[0, 0] = True  # ... and self-similarity stays masked
        assert torch.equal(floored.masked[block], expected), block
    # rows whose threshold is above the floor are untouched: floor off and a low floor agree
    low = guided_mask(anchor, positive, settings=MarginSettings(positive_floor=-1.0))
    assert all(torch.equal(low.masked[b], off.masked[b]) for b in off.blocks)


def test_library_options_have_no_floor():
    assert MarginSettings(margin=0.1).library_options() == {
        "margin_strategy": "absolute", "margin": 0.1, "contrast_anchors": True, "contrast_positives": True}
    with pytest.raises(ValueError, match="no positive floor"):
        MarginSettings(positive_floor=0.2).library_options()


def test_several_batches_at_once_equal_each_batch_alone():
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(3, 5, 4, generator=g) for _ in range(3))
    texts = [[f"t{(k * 5 + i) % 7}" for i in range(5)] for k in range(3)]  # repeats inside batches
    settings = MarginSettings("relative", 0.2, positive_floor=0.1)
    together = guided_mask(a, p, [n], settings, texts, [t[::-1] for t in texts], [texts])
    for k in range(3):
        alone = guided_mask(a[k], p[k], [n[k]], settings, texts[k], texts[k][::-1], [texts[k]])
        for block in alone.blocks:
            assert torch.equal(together.masked[block][k], alone.masked[block]), block
            assert torch.allclose(together.guide_scores[block][k], alone.guide_scores[block])
        assert torch.allclose(together.thresholds[k], alone.thresholds)
