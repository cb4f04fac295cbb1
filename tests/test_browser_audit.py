"""In a real browser: audit a sample of the bundled data, mark three findings, export, train on the export.

The issue's "done when": the exported file has a ``group`` column and fewer rows than the data, and a
short training run on it completes. Uses the bundled guide (all-MiniLM-L6-v2) on 300 sampled rows.
"""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, require_browser, serve, shoot, wait_until_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-audit-home")
    with serve(home) as url:
        yield url, home


@pytest.fixture(scope="module")
def page(app):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        yield page
        browser.close()


def findings_drawn(page) -> None:
    """Until the script run ended and the metrics and decision buttons are drawn (their code loads lazily)."""
    wait_until_idle(page, 120_000)
    page.get_by_test_id("stMetric").first.wait_for(timeout=120_000)
    page.get_by_test_id("stButtonGroup").first.wait_for(timeout=120_000)


def visible_decisions(page):
    """The keep/drop/merge button groups of the tab that is open."""
    groups = page.get_by_test_id("stButtonGroup")
    return [groups.nth(k) for k in range(groups.count()) if groups.nth(k).is_visible()]


def test_audit_mark_export_and_train_on_the_export(app, page):
    url, home = app
    page.goto(f"{url}/audit")
    page.get_by_role("heading", name="Audit the data").first.wait_for(timeout=120_000)
    wait_until_idle(page, 120_000)
    rows = page.get_by_role("spinbutton", name="Rows to audit (0: all)")
    rows.fill("300")
    rows.press("Tab")
    page.get_by_role("button", name="Start the audit").click()
    page.get_by_text("suspected false negatives (").first.wait_for(timeout=400_000)  # the tabs of a finished audit
    findings_drawn(page)
    assert not page.locator('[data-testid="stException"]').count()
    assert page.get_by_text("precision").count()  # the bundled data has ground truth

    # three decisions: merge the first false negative, drop the second, drop the first suspect positive
    fn = visible_decisions(page)
    assert len(fn) >= 2, "the audit of 300 bundled rows should find at least two false negatives"
    fn[0].get_by_text("merge into group").click()
    wait_until_idle(page, 60_000)
    visible_decisions(page)[1].get_by_text("drop row").click()
    wait_until_idle(page, 60_000)
    page.get_by_role("tab", name="suspect positives").click()
    wait_until_idle(page, 60_000)
    visible_decisions(page)[0].get_by_text("drop row").click()
    wait_until_idle(page, 60_000)
    folder = next((home / "audits").iterdir())
    decisions = json.loads((folder / "decisions.json").read_text())["decisions"]
    assert sorted(decisions.values()) == ["drop", "drop", "merge"]

    page.reload()  # the marks survive a reload
    page.get_by_text("suspected false negatives (").first.wait_for(timeout=120_000)
    findings_drawn(page)
    first = visible_decisions(page)[0]
    assert first.get_by_role("radio", checked=True).inner_text() == "merge into group"

    page.get_by_role("button", name="Export").click()
    page.get_by_text("give it as Data on the Train page").wait_for(timeout=120_000)
    exported = folder / "cleaned.parquet"
    table = pq.read_table(exported)
    assert "group" in table.column_names and table.num_rows == 24_000 - 2
    assert table.column("group").null_count < table.num_rows  # the merge (and duplicate sets) made groups
    shoot(page, "audit")

    page.goto(f"{url}/train")
    page.get_by_role("heading", name="Train").first.wait_for(timeout=120_000)
    wait_until_idle(page, 120_000)
    page.get_by_role("textbox", name="Data", exact=True).fill(str(exported))
    page.get_by_role("spinbutton", name="Batch size", exact=True).fill("8")
    steps = page.get_by_role("spinbutton", name="Steps", exact=True)
    steps.fill("2")
    steps.press("Tab")
    page.get_by_role("button", name="Start training").click()  # the default: gist, then mnrl
    deadline = time.monotonic() + 600
    states = []
    while time.monotonic() < deadline:
        found = sorted((home / "runs").glob("*/status.json")) if (home / "runs").is_dir() else []
        states = [json.loads(f.read_text()) for f in found]
        if len(states) == 2 and all(s.get("state") in ("completed", "failed", "stopped", "interrupted") for s in states):
            break
        time.sleep(1)
    assert [s["state"] for s in states] == ["completed", "completed"], states
    assert all(s["steps_done"] == 2 for s in states)
    assert {json.loads((f.parent / "config.json").read_text())["data"] for f in found} == {str(exported)}
