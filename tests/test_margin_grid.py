"""The grid of masks the Inspect maps scrub through is guided_mask's mask at every grid margin."""

import pytest
import torch

from core.analysis.inspect import Batch, Embedded, mask_batch
from core.analysis.margin_grid import grid_masks, slider_margins
from core.method.masking import MarginSettings

ANCHORS = ["a cat sat", "dogs bark", "stocks fell", "rain is wet", "a kitten", "the sun", "a cat sat", "ice"]
POSITIVES = ["feline", "canine noise", "shares dropped", "water", "young cat", "our star", "a cat", "frozen"]
NEGATIVES = ["a car", "a violin", "dogs bark", "an apple", "cold ice", "a tax form", "feline", "snow"]
MARGINS = slider_margins()  # the pages' margin slider: -0.20 to +0.50 by 0.01


@pytest.fixture
def batch():
    return Batch(rows=list(range(8)), anchors=ANCHORS, positives=POSITIVES, negatives=[NEGATIVES],
                 negative_names=["negative"])


@pytest.fixture
def guide():
    """Correlated random vectors: cosines spread over the margins the pages offer."""
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(8, 16, generator=g)
    near = lambda: shared + 0.8 * torch.randn(8, 16, generator=g)  # noqa: E731
    return Embedded(near(), near(), [near()])


@pytest.mark.parametrize("settings", [
    MarginSettings("absolute"), MarginSettings("relative"),
    MarginSettings("absolute", positive_floor=0.3), MarginSettings("relative", contrast_anchors=False),
    MarginSettings("absolute", contrast_positives=False, positive_floor=-0.1),
])
def test_grid_masks_equal_guided_mask_at_every_margin(batch, guide, settings):
    grid = grid_masks(batch, guide, settings, MARGINS)
    changes = 0
    for k, margin in enumerate(MARGINS):
        fresh = mask_batch(batch, guide, MarginSettings(settings.margin_strategy, margin, settings.contrast_anchors,
                                                        settings.contrast_positives, settings.positive_floor))
        assert set(grid) == set(fresh.blocks)
        for block in fresh.blocks:
            assert torch.equal(grid[block][k], fresh.masked_candidates(block)), (margin, block)
        changes += k > 0 and any(not torch.equal(grid[b][k], grid[b][k - 1]) for b in grid)
    assert changes > 5  # the grid really moves: a test of one constant mask would prove nothing


def test_slider_margins_are_the_sliders_values():
    assert MARGINS[0] == -0.2 and MARGINS[-1] == 0.5 and len(MARGINS) == 71
    assert 0.07 in MARGINS and 0.1 in MARGINS and slider_margins(0.0, 0.1, 0.05) == (0.0, 0.05, 0.1)
