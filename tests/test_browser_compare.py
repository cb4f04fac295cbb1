"""Compare guides in a real headless browser: bundled:minilm-l6 against self (the untrained student) on a
bundled batch, both masks drawn, the numbers and the disagreement table shown, another block picked."""

from __future__ import annotations

import pytest

from tests.test_browser import browser, serve, shoot, wait_until_idle  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.browser


def test_compare_guides_draws_both_masks_and_the_disagreements(tmp_path, browser, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GISTLAB_APP_COMPARE_GUIDE", "self")  # never the 438 MB guide here
    with serve(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            page.goto(f"{url}/compare_guides")
            page.get_by_text("Pairs one guide masks and the other keeps (").wait_for(timeout=300_000)
            wait_until_idle(page, 120_000)
            assert page.get_by_text("Agreement (Jaccard)").is_visible()
            assert page.get_by_text("Precision of A").is_visible()
            page.get_by_text("Both masks, a-p").wait_for(timeout=60_000)  # plotly draws after the run
            assert page.get_by_role("button", name="Download the disagreements as CSV").is_visible()
            page.get_by_text("a-n (anchor vs negatives)", exact=True).click()
            wait_until_idle(page, 120_000)
            page.get_by_text("Both masks, a-n").wait_for(timeout=60_000)
            assert not page.locator('[data-testid="stException"]').count()
            assert not page.locator('[data-testid="stAlertContentError"]').count()
            shoot(page, "compare_guides")
        finally:
            page.close()
