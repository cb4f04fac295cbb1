"""The Train page and the lab as a whole in a real headless browser, offline.

One server (tiny random models, a workspace holding the demo's paired run and a paired run stopped
at step 1) serves every test here: the step-1 curves must draw points in the arm colours, every
page must colour an arm alike, no request may leave localhost (each is recorded and aborted, as an
offline machine would), and the server log must stay free of warnings and stack traces. Refreshes
docs/screenshots/train.png.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from app.palette import ARM_COLORS, GUIDE_ARMS, MAX_LIGHTEN, arm_of
from tests.test_browser import PAGES, ROOT, browser, serve, shoot, wait_until_idle  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
ALL_PAGES = {**PAGES, "compare_guides": "Compare strategies", "audit": "Audit the data"}  # url path -> heading
ARM_WORD = re.compile(r"(?<![a-z])(gist|mnrl)(?![a-z])")  # "demo-gist", "gist (seed 0)"; not "gistlab"
RECIPE_WORDS = {"self-judge": "self-judge", "hardness weighting": "mnrl-hard", "+ hardness": "gist-hard",
                "mined negatives": "mined"}  # core.training.results.RECIPES / experiment labels -> palette arm
GUIDE_WORD = re.compile(rf"(?<![a-z])({'|'.join(GUIDE_ARMS)})(?![a-z])")  # "GIST · mpnet-base", "self-guide"
TRACES = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => ({
    title: (plot.layout && plot.layout.title && plot.layout.title.text) || '',
    traces: (plot._fullData || []).map(t => ({name: String(t.name), mode: t.mode || '',
        color: (t.line && t.type === 'scatter' ? t.line.color : t.marker && t.marker.color) || '',
        points: t.x ? t.x.length : 0})),
    drawn: plot.querySelectorAll('.scatterlayer .point').length,
}))"""


def step_one_run(home: Path, name: str, loss: str) -> Path:
    """A run stopped after its first step: one metrics line, as core.training.train writes it."""
    run = home / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"loss": loss, "guide": "bundled:minilm-l6", "seed": 0,
                                                 "batch_size": 32, "lr": 2e-5, "margin": 0.0, "steps": 20}))
    (run / "status.json").write_text(json.dumps({"state": "stopped", "steps_done": 1, "total_steps": 20, "pid": 0,
                                                 "started": "2026-01-01T10:00:00+00:00",
                                                 "ended": "2026-01-01T10:00:09+00:00"}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 3.2, "masked_fraction": 0.18,
                                                   "step_seconds": 1.5}) + "\n")
    return run


