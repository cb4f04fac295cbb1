"""MNRL with guide-filtered mined negatives vs GIST in-batch vs both: same rows, steps, seeds and batches.

1. Mine ``--negatives`` hard negatives for the first ``--rows`` rows of one bundled task (task-homogeneous,
   as in the paper) with the student as retriever and the guide as filter (core.analysis.mining).
2. Train three arms per seed on exactly those rows (so core.corpus.data.epoch_batches gives every arm the same
   batches): ``mnrl+mined`` (MultipleNegativesRankingLoss with the mined negatives), ``gist`` (in-batch
   only, the negatives left out) and ``gist+mined`` (GIST with the mined negatives, which it also masks).
3. Evaluate the base student and every run on ``--tasks`` (mteb) and write the "mining" section of
   docs/RESULTS.md with core.training.results.write_section (the ladder experiment keeps its own section).

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

    from core.corpus.data import load_pairs, task_pool
    from core.training.evaluate import evaluate
    from core.guides.guide_cache import GuideCache
    from core.analysis.mining import MiningSettings, mine
    from core.guides.models import DEFAULT_GUIDE, DEFAULT_STUDENT, load_model
    from core.training.results import results_table, write_section
    from core.training.train import TrainConfig, run_training
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
    seeds_of = {str(run.name): seed for (_, seed), run in runs.items()}
    table = table[table["task"].isin(args.tasks.split(","))]
    table = table.assign(arm=table["run"].map(names).fillna("base student"), seed=table["run"].map(seeds_of))
    pivot = table.pivot_table(index="arm", columns="task", values="main_score", aggfunc="mean")
    spread = table[table["arm"] != "base student"].groupby(["arm", "task"])["main_score"].agg(lambda s: s.max() - s.min())
    order = ["base student", *(a for a, _, _ in ARMS)]
    lines = [
        "## Guide-filtered hard negatives: MNRL + mined vs GIST in-batch vs both",
        "",
        f"Command: `python scripts/mining_experiment.py --task {args.task} --rows {args.rows} --steps {args.steps} "
        f"--batch-size {args.batch_size} --seeds {args.seeds} --tasks {args.tasks} --report docs/RESULTS.md`; "
        f"the {len(runs)} training runs took {training_seconds(runs) / 60:.1f} min in all on 2 CPU cores, measured "
        f"while other jobs shared them (this call: {seconds:.0f} s; a rerun reuses mined data, models and results).",
        "",
        f"Data: the first {summary['rows_in']} rows of the bundled task `{args.task}` (one task: task-homogeneous "
        f"batches). Mining (core/analysis/mining.py): retriever {summary['retriever']} (the student) proposes its top "
        f"{summary['settings']['candidates']} other positives per anchor; the guide {summary['guide']} removes a "
        f"candidate unless it scores below {summary['settings']['guide_share']:.0%} of the positive. The guide "
        f"removed {summary['removed_by_guide']:,} of {summary['candidates_considered']:,} candidates "
        f"({summary['removed_share']:.1%}); {summary['rows_without_enough_negatives']} rows were left without "
        f"{summary['settings']['num_negatives']} negatives and dropped, so every arm trains on the same "
        f"{summary['rows_out']} rows, same batches per seed.",
    ]
    shares = summary.get("false_negative_share")
    if shares:
        fmt = lambda x: "n/a" if x is None else f"{x:.1%}"  # noqa: E731
        lines += ["", f"Ground truth (WordNet, by each task's relation): false negatives among the removed candidates "
                      f"{fmt(shares['removed'])}, among the kept {fmt(shares['kept'])}."]
    lines += ["", f"Main score per task (mean over seeds {args.seeds}; {args.steps} steps of batch "
                  f"{args.batch_size}, lr 2e-5):", "",
              "| arm | " + " | ".join(pivot.columns) + " | seed spread |", "|---|" + "---:|" * (len(pivot.columns) + 1)]
    for arm in order:
        if arm in pivot.index:
            worst = max((spread.get((arm, t), 0.0) for t in pivot.columns), default=0.0) if arm != "base student" else None
            cells = " | ".join(f"{pivot.loc[arm, t]:.4f}" for t in pivot.columns)
            lines.append(f"| {arm} | {cells} | {'' if worst is None else f'{worst:.4f}'} |")
    per_seed = table[table["arm"] != "base student"].pivot_table(index="arm", columns="seed", values="main_score")
    lines += ["", "Per seed (first task): " + "; ".join(
        f"{arm} " + ", ".join(f"s{int(seed)} {per_seed.loc[arm, seed]:.4f}" for seed in per_seed.columns)
        for arm in per_seed.index), "", "What it shows: " + verdict(pivot, spread)]
    return "\n".join(lines) + "\n"


def training_seconds(runs: dict) -> float:
    """The training time of the runs, from the last ``elapsed`` of each run's metrics.jsonl."""
    from core.training.runs import read_metrics

    return sum(float(read_metrics(run)["elapsed"].iloc[-1]) for run in runs.values())


def verdict(pivot, spread) -> str:
    """The comparison in words, from the numbers: each arm against GIST in-batch and the base, next to
    the largest seed spread (a difference smaller than that is not a finding)."""
    task = pivot.columns[0]
    noise = float(spread.max()) if len(spread) else 0.0
    base, gist = pivot.loc["base student", task], pivot.loc["gist", task]
    parts = [f"on {task}, every arm is above the base student ({base:.4f}) by "
             + ", ".join(f"{arm} {pivot.loc[arm, task] - base:+.4f}" for arm, _, _ in ARMS if arm in pivot.index)]
    for arm in ("mnrl+mined", "gist+mined"):
        delta = pivot.loc[arm, task] - gist
        size = "within" if abs(delta) <= 2 * noise else "beyond"
        parts.append(f"{arm} minus gist in-batch is {delta:+.4f}, {size} twice the largest seed spread ({noise:.4f})")
    return "; ".join(parts) + (". At this size (one task, few steps, two seeds) the arms cannot be told apart "
                               "where the difference is within the spread: a longer run is needed to say more."
                               if all(abs(pivot.loc[a, task] - gist) <= 2 * noise for a in ("mnrl+mined", "gist+mined"))
                               else ".")


if __name__ == "__main__":
    sys.exit(main())
