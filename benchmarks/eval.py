"""The bundled mini benchmark (``gistlab eval --tasks bundled``) per model, memo on vs off.

Each repeat evaluates every model from scratch (``overwrite=True``, a fresh results folder) once
with core.training.evaluate's EncodeMemo (each distinct text embedded once) and once without it (plain
``model.encode``), interleaved so that load from other processes hits both alike. Prints a
Markdown table of medians over repeats, the texts each variant embedded, and the ratio measured
side by side; the load average before and after is printed too, since the cores may be shared.

    python -m benchmarks eval --models bundled:minilm-l6,bundled:minilm-l3 --repeats 3
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Timing, interleaved, machine_line, median, table


def arguments(p) -> None:
    p.add_argument("--models", default="bundled:minilm-l6")
    p.add_argument("--repeats", type=int, default=3)


def evaluation(model: str, memo: bool, encoded: dict) -> Callable[[], None]:
    """One from-scratch evaluation of the bundled tasks, the texts it embedded noted in ``encoded``."""
    import core.training.evaluate as ev

    def once() -> None:
        install = ev.EncodeMemo.install
        if not memo:
            ev.EncodeMemo.install = lambda self: self  # the memo exists but never replaces model.encode
        try:
            with tempfile.TemporaryDirectory() as out:
                report = ev.evaluate(model, "bundled", out=Path(out), overwrite=True)
        finally:
            ev.EncodeMemo.install = install
        if report.skipped:
            raise SystemExit(f"tasks skipped: {report.skipped}")
        encoded[(model, memo)] = report.texts_encoded
        print(f"{model} memo={memo}: {report.texts_encoded} texts", file=sys.stderr, flush=True)

    return once


def run(args) -> None:
    import core.training.evaluate as ev

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    load_before = os.getloadavg()
    for model in models:  # warm-up: builds minilm-l3 once, imports mteb, reads the assets
        ev.load_model(model)
        ev.resolve_tasks("bundled")
    encoded: dict[tuple[str, bool], int] = {}
    arms = {(model, memo): evaluation(model, memo, encoded) for model in models for memo in (True, False)}
    times: dict[tuple[str, bool], list[Timing]] = interleaved(arms, args.repeats)
    print(f"{machine_line('torch', 'sentence-transformers', 'mteb')}; load average before {load_before[0]:.1f}; "
          f"{args.repeats} repeats.\n")
    rows = []
    for model in models:
        on, off = (median([t.wall for t in times[(model, memo)]]) for memo in (True, False))
        for memo in (True, False):
            walls = [t.wall for t in times[(model, memo)]]
            rows.append([model, "on" if memo else "off", f"{median(walls):.1f}", f"{min(walls):.1f}", f"{max(walls):.1f}",
                         f"{median([t.cpu for t in times[(model, memo)]]):.1f}",
                         encoded[(model, memo)] if memo else "all requested", f"{off / on:.2f}x" if memo else ""])
    print(table(rows, ["model", "memo", "median wall s", "min s", "max s", "median CPU s", "texts embedded",
                       "memo speed-up (wall)"]))