def point_job_at(home: Path, *run_dirs: Path) -> None:
    """Make ``run_dirs`` the last (finished) paired job, as the supervisor records it."""
    jobs_dir = home / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    steps = [{"command": ["x"], "log": str(d / "train.log"), "run_dir": str(d), "started": 1.0, "ended": 2.0,
              "code": 0} for d in run_dirs]
    (jobs_dir / "current.json").write_text(json.dumps({"kind": "paired", "steps": steps, "pid": 0}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("browser-train-home")
    for run in sorted((ROOT / "assets" / "demo").glob("*/config.json")):
        shutil.copytree(run.parent, home / "runs" / f"demo-{run.parent.name}")
    point_job_at(home, step_one_run(home, "s1-gist", "gist"), step_one_run(home, "s1-mnrl", "mnrl"))
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("GISTLAB_APP_GUIDE", "GISTLAB_APP_STUDENT", "GISTLAB_APP_COMPARE_GUIDE"):
            patch.setenv(variable, str(tiny_model_dir))  # every page fast: no real model loads
        with serve(home) as url:
            yield url, home


@pytest.fixture(scope="module")
def offline_page(browser):  # noqa: F811
    """A page whose every request to a host other than localhost is recorded and aborted."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    outside: list[str] = []

    def route(handle):
        if urlparse(handle.request.url).hostname in LOCAL_HOSTS or handle.request.url.startswith(("data:", "blob:")):
            handle.continue_()
        else:
            outside.append(handle.request.url)
            handle.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.outside, page.visited = outside, set()
    yield page
    context.close()


def open_page(page, url: str, path: str, charts: int = 0) -> list[dict]:
    """Open a page, wait until it has run and drawn its charts (at least ``charts``), return what they hold."""
    page.goto(f"{url}/{path}")
    page.visited.add(path)
    page.get_by_role("heading", name=ALL_PAGES[path]).first.wait_for(timeout=240_000)
    wait_until_idle(page, 240_000)
    page.wait_for_function("n => { const charts = [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')];"
                           " return charts.length >= n && charts.every(chart => chart.querySelector('.main-svg')); }",
                           arg=charts, timeout=60_000)
    assert not page.locator('[data-testid="stException"]').count()
    return page.evaluate(TRACES)


def expected_arm(name: str) -> str:
    """The palette arm a trace named ``name`` must be drawn in: the guide it names, else its run's arm.

    The shipped demo's gist run (copied here as ``demo-gist``) was guided by the guide its config
    names, so it takes that guide's colour; ``s1-gist`` uses the default guide (gist blue).
    """
    recipe = next((arm for words, arm in RECIPE_WORDS.items() if words in name), None)
    if recipe:
        return recipe
    guide = GUIDE_WORD.search(name)
    if guide:
        return guide.group(1)
    if "demo-gist" in name:
        config = json.loads((ROOT / "assets" / "demo" / "gist" / "config.json").read_text())
        return arm_of("gist", config.get("guide"))
    return ARM_WORD.search(name).group(1)


def arm_shade(color: str, arm: str) -> bool:
    """Whether ``color`` is the arm's hue or one of its lighter seed shades (blended toward white)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
        return False
    base = [int(ARM_COLORS[arm][i:i + 2], 16) for i in (1, 3, 5)]
    got = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    amounts = [(g - b) / (255 - b) for g, b in zip(got, base) if b < 255]
    return all(abs(a - amounts[0]) < 0.02 for a in amounts) and -0.01 <= amounts[0] <= MAX_LIGHTEN + 0.01


def test_step_one_curves_draw_points_in_the_arm_colours(lab, offline_page):
    url, home = lab
    charts = open_page(offline_page, url, "train", charts=2)
    assert [re.sub("<[^>]+>", "", c["title"]) for c in charts] == ["Loss", "Masked fraction"]
    for chart in charts:
        colors = {t["name"]: t["color"] for t in chart["traces"]}
        assert colors == {"s1-gist": ARM_COLORS["gist"], "s1-mnrl": ARM_COLORS["mnrl"]}
        assert all("markers" in t["mode"] and t["points"] == 1 for t in chart["traces"])
        assert chart["drawn"] == 2  # one visible point per arm, not empty axes
    assert offline_page.get_by_text("Past runs").is_visible()

    point_job_at(home, home / "runs" / "demo-gist", home / "runs" / "demo-mnrl")  # a full run for the picture
    open_page(offline_page, url, "train", charts=2)
    shoot(offline_page, "train")


def test_every_page_colours_an_arm_alike(lab, offline_page):
    url, _ = lab
    seen: dict[str, set[str]] = {}
    for path, charts in (("", 1), ("train", 2), ("results", 1)):
        for chart in open_page(offline_page, url, path, charts):
            for trace in chart["traces"]:
                name = trace["name"].lower()
                arm = ARM_WORD.search(name)
                if arm and trace["color"]:
                    seen.setdefault(f"{path or 'demo'}:{arm.group(1)}", set()).add((expected_arm(name), trace["color"]))
    assert {"demo:gist", "demo:mnrl", "train:gist", "train:mnrl", "results:gist", "results:mnrl"} <= set(seen)
    wrong = {key: pairs for key, pairs in seen.items() if not all(arm_shade(c, arm) for arm, c in pairs)}
    assert not wrong, f"traces not in their arm's colour (app/palette.py): {wrong}"


def test_no_request_leaves_localhost(lab, offline_page):
    url, _ = lab
    for path in ALL_PAGES:  # the module's tests share this page: each page needs one visit
        if path not in offline_page.visited:
            open_page(offline_page, url, path)
    assert offline_page.evaluate("() => document.querySelector('link[rel*=icon]').href").startswith(url)
    assert not offline_page.outside, f"requests to other hosts: {sorted(set(offline_page.outside))}"


def test_the_server_log_has_no_warnings_or_stack_traces(lab):
    _, home = lab
    log = (home / "streamlit.log").read_text(errors="replace")
    problems = [line for line in log.splitlines() if re.search(r"Traceback|WARNING|Warning|Error|Exception", line)]
    assert not problems, "\n".join(problems[:20])
