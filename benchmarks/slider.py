"""The Inspect maps' own margin slider in a real browser: how fast the mask follows a drag.

One ``streamlit run`` of the app on a fresh workspace, Debian's chromium driven by Playwright. The
Inspect page draws a bundled batch of ``--batch`` rows; the mouse then holds the first map's margin
slider (app.views.inspect's ``with_scrubber``) and moves from step to step. Each move is timed inside
the browser, from the mouse event's timestamp to the first moment after every map's mask image has
been swapped and a frame painted (a requestAnimationFrame, then a task), so the Playwright round trip
is not counted. The margins visited cycle over a few far-apart steps, so every move changes the
mask. Also printed: the bytes of the maps' figures with their grid of masks (what the browser
receives once per batch, block and margin rule).

    python -m benchmarks slider --batch 128 --moves 30
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.harness import (
    CHROMIUM, CHROMIUM_ARGS, ROOT, fresh_workspace, machine_line, serve_app, spread, table, wait_healthy,
)
from benchmarks.inspector import IDLE, open_inspect

FRAME = "(document.querySelector('iframe') || {}).contentWindow"
STEPS = (0, 25, 50, 70, 35, 10)  # slider steps visited in turn (margins -0.20, +0.05, +0.30, +0.50, +0.15, -0.10)
# In the maps' frame: stamp each mouse move, and once every map's mask image has changed since, wait for
# a frame to be painted and record the latency (ms).
WATCH = """() => {
  const w = FRAME;
  w.__lat = []; w.__pending = null;
  w.document.addEventListener('mousemove', e => { w.__pending = {t0: e.timeStamp, seen: new Set()}; }, true);
  const maps = [...w.document.querySelectorAll('.js-plotly-plot')];
  new w.MutationObserver(records => {
    const p = w.__pending;
    if (!p) return;
    for (const r of records) if (r.attributeName === 'href') p.seen.add(maps.findIndex(m => m.contains(r.target)));
    if (maps.every((_, k) => p.seen.has(k))) {
      w.__pending = null;
      w.requestAnimationFrame(() => w.setTimeout(() => w.__lat.push(w.performance.now() - p.t0), 0));
    }
  }).observe(w.document.body, {subtree: true, attributes: true});  // no attributeFilter: it never matches xlink:href
  return maps.length;
}""".replace("FRAME", FRAME)


def arguments(p) -> None:
    p.add_argument("--batch", type=int, default=128, help="batch size drawn on the Inspect page")
    p.add_argument("--moves", type=int, default=30, help="slider steps timed")


def run(args) -> None:
    from playwright.sync_api import expect, sync_playwright

    with fresh_workspace() as home, sync_playwright() as p:
        server, url = serve_app(ROOT, home)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            wait_healthy(url, server)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            size = open_inspect(page, url)
            size.fill(str(args.batch))
            size.press("Enter")
            page.wait_for_function(f"() => {{ const w = {FRAME}; return !!w && w.gistDraws > 0 && "
                                   f"w.document.querySelectorAll('.js-plotly-plot image').length > 0 && "
                                   f"w.document.querySelector('.js-plotly-plot').layout.images[0].sizex == {args.batch}; }}",
                                   timeout=600_000)
            page.wait_for_function(IDLE, timeout=600_000)
            figures = json.loads(page.evaluate(
                f"() => JSON.stringify([...{FRAME}.document.querySelectorAll('.js-plotly-plot')].map(g => g.layout))"))
            figure_bytes = sum(len(json.dumps(f)) for f in figures)
            n_steps = len(figures[0]["sliders"][0]["steps"])
            maps = page.evaluate(WATCH)
            frame = page.frame_locator("iframe").first
            rail = frame.locator(".slider-rail-touch-rect").first
            rail.scroll_into_view_if_needed()
            box = rail.bounding_box()
            at = lambda step: (box["x"] + box["width"] * (step + 0.5) / n_steps, box["y"] + box["height"] / 2)  # noqa: E731
            page.mouse.move(*at(STEPS[-1]))
            page.mouse.down()  # a step of its own (not timed: its mouse event came before the button)
            page.wait_for_timeout(500)
            page.evaluate(f"() => {{ const w = {FRAME}; w.__lat = []; w.__pending = null; }}")
            for k in range(args.moves):
                page.mouse.move(*at(STEPS[k % len(STEPS)]))
                page.wait_for_function(f"() => {FRAME}.__lat.length > {k}", timeout=60_000)
                time.sleep(0.05)
            latencies = page.evaluate(f"() => {FRAME}.__lat")
            released = f"{-0.2 + 0.01 * STEPS[(args.moves - 1) % len(STEPS)]:.2f}"
            page.mouse.up()  # the page takes the margin released on: its sidebar slider shows it
            expect(page.locator('[data-testid="stSlider"]').filter(has=page.get_by_text("Margin", exact=True)).locator(
                '[data-testid="stSliderThumbValue"]').first).to_have_text(released, timeout=120_000)
            chromium = browser.version
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)
    print(f"{machine_line('streamlit', 'plotly', 'playwright')}, chromium {chromium}.\n")
    print(f"Inspect, bundled batch of {args.batch}, {maps} maps, {n_steps} margins per slider; the maps' figures "
          f"with their grids of masks: {figure_bytes / 1e3:,.0f} kB. On release the page took the map's margin "
          f"({released}).\n")
    print(table([["maps' slider step (mouse move) -> every map's mask swapped and painted",
                  f"{spread(latencies, digits=1)} ms", len(latencies)]],
                ["measure", "median (min-max)", "n"]))

