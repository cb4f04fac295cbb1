"""The six-task WordNet mini benchmark (core.corpus.mteb_tasks) through ``mteb.evaluate``, per task.

Each repeat runs every task once, fresh task object and empty result cache, for one model;
reports the main score and the median wall and process-CPU seconds per task and in total. CPU
seconds count every thread of this process: on a machine shared with other jobs they are what
the run costs, the wall time what a user waits.

    python -m benchmarks bundled_tasks --model bundled:minilm-l6 --repeats 3 [--threads 1]
"""

from __future__ import annotations

import os
import sys
import tempfile

from benchmarks.harness import Timing, machine_line, median, table, timed

THREADED = True


def arguments(p) -> None:
    p.add_argument("--model", default="bundled:minilm-l6")
    p.add_argument("--repeats", type=int, default=3)


def run_once(model, name: str) -> tuple[float, Timing]:
    """(main score, its timing) of one task evaluated from scratch."""
    import mteb

    from core.corpus.mteb_tasks import bundled_tasks

    task = bundled_tasks([name])[0]
    cache = mteb.ResultCache(tempfile.mkdtemp(prefix="bench-mteb-"))
    found = []
    took = timed(lambda: found.append(mteb.evaluate(model, [task], cache=cache, show_progress_bar=False)))
    return found[0].task_results[0].get_score(), took


def run(args) -> None:
    from core.corpus.mteb_tasks import TASK_NAMES
    from core.guides.models import load_model

    model = load_model(args.model, device="cpu")
    load_before = os.getloadavg()
    runs: dict[str, list[tuple[float, Timing]]] = {n: [] for n in TASK_NAMES}
    totals = []

    def every_task() -> None:
        for name in TASK_NAMES:
            runs[name].append(run_once(model, name))
            print(f"{name}: {runs[name][-1]}", file=sys.stderr, flush=True)

    for _ in range(args.repeats):
        totals.append(timed(every_task))
    print(f"model `{args.model}`, {args.repeats} repeats, medians; {machine_line('torch', 'sentence-transformers', 'mteb')}; "
          f"load average before {load_before[0]:.1f}\n")
    rows = [[name, f"{r[0][0]:.4f}", f"{median([t.wall for _, t in r]):.1f}", f"{median([t.cpu for _, t in r]):.1f}"]
            for name, r in runs.items()]
    rows.append(["**all six**", "", f"{median([t.wall for t in totals]):.1f}", f"{median([t.cpu for t in totals]):.1f}"])
    print(table(rows, ["task", "main score", "wall s", "CPU s"]))
