"""Shared settings in a real headless browser (issue 24): a link sets the sidebar, a setting made on one
page holds on another page and in its URL, and the server log has no warnings.

One ``streamlit run`` on an empty workspace with the tiny random BERT as guide and student (the
weights do not matter here), driven by Debian's chromium through Playwright (tests/test_browser.py).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from tests.test_browser import browser, serve, wait_until_idle  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.browser
LOG_PROBLEMS = re.compile(r"Traceback|WARNING|Warning|Exception|Error", re.IGNORECASE)


def slider_value(page, label: str) -> float:
    slider = page.locator('[data-testid="stSlider"]').filter(has=page.get_by_text(label, exact=True))
    return float(slider.locator('[data-testid="stSliderThumbValue"]').first.inner_text())


def seed(page) -> str:
    return page.get_by_role("spinbutton", name="Seed", exact=True).input_value()


def query(page) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlparse(page.url).query).items()}


def settled(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)


def test_a_link_and_a_setting_carry_across_pages_and_into_the_url(tmp_path, browser, monkeypatch,  # noqa: F811
                                                                   tiny_model_dir):
    monkeypatch.setenv("GISTLAB_APP_GUIDE", str(tiny_model_dir))
    monkeypatch.setenv("GISTLAB_APP_STUDENT", str(tiny_model_dir))
    with serve(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{url}/inspect?margin=0.10&seed=3&aa=0")
        settled(page, "Masked pairs (")
        assert slider_value(page, "Margin") == pytest.approx(0.10) and seed(page) == "3"
        assert not page.get_by_role("checkbox", name="Contrast anchors (a-a block)").is_checked()
        line = page.locator("[data-testid=stCaptionContainer]").filter(has_text="Current settings").first
        assert "absolute margin +0.10" in line.inner_text()

        page.get_by_role("link", name="Margin what-if").click()
        settled(page, "Masked share per block")
        assert slider_value(page, "Margin") == pytest.approx(0.10) and seed(page) == "3"
        assert {"margin": "0.10", "seed": "3", "aa": "0"}.items() <= query(page).items()

        box = page.get_by_role("spinbutton", name="Seed", exact=True)
        box.fill("4")
        box.press("Enter")
        page.wait_for_function("() => location.search.includes('seed=4')", timeout=60_000)
        wait_until_idle(page, 240_000)
        page.get_by_role("link", name="Inspect a batch").click()
        settled(page, "Masked pairs (")
        assert seed(page) == "4" and slider_value(page, "Margin") == pytest.approx(0.10)
        assert {"margin": "0.10", "seed": "4"}.items() <= query(page).items()
        page.close()
    problems = [line for line in (tmp_path / "streamlit.log").read_text().splitlines() if LOG_PROBLEMS.search(line)]
    assert problems == []
