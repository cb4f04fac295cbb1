"""The app as a user meets it: start to first page, and the Demo page's load time.

Each repeat starts ``streamlit run app/main.py`` afresh (headless, localhost, a fresh workspace) and
times, with Debian's chromium driven by Playwright:

- server ready: process spawn -> ``/_stcore/health`` answers;
- start to first page: process spawn -> the Demo page (the default page) fully drawn and idle;
- demo page load, warm: on a running server, ``goto("/")`` -> the Demo page fully drawn and idle.

Medians (and min-max). ``--demo-dir`` serves another demo folder than assets/demo (through
``GISTLAB_DEMO_DIR``).

    python -m benchmarks app --repeats 5 --loads 10
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.harness import (
    CHROMIUM, CHROMIUM_ARGS, ROOT, fresh_workspace, machine_line, serve_app, spread, table, wait_healthy,
)

DRAWN = "Try it yourself"  # the Demo page's last element: everything above it is on screen


def arguments(p) -> None:
    p.add_argument("--repeats", type=int, default=5, help="fresh server starts")
    p.add_argument("--loads", type=int, default=10, help="warm Demo loads per server")
    p.add_argument("--demo-dir", type=Path, default=ROOT / "assets" / "demo", help="the demo folder to serve")


def load_demo(page, url: str) -> None:
    """Open the app's default page and return once the Demo page is drawn and the run has ended."""
    page.goto(url)
    page.get_by_text(DRAWN).wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')", timeout=60_000)


def run(args) -> None:
    if not (args.demo_dir / "results.csv").is_file():
        raise SystemExit(f"{args.demo_dir} holds no demo (gistlab experiment --demo-dir writes one)")
    from playwright.sync_api import sync_playwright

    ready, first, warm = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.repeats):
            with fresh_workspace() as home:
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                started = time.perf_counter()
                server, url = serve_app(ROOT, home, GISTLAB_DEMO_DIR=str(args.demo_dir.resolve()))
                try:
                    wait_healthy(url, server)
                    ready.append(time.perf_counter() - started)
                    load_demo(page, url)
                    first.append(time.perf_counter() - started)
                    for _ in range(args.loads):
                        tick = time.perf_counter()
                        load_demo(page, url)
                        warm.append(time.perf_counter() - tick)
                finally:
                    page.close()
                    server.terminate()
                    server.wait(timeout=30)
        chromium = browser.version
        browser.close()
    print(f"Demo folder: {args.demo_dir}. {machine_line('streamlit', 'playwright')}, chromium {chromium}.\n")
    print(table([["server ready (spawn -> health check)", f"{spread(ready)} s", len(ready)],
                 ["app start to first page (spawn -> Demo drawn)", f"{spread(first)} s", len(first)],
                 ["Demo page load, warm server (goto -> drawn)", f"{spread(warm)} s", len(warm)]],
                ["measure", "median (min-max)", "n"]))
