"""The grid of masks the Inspect maps scrub through is guided_mask's mask at every grid margin."""

import numpy as np
import pytest
import torch

from core.analysis.inspect import Batch, Embedded, mask_batch
from core.analysis.margin_grid import grid_masks
from core.method.margin import MARGIN_RANGE
from core.method.masking import MarginSettings

ANCHORS = ["a cat sat", "dogs bark", "stocks fell", "rain is wet", "a kitten", "the sun", "a cat sat", "ice"]
POSITIVES = ["feline", "canine noise", "shares dropped", "water", "young cat", "our star", "a cat", "frozen"]
NEGATIVES = ["a car", "a violin", "dogs bark", "an apple", "cold ice", "a tax form", "feline", "snow"]
MARGINS = np.round(np.arange(MARGIN_RANGE[0], MARGIN_RANGE[1] + 1e-9, MARGIN_RANGE[2]), 2).tolist()


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
