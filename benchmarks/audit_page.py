"""A whole-data-set audit through the Audit page: a large synthetic set, started and watched in chromium.

``scripts/make_big_pairs.py`` writes ``--rows`` reworded bundled rows (default 200,000, seeded) into a
fresh workspace; the app is served on it, the Audit page's form gets the file's path with "Rows to
audit" 0 (the whole set), and the page's own progress bar is read every ``--every`` seconds until the
audit's findings show. Prints the bar's texts as they changed (the counted progress a user sees, with
its time left), the wall time from the click to the findings, and the audit's own summary line. The
guide cache starts empty, so the time includes encoding every distinct text once.

    python -m benchmarks audit_page --rows 200000
"""

from __future__ import annotations

import json
import time

from benchmarks.harness import CHROMIUM, CHROMIUM_ARGS, ROOT, fresh_workspace, machine_line, serve_app, wait_healthy

BAR = '[data-testid="stProgress"]'


def arguments(p) -> None:
    p.add_argument("--rows", type=int, default=200_000, help="rows of the synthetic set")
    p.add_argument("--every", type=float, default=10.0, help="seconds between readings of the progress bar")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")


def run(args) -> None:
    import sys

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_big_pairs import make

    with fresh_workspace() as home, sync_playwright() as p:
        data = home / "big_pairs.parquet"
        make(args.rows, 0).to_parquet(str(data))
        server, url = serve_app(ROOT, home)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        readings: list[tuple[float, str]] = []
        try:
            wait_healthy(url, server)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{url}/audit")
            page.get_by_role("button", name="Start the audit").wait_for(timeout=240_000)
            page.get_by_role("textbox", name="Data", exact=True).first.fill(str(data))
            rows = page.get_by_role("spinbutton", name="Rows to audit (0: all)")
            rows.fill("0")
            rows.press("Tab")
            start = time.perf_counter()
            page.get_by_role("button", name="Start the audit").click()
            while time.perf_counter() - start < args.timeout:
                time.sleep(args.every)
                bars = page.locator(BAR)
                text = " | ".join(t.strip() for t in bars.all_inner_texts() if t.strip()) if bars.count() else ""
                if text and (not readings or readings[-1][1] != text):
                    readings.append((time.perf_counter() - start, text))
                summary = next(home.glob("audits/*/summary.json"), None)
                if summary is not None and not bars.count():
                    break
            took = time.perf_counter() - start
            page.screenshot(path=str(home / "audit_page.png"))
            found = next(home.glob("audits/*/summary.json"), None)
            result = json.loads(found.read_text()) if found else None
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)
    print(f"{machine_line('streamlit', 'faiss-cpu', 'sentence-transformers')}\n")
    print(f"{args.rows:,} rows (scripts/make_big_pairs.py, seed 0), whole set, empty guide cache; "
          f"click -> findings shown: {took:.0f} s\n")
    for at, text in readings:
        print(f"{at:7.0f} s  {text}")
    if result is None:
        print("\nno audit summary was written: the audit did not finish")
        return
    keys = ("rows", "audited_rows", "seconds", "search", "precision")
    print("\n" + json.dumps({k: result.get(k) for k in keys}, indent=1, default=str))
