"""Compare strategies in a real headless browser: bundled:minilm-l6 against self (the untrained student) on a
bundled batch, both masks drawn, the numbers and the disagreement table shown, another block picked; then
strategy B switched to the self-judge and to MNRL in the sidebar, each comparison drawn with its numbers."""

from __future__ import annotations

import pytest

from core.analysis.strategies import LABELS
from tests.test_browser import browser, serve, shoot, wait_until_idle  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.browser


def pick_strategy(page, side: str, kind: str) -> None:
    """Choose ``kind`` in the sidebar's "Strategy A/B" select and wait for the page to redraw."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=f"Strategy {side}")
    box.get_by_role("combobox").click()
    page.get_by_role("option", name=LABELS[kind], exact=True).click()
    wait_until_idle(page, 180_000)


def no_errors(page) -> None:
    assert not page.locator('[data-testid="stException"]').count()
    assert not page.locator('[data-testid="stAlertContentError"]').count()


def test_compare_two_guides_then_two_strategies(tmp_path, browser, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GISTLAB_APP_COMPARE_GUIDE", "self")  # never the 438 MB guide here
    with serve(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            page.goto(f"{url}/compare_guides")
            page.get_by_text("Pairs one strategy masks and the other keeps (").wait_for(timeout=300_000)
            wait_until_idle(page, 120_000)
            assert page.get_by_role("heading", name="Compare strategies").is_visible()
            assert page.get_by_text("Agreement (Jaccard)").is_visible()
            assert page.get_by_text("Precision of A").is_visible()
            page.get_by_text("Both masks, a-p").wait_for(timeout=60_000)  # plotly draws after the run
            assert page.get_by_role("button", name="Download the disagreements as CSV").is_visible()
            page.get_by_text("a-n (anchor vs negatives)", exact=True).click()
            wait_until_idle(page, 120_000)
            page.get_by_text("Both masks, a-n").wait_for(timeout=60_000)
            no_errors(page)

            pick_strategy(page, "B", "self-judge")  # the guide against the student as its own judge
            page.get_by_text("Masked by B: self-judge").wait_for(timeout=60_000)
            assert page.get_by_text("self-judge = the student").is_visible()
            assert page.get_by_text("Judge margin", exact=True).is_visible()
            no_errors(page)

            pick_strategy(page, "B", "mnrl")  # the baseline: masks nothing
            page.get_by_text("Masked by B: MNRL").wait_for(timeout=60_000)
            assert page.get_by_text("nothing masked", exact=True).is_visible()  # B's precision: no mask to judge
            page.get_by_text("Both masks, a-n").wait_for(timeout=60_000)
            no_errors(page)
            shoot(page, "compare_guides")
        finally:
            page.close()
