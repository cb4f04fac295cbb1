"""In a real browser: Results and Demo draw a spread only from two seeds up, and say how many seeds.

Plotly draws error bars as ``g.errorbar`` paths; with one seed none may be drawn (the page says
"1 seed" instead), and with two they must be, which proves the check can fail.
"""

from __future__ import annotations

import pytest

from tests.test_app_demo import make_demo
from tests.test_app_results import add_run, write_result
from tests.test_browser import browser, serve, wait_until_idle  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

ERROR_BARS = "g.errorbar path"
PAIRED_ERROR_BARS = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
    .filter(chart => !chart.textContent.includes('false-negative rate'))
    .reduce((n, chart) => n + chart.querySelectorAll('g.errorbar path').length, 0)"""
"""Error bars of the paired charts only: the experiment's false-negative-rate curve (the shipped demo's,
three seeds) has its own."""


def open_page(page, url: str, heading: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
    wait_until_idle(page, 240_000)
    page.wait_for_function(  # at least one chart, all drawn (an empty list would pass before any mounts)
        "() => { const charts = [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')];"
        " return charts.length > 0 && charts.every(chart => chart.querySelector('.main-svg')); }", timeout=60_000)
    assert not page.locator('[data-testid="stException"]').count()


def test_results_spread_only_from_two_seeds(tmp_path, browser):  # noqa: F811
    home = tmp_path / "home"
    write_result(home, "gistlab/minilm-l3", {"WordNetSTS": 0.50, "WordNetRetrieval": 0.40})
    add_run(home, "g0", "gist", 0, 0.10)
    add_run(home, "m0", "mnrl", 0, 0.02)
    with serve(home) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        open_page(page, f"{url}/results", "Does the guide help?")
        assert page.get_by_text("GIST · mpnet-base: 1 seed (no spread").is_visible()
        assert page.evaluate(PAIRED_ERROR_BARS) == 0
        add_run(home, "g1", "gist", 1, 0.06)
        add_run(home, "m1", "mnrl", 1, 0.03)
        open_page(page, f"{url}/results", "Does the guide help?")
        assert page.get_by_text("GIST · mpnet-base: 2 seeds").is_visible()
        assert page.evaluate(PAIRED_ERROR_BARS) > 0
        page.close()


@pytest.mark.parametrize("seeds", [1, 3])
def test_demo_names_the_seed_count(tmp_path, browser, monkeypatch, seeds):  # noqa: F811
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(make_demo(tmp_path, seeds=seeds)))
    (tmp_path / "home").mkdir()
    with serve(tmp_path / "home") as url:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        open_page(page, url, "What the guide removes, and why it matters")
        label = "1 seed" if seeds == 1 else f"{seeds} seeds"
        assert page.get_by_text(f"Mean score difference over the tasks, {label}").is_visible()
        assert (page.locator(ERROR_BARS).count() > 0) == (seeds > 1)
        page.close()
