"""The inspector: re-masking a batch of 128 for a new margin, the what-if sweep, projections.

Guide bundled:minilm-l6 (through a warm GuideCache in a fresh workspace), student
bundled:minilm-l3, bundled WordNet triplets (anchor, positive, negative: 4 blocks, 128 x 128 each).

1. Batch 128: ``core.analysis.inspect.remask`` (guided_mask + masked-pairs table + per-row counts, what the
   margin slider costs) against ``inspect_batch`` on a new batch (guide cache lookup + student
   encode) and a plain guide encode of the batch's 384 texts (what remask avoids). Margins and
   strategies alternate between repeats; all timed side by side in one loop.
2. Margin what-if: ``margin_sweep`` (8 batches of 32, 61 margins x 2 strategies, broadcast)
   against calling ``guided_mask`` once per (batch, strategy, margin), same cached embeddings.
3. Projection of the 384 embeddings: PCA, and UMAP (cold import in a fresh process; fit warm).
4. The Inspect page in Streamlit's AppTest at batch 128: one script rerun after a margin change
   (server side only: no browser rendering).
5. The same in chromium: slider step -> new pairs count, run over, both heatmaps redrawn (the
   app.live_figures frame counted a new draw; on an older page, both plotly charts are new); with
   ``--baseline REF`` that commit's page is timed alternately on its own server. A page holding
   only the slider and the heading (FLOOR_PAGE) is timed alternately too: Streamlit's own round
   trip on this machine, the floor under any Inspect page.

    python -m benchmarks inspector --repeats 10
    python -m benchmarks inspector --parts browser --app-moves 12 --baseline b6226d3
"""


from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (
    CHROMIUM, CHROMIUM_ARGS, ROOT, fresh_workspace, machine_line, median, serve_app, table, timed, wait_healthy,
)

OPERATIONS = ["operation", "median ms", "range ms"]
FLOOR_PAGE = """import streamlit as st
margin = st.sidebar.slider("Margin", -0.2, 0.5, step=0.01, key="margin")
st.subheader(f"Masked pairs ({round(margin * 100) + 100})")
"""
FLOOR = "reference: one slider and one heading (Streamlit's round trip)"

SETTINGS_CYCLE = [("absolute", 0.0), ("relative", 0.05), ("absolute", 0.1), ("relative", 0.2)]


def seconds(fn) -> float:
    return timed(fn).wall


def row(name: str, values: list[float], base: float | None = None) -> list[str]:
    """A line of an operations table: median and range in ms, and the ratio to ``base``."""
    med = median(values)
    return [name, f"{med * 1000:.1f}", f"{min(values) * 1000:.1f}-{max(values) * 1000:.1f}",
            f"{med / base:.1f}x" if base else "1.0x"]


def arguments(p) -> None:
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--app-moves", type=int, default=8, help="slider moves timed in AppTest")
    p.add_argument("--parts", default="engine,app,browser",
                   help="comma-separated: engine, app, browser (default all three)")
    p.add_argument("--baseline", help="a git ref whose Inspect page the browser part times side by side")


def run(args) -> None:
    print(machine_line("torch", "sentence-transformers", "streamlit"), flush=True)
    with fresh_workspace("gistlab-bench-inspector-"):
        if "engine" in args.parts:
            engine(args.repeats)
        if "app" in args.parts:
            app_first, app_moves = app_rerun_times(args.app_moves)
            print("\nInspect page in AppTest at batch 128 (bundled guide and student; server-side script run):\n")
            print(table([["first paint at batch 128 (embed the batch with guide and student)", f"{app_first:.2f}"],
                         [f"rerun after a margin change (median of {len(app_moves)}; range "
                          f"{min(app_moves):.2f}-{max(app_moves):.2f})", f"{median(app_moves):.2f}"]],
                        ["operation", "seconds"]))
    if "browser" in args.parts:
        runs, chromium = browser_slider_times(args.app_moves, args.baseline)
        print(f"\nInspect page in chromium {chromium} (Playwright, headless) at batch 128: margin slider moved "
              "with the keyboard, timed until the masked-pairs count shows the new value, the run is done and "
              "both heatmaps are redrawn" + (" (the two checkouts' steps alternate)" if args.baseline else "") + ":\n")
        ours = median(runs["this checkout"][1])
        print(table([[label, "–" if first is None else f"{first:.2f}", f"{median(moves):.3f}",
                      f"{min(moves):.3f}-{max(moves):.3f}", f"{median(moves) / ours:.1f}x"]
                     for label, (first, moves) in runs.items()],
                    ["page", "batch size 128 -> drawn (s)", "slider step -> redrawn, median (s)", "range (s)",
                     "vs this checkout"]))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


