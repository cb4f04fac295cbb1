"""End to end in a real headless browser: the app as a user opens it, one screenshot per page.

Starts ``streamlit run app/main.py`` on a free localhost port (a fresh workspace, no network), drives
Debian's chromium with Playwright, draws a batch on the Inspect page and waits for its masked-pairs
table, and saves a full-page screenshot of every page into docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.conftest import free_port, wait_for_server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# url path (st.Page derives it from the file name) -> a heading the page always shows
PAGES = {
    "": "What the guide removes, and why it matters",
    "inspect": "Inspect a batch",
    "whatif": "Margin what-if",
    "embedding_map": "Embedding map",
    "train": "Train",
    "results": "Results",
}


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (apt-get install chromium): no real-browser test")
    pytest.importorskip("playwright", reason="playwright is not installed (pip install playwright)")


@contextmanager
def serve(home: Path):
    """``streamlit run app/main.py`` from the repo root (so .streamlit/config.toml applies), stopped after."""
    require_browser()
    port = free_port()
    env = {**os.environ, "GISTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    with open(home / "streamlit.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_server(url, server)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on a workspace holding the demo's paired run, so Train and Results have something to show."""
    home = tmp_path_factory.mktemp("browser-home")
    for run in sorted((ROOT / "assets" / "demo").glob("*/config.json")):
        shutil.copytree(run.parent, home / "runs" / f"demo-{run.parent.name}")
    with serve(home) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module (Playwright's sync API allows one driver at a time)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def browser_page(app_url, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    yield page
    page.close()


def wait_until_idle(page, timeout_ms: int) -> None:
    """Until the script run has ended and no greyed-out (stale) element is left."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')",
        timeout=timeout_ms,
    )


def shoot(page, name: str) -> None:
    """A full-page screenshot once every plotly chart has drawn (they load after the script run), those in
    app.live_figures' frames too."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(chart => chart.querySelector('.main-svg'))"
        " && [...document.querySelectorAll('iframe')].every(f => !f.src.includes('live_figures') || f.contentWindow.gistDraws > 0)",
        timeout=60_000,
    )
    page.wait_for_timeout(1_000)  # plotly's transitions and the data grid's first paint
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("path", [p for p in PAGES if p != "inspect"])
def test_every_page_opens_without_a_traceback(app_url, browser_page, path):
    page = browser_page
    page.goto(f"{app_url}/{path}")
    page.get_by_role("heading", name=PAGES[path]).first.wait_for(timeout=120_000)
    wait_until_idle(page, 240_000)
    assert page.get_by_text("Explore the guide").is_visible()  # st.navigation's sections, not pages/ listing
    assert not page.locator('[data-testid="stException"]').count()
    assert not page.locator('[data-testid="stAlertContentError"]').count()  # no st.error either
    shoot(page, path or "demo")


def test_inspect_draws_a_batch_and_shows_the_masked_pairs(app_url, browser_page):
    page = browser_page
    page.goto(f"{app_url}/inspect")
    page.get_by_text("Masked pairs (").wait_for(timeout=240_000)  # first visit loads guide and student
    wait_until_idle(page, 120_000)
    seed = page.get_by_label("Seed").input_value()
    page.get_by_role("button", name="Draw another batch").click()
    from playwright.sync_api import expect

    expect(page.get_by_label("Seed")).not_to_have_value(seed, timeout=120_000)  # a new batch was drawn
    wait_until_idle(page, 120_000)
    expect(page.get_by_text("Masked pairs (")).to_be_visible(timeout=120_000)
    expect(page.locator('[data-testid="stDataFrame"]:visible').first).to_be_visible(timeout=120_000)  # some tables sit in closed expanders
    assert not page.locator('[data-testid="stException"]').count()
    shoot(page, "inspect")


def test_a_deep_link_on_a_fresh_server_gets_the_navigation(tmp_path, browser):
    """Pages live in app/views/, not app/pages/: a pages/ folder beside main.py would put Streamlit in
    its legacy multipage mode until main.py has run once, so a bookmarked link would skip the navigation."""
    with serve(tmp_path) as url:
        page = browser.new_page()
        page.goto(f"{url}/train")
        page.get_by_role("heading", name="Train").first.wait_for(timeout=120_000)
        wait_until_idle(page, 120_000)
        sections = page.get_by_text("Explore the guide").count()
        page.close()
    assert sections == 1
