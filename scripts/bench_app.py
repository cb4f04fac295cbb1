"""Benchmark the app as a user meets it: start to first page, and the Demo page's load time.

Each repeat starts ``streamlit run app/main.py`` afresh (headless, localhost, a fresh workspace) and
times, with Debian's chromium driven by Playwright:

- server ready: process spawn -> ``/_stcore/health`` answers;
- start to first page: process spawn -> the Demo page (the default page) fully drawn and idle;
- demo page load, warm: on a running server, ``goto("/")`` -> the Demo page fully drawn and idle.

Prints a markdown table of medians (and min-max) for docs/PERFORMANCE.md. ``--demo-dir`` serves
another demo folder than assets/demo (through ``GISTLAB_DEMO_DIR``).

    python scripts/bench_app.py --repeats 5 --loads 10
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DRAWN = "Try it yourself"  # the Demo page's last element: everything above it is on screen


def start_server(home: str, demo_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, env={**os.environ, "GISTLAB_HOME": home, "GISTLAB_DEMO_DIR": str(demo_dir), "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, server: subprocess.Popen) -> None:
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return
        except OSError:
            if server.poll() is not None:
                raise SystemExit("streamlit exited during start")
            time.sleep(0.02)


def load_demo(page, url: str) -> None:
    """Open the app's default page and return once the Demo page is drawn and the run has ended."""
    page.goto(url)
    page.get_by_text(DRAWN).wait_for(timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]')"
        " && !document.querySelector('[data-stale=\"true\"]')", timeout=60_000)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh server starts")
    parser.add_argument("--loads", type=int, default=10, help="warm Demo loads per server")
    parser.add_argument("--demo-dir", type=Path, default=ROOT / "assets" / "demo", help="the demo folder to serve")
    args = parser.parse_args()
    if not (args.demo_dir / "results.csv").is_file():
        raise SystemExit(f"{args.demo_dir} holds no demo (gistlab experiment --demo-dir writes one)")

    import streamlit
    from playwright.sync_api import sync_playwright

    ready, first, warm = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as home:
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                started = time.perf_counter()
                server, url = start_server(home, args.demo_dir.resolve())
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

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"Demo folder: {args.demo_dir}. Machine: {os.cpu_count()} CPU cores ({cpu}), "
          f"load average {os.getloadavg()[0]:.1f} at the end; "
          f"Python {platform.python_version()}, streamlit {streamlit.__version__}, "
          f"playwright {version('playwright')}, chromium {chromium}.\n")
    print("| measure | median (min-max) | n |")
    print("|---|---|---|")
    print(f"| server ready (spawn -> health check) | {summary(ready)} | {len(ready)} |")
    print(f"| app start to first page (spawn -> Demo drawn) | {summary(first)} | {len(first)} |")
    print(f"| Demo page load, warm server (goto -> drawn) | {summary(warm)} | {len(warm)} |")


if __name__ == "__main__":
    main()
