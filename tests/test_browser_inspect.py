"""The analysis pages in a real headless browser (issue 11): links that land, tables that show the positive,
maps that answer a click, and a server log without warnings or tracebacks.

One ``streamlit run`` on a workspace holding the demo's paired run, driven by Debian's chromium through
Playwright (fixtures and helpers from tests/test_browser.py). The Train page's "Inspect its batches"
link must open Inspect on that run's step; the masked-pairs table must lead with the row, its own
positive and the candidate; a heatmap's hover must name both texts and both scores; a click on the
embedding map must list the text's nearest neighbours; "Draw another batch" must not log Streamlit's
Session State warning; dragging a map's own margin slider must swap its mask in the browser and, on
release, set the page's margin. Refreshes docs/screenshots/inspect.png, whatif.png and embedding_map.png.
"""

from __future__ import annotations

import json
import re
import shutil
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from core.guides.models import DEFAULT_GUIDE, MPNET
from tests.test_browser import ROOT, browser, serve, shoot, wait_until_idle  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.browser
FRAME = "document.querySelector('iframe')?.contentWindow"
MASK_SOURCE = "w.document.querySelector('.js-plotly-plot').layout.images[0].source"
LOG_PROBLEMS = re.compile(r"Traceback|WARNING|Warning|Exception|Error", re.IGNORECASE)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, server log path) of the app on a workspace with the demo's gist and mnrl runs."""
    home = tmp_path_factory.mktemp("browser-inspect-home")
    for run in sorted((ROOT / "assets" / "demo").glob("*/config.json")):
        shutil.copytree(run.parent, home / "runs" / f"demo-{run.parent.name}")
        config = json.loads(run.read_text())
        if config.get("guide") == MPNET:  # the optional 438 MB guide is never installed in CI: the bundled one
            (home / "runs" / f"demo-{run.parent.name}" / "config.json").write_text(
                json.dumps({**config, "guide": DEFAULT_GUIDE}, indent=2))
    with serve(home) as url:
        yield url, home / "streamlit.log"


@pytest.fixture(scope="module")
def page(served, browser):  # noqa: F811 (browser is test_browser's fixture)
    url, _ = served
    tab = browser.new_page(viewport={"width": 1440, "height": 1000})
    tab.goto(url)  # the entry page first, as a user arrives
    wait_until_idle(tab, 240_000)
    yield tab
    tab.close()


def headers(page, index: int) -> list[str]:
    """Column headers of the page's ``index``-th dataframe (glide-data-grid's accessible table)."""
    grid = page.locator('[data-testid="stDataFrame"]').nth(index)
    grid.scroll_into_view_if_needed()
    grid.locator("th").first.wait_for(state="attached", timeout=60_000)  # drawn once its data arrived
    return grid.locator("th").all_text_contents()


def pairs_table(page) -> int:
    """Index of the masked-pairs dataframe (the one with a 'masked candidate' column)."""
    tables = page.locator('[data-testid="stDataFrame"]')
    tables.locator("th", has_text="masked candidate").first.wait_for(state="attached", timeout=60_000)  # drawn
    return next(k for k in range(tables.count()) if "masked candidate" in headers(page, k))


def test_the_train_pages_link_lands_on_the_runs_step(served, page):
    url, _ = served
    page.goto(f"{url}/train")
    page.get_by_role("heading", name="Past runs").wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)
    runs = page.locator('[data-testid="stDataFrame"]').first
    runs.locator("th").first.wait_for(state="attached", timeout=60_000)  # the grid has its data
    runs.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = runs.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)  # the first run's selection cell
    link = page.get_by_role("link", name=re.compile("Inspect its batches"))
    link.wait_for(timeout=120_000)
    link.click()
    page.get_by_text("Masked pairs (").wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)
    query = parse_qs(urlparse(page.url).query)
    run, step = query["run"][0], query["step"][0]
    assert urlparse(page.url).path.endswith("/inspect") and run.startswith("demo-")
    assert page.get_by_text(f"Step {step} of run {run}").first.is_visible()  # that run's batch (sidebar and settings line)
    assert page.get_by_role("spinbutton", name=re.compile("Step")).input_value() == step
    assert not page.locator('[data-testid="stException"]').count()


def test_pairs_lead_with_the_positive_and_the_heatmap_hover_names_both_texts(served, page):
    url, _ = served
    page.goto(f"{url}/inspect?run=demo-gist&step=7")
    page.get_by_text("Masked pairs (").wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)
    assert page.get_by_text("Step 7 of run demo-gist").first.is_visible()
    assert headers(page, pairs_table(page))[:5] == [
        "row", "row text", "its positive", "masked candidate", "guide: candidate − positive"]
    page.wait_for_function(f"() => {{ const w = {FRAME}; return w && w.gistDraws > 0; }}", timeout=120_000)
    page.locator("iframe").first.scroll_into_view_if_needed()  # app.live_figures' frame holds the maps
    heatmap = page.frame_locator("iframe").first.locator(".js-plotly-plot").first
    hover = heatmap.locator(".hoverlayer .hovertext")
    for share in (0.3, 0.35, 0.4):  # a map drawn again under a still cursor shows no hover: move again
        cells = heatmap.locator(".nsewdrag").first.bounding_box()
        page.mouse.move(cells["x"] + cells["width"] * share, cells["y"] + cells["height"] * 0.6)
        try:
            hover.first.wait_for(timeout=4_000)
            break
        except PlaywrightTimeout:
            continue
    text = hover.first.text_content()
    assert "row" in text and "candidate" in text and "guide" in text and "student" in text
    assert re.search(r"\d+ · \w", text)  # "12 · the row's text": texts, not bare indices
    shoot(page, "inspect")