def engine(repeats: int) -> None:
    """Sections 1-3: remask, what-if sweep and projections, timed on the engine directly."""
    import numpy as np

    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.analysis.inspect import Batch, encoder, inspect_batch, mask_batch, remask, sample_batches
    from core.method.masking import STRATEGIES, MarginSettings
    from core.guides.models import load_model
    from core.analysis.projection import project
    from core.analysis.whatif import margin_sweep

    ds = load_pairs("bundled")
    guide_model, student_model = load_model("bundled:minilm-l6", device="cpu"), load_model("bundled:minilm-l3", device="cpu")
    cache = GuideCache(guide_model, "bundled:minilm-l6")
    student = encoder(student_model)
    batches = [Batch.draw(ds, 128, seed) for seed in range(repeats + 1)]
    for b in batches:
        cache.fill(b.texts())  # warm: the page's guide cache holds these after the first draw
    report = inspect_batch(batches[0], cache.embed, MarginSettings(), student)

    times: dict[str, list[float]] = {k: [] for k in ("remask", "mask", "new", "encode")}
    for k in range(repeats):
        settings = MarginSettings(*SETTINGS_CYCLE[k % len(SETTINGS_CYCLE)])
        times["remask"].append(seconds(lambda: remask(report, settings)))
        times["mask"].append(seconds(lambda: mask_batch(report.batch, report.guide, settings)))
        times["new"].append(seconds(lambda: inspect_batch(batches[k + 1], cache.embed, settings, student)))
        times["encode"].append(seconds(lambda: guide_model.encode(batches[k + 1].texts(), batch_size=64)))
    pairs = len(remask(report, MarginSettings("absolute", 0.1)).pairs)
    print(f"\nBatch 128 of bundled triplets, 4 blocks; {pairs} masked pairs at absolute 0.1; "
          f"median (min-max) of {repeats} repeats, side by side in one loop:\n")
    base = median(times["remask"])
    print(table([row("`remask` (margin slider: mask + pairs table + counts)", times["remask"], base),
                 row("`guided_mask` alone, on torch's default 2 threads", times["mask"], base),
                 row("`inspect_batch` on a new batch (warm guide cache + student encode)", times["new"], base),
                 row("guide `encode` of the batch's 384 texts (avoided by remask)", times["encode"], base)],
                OPERATIONS + ["vs remask"]), flush=True)

    sweep_batches = sample_batches(ds, 8, 32, seed=0)
    margins = np.round(np.linspace(-0.1, 0.5, 61), 3).tolist()
    embedded = [inspect_batch(b, cache.embed, MarginSettings()).guide for b in sweep_batches]

    def looped() -> None:
        for b, e in zip(sweep_batches, embedded):
            for strategy in STRATEGIES:
                for m in margins:
                    mask_batch(b, e, MarginSettings(strategy, m)).block_fractions()

    sweep_times, loop_times = [], []
    for _ in range(max(3, repeats // 4)):
        sweep_times.append(seconds(lambda: margin_sweep(sweep_batches, cache.embed, margins)))
        loop_times.append(seconds(looped))
    print(f"\nMargin what-if, 8 batches of 32, {len(margins)} margins x 2 strategies, cached embeddings:\n")
    print(table([row("`margin_sweep` (broadcast over margins)", sweep_times, median(sweep_times)),
                 row("`guided_mask` per (batch, strategy, margin)", loop_times, median(sweep_times))],
                OPERATIONS + ["vs sweep"]), flush=True)

    vectors = report.guide.all().numpy()
    pca = [seconds(lambda: project(vectors, "pca")) for _ in range(repeats)]
    cold = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import umap; "
                           "print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
    umap_import = float(cold.stdout.split()[-1])
    umap_first = seconds(lambda: project(vectors, "umap"))
    umap_warm = [seconds(lambda: project(vectors, "umap", seed=s)) for s in range(3)]
    print("\nProjection of the batch's 384 guide embeddings:\n")
    print(table([[f"PCA (median of {len(pca)})", f"{median(pca):.4f}"],
                 ["`import umap`, fresh process", f"{umap_import:.1f}"],
                 ["first UMAP fit in this process (numba compiles)", f"{umap_first:.1f}"],
                 ["later UMAP fits (median of 3)", f"{median(umap_warm):.1f}"]], ["operation", "seconds"]), flush=True)


def app_rerun_times(moves: int) -> tuple[float, list[float]]:
    """AppTest script-run time of the Inspect page: first paint, then each margin change."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=600)
    at.run()
    at.switch_page("views/inspect.py").run()
    at.sidebar.number_input(key="batch_size").set_value(128)
    first = seconds(at.run)
    if at.exception or at.error:
        raise SystemExit(f"the page failed: {[e.value for e in [*at.exception, *at.error]]}")
    times = []
    for k in range(moves):
        at.sidebar.slider(key="margin").set_value(round(0.01 * (k + 1), 2))
        times.append(seconds(at.run))
    return first, times


IDLE_EXPR = ("document.querySelector('[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]')"
             " && !document.querySelector('[data-stale=\"true\"]')")
IDLE = f"() => {IDLE_EXPR}"
PAIRS_HEADER = "[...document.querySelectorAll('h3')].find(h => h.textContent.startsWith('Masked pairs'))"
# The maps are redrawn when the live-figures frame (app.live_figures) has counted a draw since it was
# marked (a frame mounted anew counts from 0), or, on a page before it (``--baseline``), when every
# st.plotly_chart has a new ``data`` array
FRAME = "(document.querySelector('iframe') || {}).contentWindow"
MARK_MAPS = (f"() => {{ const w = {FRAME}; if (w) w.__benchDraws = w.gistDraws; "
             "document.querySelectorAll('.js-plotly-plot').forEach(g => { g.__benchOld = g.data; }); }")
LIVE_REDRAWN = f"(w => !!w && w.gistDraws > (w.__benchDraws || 0))({FRAME})"
PLOTLY_REDRAWN = ("[...document.querySelectorAll('.js-plotly-plot')].every(g => g.data && g.data !== g.__benchOld)"
                  " && document.querySelectorAll('.js-plotly-plot').length >= 2")
MAPS_REDRAWN = f"({LIVE_REDRAWN}) || ({PLOTLY_REDRAWN})"


def open_inspect(page, url: str):
    """Open the Inspect page of the app at ``url`` and wait until it is drawn; returns its batch-size input."""
    page.goto(url)  # the entry page first: a deep link on a fresh server skips st.navigation
    page.wait_for_function(IDLE, timeout=600_000)
    page.goto(f"{url}/inspect")
    page.get_by_text("Masked pairs (").wait_for(timeout=600_000)
    page.wait_for_function(IDLE, timeout=600_000)
    return page.get_by_role("spinbutton", name="Batch size")


def browser_slider_times(moves: int, baseline: str | None = None) -> tuple[dict[str, tuple[float, list[float]]], str]:
    """End to end in a real browser: set batch 128, then each margin step until the page shows it.

    With ``baseline`` (a git ref), that commit's app runs too, from ``git archive`` in a temporary
    folder on its own server and browser tab, and the two pages' slider steps alternate, so both
    medians come from the same minutes of the same (shared) machine. Returns {label: (first, steps)},
    first None for the reference page (FLOOR_PAGE), which has no batch size.
    """
    from playwright.sync_api import sync_playwright

    def header(page) -> str:
        return page.evaluate(f"() => {{ const h = {PAIRS_HEADER}; return h ? h.textContent : ''; }}")

    def changed(page, old: str, maps: bool) -> None:
        """The pairs count shows a new value, the script run is over, and (``maps``) both heatmaps were redrawn."""
        redrawn = f" && ({MAPS_REDRAWN})" if maps else ""
        page.wait_for_function(f"() => {{ const h = {PAIRS_HEADER}; return h && h.textContent !== "
                               f"{old!r} && ({IDLE_EXPR}){redrawn}; }}", timeout=600_000, polling="raf")

    def timed_change(page, act, maps: bool = True) -> float:
        old = header(page)
        page.evaluate(MARK_MAPS)
        tick = time.perf_counter()
        act()
        changed(page, old, maps)
        return time.perf_counter() - tick

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
        trees = {"this checkout": ROOT}
        if baseline:
            tree = Path(scratch) / "baseline"
            tree.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
            trees[f"baseline {baseline}"] = tree
        servers, pages = [], {}
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for label, tree in trees.items():
                home = Path(scratch) / f"home-{len(servers)}"
                home.mkdir()
                server, url = serve_app(tree, home)
                servers.append(server)
                wait_healthy(url, server)
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                size = open_inspect(page, url)
                size.fill("128")
                pages[label] = (page, timed_change(page, lambda: size.press("Enter")), [])
            floor = Path(scratch) / "floor.py"
            floor.write_text(FLOOR_PAGE)
            server, url = serve_app(Path(scratch), Path(scratch), floor.name)
            servers.append(server)
            wait_healthy(url, server)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            page.wait_for_function(IDLE, timeout=600_000)
            pages[FLOOR] = (page, None, [])
            for _ in range(moves):
                for label, (page, _, times) in pages.items():  # alternate: the same minutes for all
                    slider = page.get_by_role("slider", name="Margin") if label != FLOOR else page.get_by_role("slider").first
                    slider.focus()
                    times.append(timed_change(page, lambda: slider.press("ArrowRight"), maps=label != FLOOR))
            version = browser.version
        finally:
            browser.close()
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    return {label: (first, times) for label, (_, first, times) in pages.items()}, version
