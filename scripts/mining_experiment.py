"""MNRL with guide-filtered mined negatives vs GIST in-batch vs both: same rows, steps, seeds and batches.

1. Mine ``--negatives`` hard negatives for the first ``--rows`` rows of one bundled task (task-homogeneous,
   as in the paper) with the student as retriever and the guide as filter (core.mining).
2. Train three arms per seed on exactly those rows (so core.data.epoch_batches gives every arm the same
   batches): ``mnrl+mined`` (MultipleNegativesRankingLoss with the mined negatives), ``gist`` (in-batch
   only, the negatives left out) and ``gist+mined`` (GIST with the mined negatives, which it also masks).
3. Evaluate the base student and every run on ``--tasks`` (mteb) and write the "mining" section of
   docs/RESULTS.md with core.results.write_section (the ladder experiment keeps its own section).

    python scripts/mining_experiment.py --steps 60 --seeds 0,1 --report docs/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARMS = (("mnrl+mined", "mnrl", "mined"), ("gist", "gist", "pairs"), ("gist+mined", "gist", "mined"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="example_definition")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--tasks", default="WordNetRetrieval,WordNetReranking")
    p.add_argument("--out", default=None, help="folder for data, runs and results (default <workspace>/mining-experiment)")
    p.add_argument("--report", default=None, help="write the mining section into this Markdown file")
    args = p.parse_args()

    from core.data import load_pairs, task_pool
    from core.evaluate import evaluate
    from core.guide_cache import GuideCache
    from core.mining import MiningSettings, mine
    from core.models import DEFAULT_GUIDE, DEFAULT_STUDENT, load_model
    from core.results import results_table, write_section
    from core.train import TrainConfig, run_training
    from core.workspace import subdir

    started = time.perf_counter()
    out = Path(args.out) if args.out else subdir("mining-experiment")
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = args.tasks.split(",")
    data = {"mined": out / "mined.parquet", "pairs": out / "pairs.parquet"}
    summary_file = out / "mined.summary.json"
    if not summary_file.is_file():  # a rerun (more seeds, a lost run) reuses the mined data
        ds = load_pairs("bundled")
        ds = ds.select(task_pool(ds, args.task)[:args.rows].tolist())
        result = mine(ds, load_model(DEFAULT_STUDENT), GuideCache(load_model(DEFAULT_GUIDE), DEFAULT_GUIDE).embed,
                      MiningSettings(num_negatives=args.negatives),
                      about={"task": args.task, "retriever": DEFAULT_STUDENT, "guide": DEFAULT_GUIDE})
        result.dataset.to_parquet(str(data["mined"]))
        negatives = [c for c in result.dataset.column_names if c.startswith("negative_")]
        result.dataset.remove_columns(negatives).to_parquet(str(data["pairs"]))
        summary_file.write_text(json.dumps(result.summary, indent=2))
    summary = json.loads(summary_file.read_text())

    evaluate(DEFAULT_STUDENT, tasks, out=out / "base")
    runs = {}
    for seed in seeds:
        for arm, loss, which in ARMS:
            run = out / f"{arm}-s{seed}"
            if not (run / "model").is_dir():
                run_training(TrainConfig(data=str(data[which]), loss=loss, steps=args.steps,
                                         batch_size=args.batch_size, seed=seed, out=str(run)), overwrite=True)
            evaluate(str(run), tasks)
            runs[(arm, seed)] = run
            print(f"{arm} seed {seed} done at {time.perf_counter() - started:.0f} s", file=sys.stderr)

    table = results_table([out / "base", *runs.values()])
    markdown = render(args, summary, table, runs, time.perf_counter() - started)
    if args.report:
        write_section(args.report, "mining", markdown)
    print(markdown)
    return 0


def render(args, summary: dict, table, runs: dict, seconds: float) -> str:
    """The mining section: the command, the mining summary, scores per arm and seed, and the deltas."""
    names = {str(run.name): arm for (arm, _), run in runs.items()}
    table = table.assign(arm=table["run"].map(names).fillna("base student"))
    pivot = table.pivot_table(index="arm", columns="task", values="main_score", aggfunc="mean")
    spread = table[table["arm"] != "base student"].groupby(["arm", "task"])["main_score"].agg(lambda s: s.max() - s.min())
    order = ["base student", *(a for a, _, _ in ARMS)]
    lines = [
        "## Guide-filtered hard negatives: MNRL + mined vs GIST in-batch vs both",
        "",
        f"Command: `python scripts/mining_experiment.py --task {args.task} --rows {args.rows} --steps {args.steps} "
        f"--batch-size {args.batch_size} --seeds {args.seeds} --tasks {args.tasks} --report docs/RESULTS.md` "
        f"({seconds / 60:.0f} min on 2 shared CPU cores, measured while other jobs shared them).",
        "",
        f"Data: the first {summary['rows_in']} rows of the bundled task `{args.task}` (one task: task-homogeneous "
        f"batches). Mining (core/mining.py): retriever {summary['retriever']} (the student) proposes its top "
        f"{summary['settings']['candidates']} other positives per anchor; the guide {summary['guide']} removes a "
        f"candidate unless it scores below {summary['settings']['guide_share']:.0%} of the positive. The guide "
        f"removed {summary['removed_by_guide']:,} of {summary['candidates_considered']:,} candidates "
        f"({summary['removed_share']:.1%}); {summary['rows_without_enough_negatives']} rows were left without "
        f"{summary['settings']['num_negatives']} negatives and dropped, so every arm trains on the same "
        f"{summary['rows_out']} rows, same batches per seed.",
    ]
    shares = summary.get("same_meaning_share")
    if shares:
        fmt = lambda x: "n/a" if x is None else f"{x:.1%}"  # noqa: E731
        lines += ["", f"Ground truth (WordNet synsets): same-meaning among the removed candidates "
                      f"{fmt(shares['removed'])}, among the kept {fmt(shares['kept'])}."]
    lines += ["", f"Main score per task (mean over seeds {args.seeds}; {args.steps} steps of batch "
                  f"{args.batch_size}, lr 2e-5):", "",
              "| arm | " + " | ".join(pivot.columns) + " | seed spread |", "|---|" + "---:|" * (len(pivot.columns) + 1)]
    for arm in order:
        if arm in pivot.index:
            worst = max((spread.get((arm, t), 0.0) for t in pivot.columns), default=0.0) if arm != "base student" else None
            cells = " | ".join(f"{pivot.loc[arm, t]:.4f}" for t in pivot.columns)
            lines.append(f"| {arm} | {cells} | {'' if worst is None else f'{worst:.4f}'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