def draw_from_data(page, url: str) -> None:
    """Inspect a batch drawn from data, once its page and its maps are drawn."""
    page.goto(f"{url}/inspect")
    page.get_by_role("radio", name="Draw from data").check()
    page.get_by_text("Masked pairs (").wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)
    page.wait_for_function(f"() => {{ const w = {FRAME}; return w && w.gistDraws > 0; }}", timeout=120_000)


def test_margin_and_draw_another_batch_redraw_without_errors(served, page):
    url, _ = served
    draw_from_data(page, url)
    from playwright.sync_api import expect

    before = page.get_by_text("Masked pairs (").text_content()
    page.evaluate(f"() => {{ const w = {FRAME}; w.__mark = w.gistDraws; w.__mask = {MASK_SOURCE}; }}")
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("End")  # the widest margin, in one rerun
    # more masked: the old count goes (while Streamlit swaps elements, old and new headings can both show)
    expect(page.get_by_text(before, exact=True)).to_have_count(0, timeout=120_000)
    expect(page.get_by_text("Masked pairs (").first).to_be_visible(timeout=120_000)
    wait_until_idle(page, 120_000)
    # the same frame (its mark survived: not remounted, plotly.js not reloaded) swapped the mask image in place
    page.wait_for_function(f"() => {{ const w = {FRAME}; return w.__mark !== undefined && w.gistDraws > w.__mark; }}",
                           timeout=60_000)
    assert page.evaluate(f"() => {{ const w = {FRAME}; return {MASK_SOURCE} !== w.__mask; }}")
    seed = page.get_by_label("Seed").input_value()
    page.get_by_role("button", name="Draw another batch").click()
    expect(page.get_by_label("Seed")).not_to_have_value(seed, timeout=120_000)
    wait_until_idle(page, 240_000)
    assert not page.locator('[data-testid="stException"]').count()


def test_the_maps_follow_their_own_margin_slider_and_its_release_sets_the_pages(served, page):
    from playwright.sync_api import expect

    url, _ = served
    draw_from_data(page, url)
    margin = page.locator('[data-testid="stSlider"]').filter(has=page.get_by_text("Margin", exact=True)).locator(
        '[data-testid="stSliderThumbValue"]').first  # the sidebar's margin, as shown
    before, pairs = float(margin.inner_text()), page.get_by_text("Masked pairs (").text_content()
    page.evaluate(f"() => {{ const w = {FRAME}; w.__mask = {MASK_SOURCE}; }}")
    rail = page.frame_locator("iframe").first.locator(".slider-rail-touch-rect").first
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.98, box["y"] + box["height"] / 2, steps=8)
    # the maps followed the drag in the browser (a new mask, every map's slider on one step) while the
    # button is still held: the page's margin has not moved
    page.wait_for_function(f"() => {{ const w = {FRAME}; return w.gistScrubs > 0 && {MASK_SOURCE} !== w.__mask; }}",
                           timeout=30_000)
    steps = page.evaluate(f"() => [...{FRAME}.document.querySelectorAll('.js-plotly-plot')]"
                          ".map(g => g.layout.sliders[0].steps[g.layout.sliders[0].active].value)")
    assert len(set(steps)) == 1 and float(steps[0]) > before
    assert float(margin.inner_text()) == before
    page.mouse.up()  # released: the page takes the map's margin, and its numbers and tables follow
    expect(page.get_by_text(pairs, exact=True)).to_have_count(0, timeout=120_000)
    wait_until_idle(page, 120_000)
    assert float(margin.inner_text()) == float(steps[0])
    assert not page.locator('[data-testid="stException"]').count()


def test_the_map_lists_a_clicked_texts_neighbours(served, page):
    url, _ = served
    page.goto(f"{url}/embedding_map")
    page.get_by_role("heading", name="Embedding map").first.wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)
    point = page.locator('[data-testid="stPlotlyChart"] .scatterlayer .trace .points path').nth(5)
    point.wait_for(timeout=60_000)
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_role("heading", name="Nearest neighbours in the original embedding space").wait_for(timeout=120_000)
    wait_until_idle(page, 120_000)
    assert page.get_by_text("Guide", exact=True).is_visible() and page.get_by_text("Student", exact=True).is_visible()
    tables = page.locator('[data-testid="stDataFrame"]')
    tables.nth(1).wait_for(state="attached", timeout=60_000)  # both neighbour tables drawn (after the heading)
    assert tables.count() >= 2 and headers(page, 0)[:3] == ["rank", "cosine", "guide"]
    assert page.get_by_text("Selected texts (1)").is_visible()
    shoot(page, "embedding_map")


def test_whatif_shows_precision_per_task(served, page):
    url, _ = served
    page.goto(f"{url}/whatif")
    page.get_by_text("Precision: false negatives among the masked, per task").wait_for(timeout=300_000)
    wait_until_idle(page, 240_000)
    assert page.get_by_text("absolute margin m").first.is_visible()
    assert not page.locator('[data-testid="stException"]').count()
    shoot(page, "whatif")


def test_the_server_log_has_no_warning_or_traceback(served, page):
    """Last in this module: everything above ran against this server."""
    _, log = served
    problems = [line for line in log.read_text().splitlines() if LOG_PROBLEMS.search(line)]
    assert not problems, "\n".join(problems[:20])
