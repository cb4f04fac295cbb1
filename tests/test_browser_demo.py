"""In a real browser (issue 22's "done when"): the Demo opens with its verdict line and a caught false
negative card, and the Margin what-if's recall view draws a curve on the bundled data.

The Demo reads a fixture demo folder (tests.test_app_demo.make_demo, with an experiment.json whose
numbers are known). Random batches of the bundled definition tasks hold no false negatives, so the
what-if page is opened at a false-negative rate of 0.20 through the shared ``fn`` URL setting
(app/settings.py), with the tiny random BERT as guide (what is drawn matters here, not the weights).
"""

from __future__ import annotations

import pytest

from tests.test_app_demo import make_demo
from tests.test_browser import browser, serve, wait_until_idle  # noqa: F401 (browser: a fixture)

pytestmark = pytest.mark.browser
CHARTS_DRAWN = ("() => { const charts = [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')];"
                " return charts.length > 0 && charts.every(chart => chart.querySelector('.main-svg')); }")


def test_demo_opens_with_the_verdict_and_a_caught_false_negative(tmp_path, browser, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(make_demo(tmp_path)))
    (tmp_path / "home").mkdir()
    with serve(tmp_path / "home") as url:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        page.get_by_role("heading", name="What the guide removes, and why it matters").wait_for(timeout=120_000)
        wait_until_idle(page, 120_000)
        verdict = page.get_by_text("minilm-l3 trained with GIST · mpnet-base scored +1.20 ± 0.20 points above MNRL")
        assert verdict.is_visible()
        paragraph = page.locator('[data-testid="stMarkdownContainer"]').filter(has=verdict).first
        assert "higher in 3 of 3 seeds, at a false-negative rate of 10%" in paragraph.inner_text()
        box = verdict.bounding_box()
        card = page.get_by_text("Caught: a false negative (a right answer) left out of the loss").locator(
            'xpath=ancestor::div[@data-testid="stVerticalBlock"][1]')  # the bordered container around it
        assert card.is_visible() and box["y"] < card.bounding_box()["y"]  # the verdict comes first
        words = card.inner_text()
        assert "a look-alike 0" in words and "guide score 0.90 vs the row's own positive 0.70" in words
        assert "A false negative caught" in words
        assert page.get_by_text("Cost: a hard negative removed").is_visible()
        page.wait_for_function(CHARTS_DRAWN, timeout=60_000)
        assert page.locator("g.errorbar path").count() > 0  # 3 seeds: the intervals are drawn
        assert not page.locator('[data-testid="stException"]').count()
        page.close()


def test_whatif_recall_view_draws_a_curve_on_bundled_data(tmp_path, browser, monkeypatch, tiny_model_dir):  # noqa: F811
    monkeypatch.setenv("GISTLAB_APP_GUIDE", str(tiny_model_dir))
    monkeypatch.setenv("GISTLAB_APP_STUDENT", str(tiny_model_dir))
    with serve(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{url}/whatif?fn=0.20&batch=16")
        page.get_by_text("Precision: false negatives among the masked, per task").first.wait_for(timeout=300_000)
        wait_until_idle(page, 240_000)
        present = page.locator("[data-testid=stCaptionContainer]").filter(
            has_text="False-negative candidates in the swept batches").first.inner_text()
        counts = [int(part.rsplit(" ", 1)[1].replace(",", "")) for part in
                  present.split(": ", 1)[1].split(" · ")[0].split(", ")]
        assert counts and all(n > 0 for n in counts), present  # every swept task holds false negatives
        page.get_by_text("recall", exact=True).click()
        page.get_by_text("Recall: false negatives present that the mask catches").first.wait_for(timeout=120_000)
        wait_until_idle(page, 120_000)
        page.wait_for_function(CHARTS_DRAWN, timeout=60_000)
        assert not page.get_by_text("recall undefined there").count()
        chart = page.locator('[data-testid="stPlotlyChart"]').filter(
            has_text="Recall: false negatives present that the mask catches")
        lines = chart.locator(".scatterlayer .trace path.js-line")
        assert lines.count() > 0
        assert any(len(lines.nth(k).get_attribute("d") or "") > 20 for k in range(lines.count()))  # a curve, not a dot
        assert not page.locator('[data-testid="stException"]').count()
        page.close()
