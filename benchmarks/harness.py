"""What every benchmark shares: clocks, interleaved arms, the machine line, a fresh workspace, tables.

- :func:`timed` measures one call on both clocks: wall seconds (what a user waits) and this
  process's CPU seconds, all threads (what the work costs when other jobs share the cores).
- :func:`interleaved` runs arms in turn, round after round (optionally rotating who goes first),
  so load from other processes falls on every arm alike; compare arms by medians or by the
  median of per-round ratios (:func:`paired_ratio`).
- :func:`machine_line` says where the numbers come from: CPU, cores, torch threads, the load
  average, Python and package versions.
- :func:`fresh_workspace` gives a run its own empty ``GISTLAB_HOME`` (guide caches, models, runs),
  in this process and in the subprocesses started with :func:`child_env`.
- :class:`AnonymousPeak` (``with AnonymousPeak() as peak:``, then ``peak.mb``) samples this process's anonymous resident memory (``RssAnon``) in a
  thread: the memory it must hold, apart from pages of memory-mapped files that the kernel can
  drop and read back (``ru_maxrss`` counts both).
- :func:`table` prints rows as a Markdown table (``DataFrame.to_markdown``), cells as formatted.
- ``--threads`` (:data:`THREADS`) means one thing everywhere: torch threads per process, default
  torch's own (all cores).
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
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

THREADS = argparse.ArgumentParser(add_help=False)
THREADS.add_argument("--threads", type=int, default=None,
                     help="torch threads per process (default: torch's own, all cores)")


def apply_threads(threads: int | None) -> None:
    """Set torch's thread count when ``--threads`` was given (else leave torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Timing:
    """One measured call: wall seconds and this process's CPU seconds (all threads)."""

    wall: float
    cpu: float


def timed(fn: Callable[[], object], sync: Callable[[], None] | None = None) -> Timing:
    """Both clocks around ``fn()``; ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each reading."""
    if sync:
        sync()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if sync:
        sync()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


class AnonymousPeak:
    """The largest ``RssAnon`` of this process (MB) seen while the ``with`` block runs, read from
    ``/proc/self/status`` every ``every`` seconds (None where there is no /proc: not Linux)."""

    def __init__(self, every: float = 0.05) -> None:
        self.every, self.mb = every, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def now() -> float | None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return None
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), None)
        return None if kb is None else kb / 1024

    def _sample(self) -> None:
        while True:
            mb = self.now()
            if mb is not None:
                self.mb = max(self.mb or 0.0, mb)
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> AnonymousPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def interleaved(arms: dict[str, Callable[[], object]], rounds: int, *, rotate: bool = False,
                warmup: int = 0) -> dict[str, list[Timing]]:
    """Each arm timed once per round, arms in turn (``rotate``: who goes first moves each round);
    the first ``warmup`` rounds run but are not kept."""
    names = list(arms)
    times: dict[str, list[Timing]] = {name: [] for name in names}
    for k in range(warmup + rounds):
        shift = k % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            took = timed(arms[name])
            if k >= warmup:
                times[name].append(took)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """``median (min-max)`` of ``values`` times ``scale`` (1000: milliseconds)."""
    v = [x * scale for x in values]
    return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}-{max(v):.{digits}f})"


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of one arm's time over another's, each pair timed side by side."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine_line(*packages: str) -> str:
    """``Machine: <cpu>, N CPU cores, torch threads T, load average L; Python x, <package> y, ...``
    (torch's threads when torch is one of ``packages``)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    threads = ""
    if "torch" in packages:
        import torch

        threads = f", torch threads {torch.get_num_threads()}"
    versions = "".join(f", {p} {_version(p)}" for p in packages)
    return (f"Machine: {cpu}, {os.cpu_count()} CPU cores{threads}, load average {os.getloadavg()[0]:.1f}; "
            f"Python {platform.python_version()}{versions}")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """A Markdown table of already formatted cells (no number is parsed and printed again)."""
    return pd.DataFrame([list(map(str, row)) for row in rows], columns=list(headers)).to_markdown(
        index=False, disable_numparse=True)


@contextmanager
def fresh_workspace(prefix: str = "gistlab-bench-") -> Iterator[Path]:
    """An empty ``GISTLAB_HOME`` for the block (this process; :func:`child_env` hands it on), removed after."""
    before = os.environ.get("GISTLAB_HOME")
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        os.environ["GISTLAB_HOME"] = home
        try:
            yield Path(home)
        finally:
            if before is None:
                os.environ.pop("GISTLAB_HOME", None)
            else:
                os.environ["GISTLAB_HOME"] = before


def child_env(home: Path | str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's subprocess: offline, this checkout first on the path,
    ``home`` as its workspace (default: this process's)."""
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(ROOT), **extra}
    if home is not None:
        env["GISTLAB_HOME"] = str(home)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_app(tree: Path, home: Path, script: str = "app/main.py", **extra: str) -> tuple[subprocess.Popen, str]:
    """``streamlit run`` of ``script`` in the checkout at ``tree`` (its own core/ first on the path),
    headless on a free localhost port; returns the process and its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=tree, env={**child_env(home, **extra), "PYTHONPATH": str(tree)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, server: subprocess.Popen) -> None:
    """Return once the Streamlit server at ``url`` answers its health check."""
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
            return
        except OSError:
            if server.poll() is not None:
                raise SystemExit("streamlit exited during start")
            time.sleep(0.02)
