"""The GISTEmbed paper's comparison in small: MNRL vs GIST, same batches, several seeds, mini benchmark.

For each seed the default student is fine-tuned twice on the bundled WordNet pairs, once with
``mnrl`` and once with ``gist`` (guide ``bundled:minilm-l6``), for the same steps on the same
batches (core.train draws batches from the seed alone, so the arms differ only in the masking).
The base student and every run are evaluated on the mini benchmark (core.evaluate), and
``docs/RESULTS.md`` is written from the results on disk: per-task and per-type mean +- std over
seeds, the paired GIST - MNRL difference, the masked fraction, the commands and the wall time.

Optionally one finished paired run (the first seed) is copied, without weights and with the masks
of its first few steps only, into ``assets/demo/`` for the app's demo page.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import pandas as pd

from core.models import DEFAULT_GUIDE, DEFAULT_STUDENT

ARMS = ("mnrl", "gist")
DEMO_MASK_STEPS = 5
DEMO_SEARCH_STEPS = 20
DEMO_FILES = ("config.json", "status.json", "metrics.jsonl", "batches.jsonl")


@dataclass
class ExperimentConfig:
    """What the experiment trains and evaluates; every arm shares all of it but the loss.

    ``out=None`` puts the runs in the workspace's runs folder (so the app lists them) and the base
    model's results in the workspace; otherwise both go under ``out``.
    """

    student: str = DEFAULT_STUDENT
    guide: str = DEFAULT_GUIDE
    data: str = "bundled"
    tasks: str = "bundled"
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 100
    batch_size: int = 16
    lr: float = 2e-5
    homogeneous: bool = True
    out: str | None = None

    def command(self, report: Path | None, demo_dir: Path | None) -> str:
        """The ``gistlab experiment`` command line that reruns exactly this."""
        parts = ["gistlab experiment", f"--steps {self.steps}", f"--batch-size {self.batch_size}",
                 f"--seeds {','.join(map(str, self.seeds))}", f"--lr {self.lr:g}"]
        parts += [] if self.homogeneous else ["--mixed"]
        parts += [f"--student {self.student}"] if self.student != DEFAULT_STUDENT else []
        parts += [f"--guide {self.guide}"] if self.guide != DEFAULT_GUIDE else []
        parts += [f"--tasks {self.tasks}"] if self.tasks != "bundled" else []
        parts += [f"--report {report}"] if report else []
        parts += [f"--demo-dir {demo_dir}"] if demo_dir else []
        return " ".join(parts)


@dataclass
class ExperimentResult:
    """Where everything went, the tidy per-(arm, seed, task) scores and the time each phase took."""

    runs: dict[tuple[str, int], Path]
    scores: pd.DataFrame
    masked: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end


# ---------------------------------------------------------------- pure summaries


def arm_scores(table: pd.DataFrame) -> pd.DataFrame:
    """From a results table: arm (base or loss), seed, task, task_type, main_score (mean over splits)."""
    frame = table.assign(arm=table["loss"].fillna("base"), seed=table["seed"].fillna(-1).astype(int))
    keys = ["arm", "seed", "task", "task_type"]
    return frame.groupby(keys, as_index=False)["main_score"].mean()


def summarise(scores: pd.DataFrame, by: str = "task") -> pd.DataFrame:
    """Per ``by`` (task or task_type): each arm's mean and std over seeds, and the paired GIST - MNRL.

    Scores are averaged over the tasks of a group within each seed first, then over seeds. The
    paired difference is taken seed by seed (same batches), so ``gist_wins`` counts seeds where
    GIST scored higher than MNRL.
    """
    per_seed = scores.groupby(["arm", "seed", by], as_index=False)["main_score"].mean()
    wide = per_seed.pivot_table(index=[by, "seed"], columns="arm", values="main_score")
    out = pd.DataFrame(index=sorted(per_seed[by].unique()))
    for arm in ("base", *ARMS):
        if arm in wide:
            grouped = wide[arm].dropna().groupby(level=0)
            out[f"{arm}_mean"], out[f"{arm}_std"] = grouped.mean(), grouped.std(ddof=0)
    if set(ARMS) <= set(wide.columns):
        diff = (wide["gist"] - wide["mnrl"]).dropna().groupby(level=0)
        out["diff_mean"], out["diff_std"] = diff.mean(), diff.std(ddof=0)
        out["gist_wins"], out["seeds"] = diff.apply(lambda d: int((d > 0).sum())), diff.size()
    out.index.name = by
    return out


def masked_summary(runs: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """Per GIST run: the mean masked fraction over its steps, and over its first and last tenth."""
    from core.runs import read_metrics

    rows = []
    for (arm, seed), run in sorted(runs.items()):
        if arm != "gist":
            continue
        frac = pd.to_numeric(read_metrics(run)["masked_fraction"], errors="coerce").dropna()
        tenth = max(len(frac) // 10, 1)
        rows.append({"seed": seed, "mean": frac.mean(), "first_tenth": frac.head(tenth).mean(),
                     "last_tenth": frac.tail(tenth).mean(), "steps": len(frac)})
    return pd.DataFrame(rows, columns=["seed", "mean", "first_tenth", "last_tenth", "steps"])


# ---------------------------------------------------------------- report


def _pm(mean: float, std: float) -> str:
    return "n/a" if pd.isna(mean) else f"{mean:.4f} ± {std:.4f}"


def summary_markdown(summary: pd.DataFrame, by: str) -> str:
    """A Markdown table of :func:`summarise`: base, MNRL, GIST (mean ± std) and the paired difference."""
    lines = [f"| {by} | base | MNRL | GIST | GIST − MNRL | GIST better in |",
             "|---|---|---|---|---|---|"]
    for name, row in summary.iterrows():
        lines.append(
            f"| {name} | {row.get('base_mean', float('nan')):.4f} | {_pm(row['mnrl_mean'], row['mnrl_std'])} "
            f"| {_pm(row['gist_mean'], row['gist_std'])} | {row['diff_mean']:+.4f} ± {row['diff_std']:.4f} "
            f"| {int(row['gist_wins'])}/{int(row['seeds'])} seeds |"
        )
    return "\n".join(lines)


def reading(per_task: pd.DataFrame, masked: pd.DataFrame) -> str:
    """Plain sentences drawn from the numbers: where GIST helps, where it does not, how sure we can be."""
    n = int(per_task["seeds"].max())
    clear_win = per_task[(per_task["gist_wins"] == n) & (per_task["diff_mean"] > per_task["diff_std"])]
    clear_loss = per_task[(per_task["gist_wins"] == 0) & (-per_task["diff_mean"] > per_task["diff_std"])]
    mixed = per_task.drop(clear_win.index).drop(clear_loss.index)
    fine_tuned = per_task[["mnrl_mean", "gist_mean"]].max(axis=1)
    below_base = per_task[fine_tuned < per_task["base_mean"]] if "base_mean" in per_task else per_task.iloc[:0]

    def names(frame: pd.DataFrame) -> str:
        return ", ".join(f"{t} ({d:+.4f})" for t, d in frame["diff_mean"].items()) or "none"

    parts = [
        f"- GIST is ahead of MNRL in every seed, by more than the seed-to-seed spread, on "
        f"{len(clear_win)} of {len(per_task)} tasks: {names(clear_win)}.",
        f"- GIST is behind MNRL in every seed, by more than the spread, on {len(clear_loss)}: "
        f"{names(clear_loss)}.",
        f"- Mixed or within noise on {len(mixed)}: {names(mixed)}. With {n} seeds a difference "
        "smaller than its std is not evidence either way.",
    ]
    if len(below_base):
        parts.append(f"- Fine-tuning (either loss) left these below the base student: "
                     f"{', '.join(below_base.index)}: the short training on WordNet pairs does not "
                     "transfer to every task type.")
    if len(masked):
        parts.append(
            f"- The guide masked {masked['mean'].mean():.1%} of in-batch candidates on average "
            f"({masked['first_tenth'].mean():.1%} in the first tenth of the steps, "
            f"{masked['last_tenth'].mean():.1%} in the last; the guide is frozen, so this moves only "
            "with the batches drawn). These are the candidates MNRL pushes away and GIST does not."
        )
    return "\n".join(parts)


def _versions() -> str:
    from importlib.metadata import version

    packages = ("torch", "sentence-transformers", "transformers", "mteb")
    return ", ".join(f"{p} {version(p)}" for p in packages)


def render_report(config: ExperimentConfig, result: ExperimentResult, command: str) -> str:
    """docs/RESULTS.md: setup, commands, per-task and per-type tables, masked fraction, timing, reading."""
    per_task = summarise(result.scores, "task")
    per_type = pd.concat([summarise(result.scores, "task_type"),
                          summarise(result.scores.assign(task_type="all tasks (mean)"), "task_type")])
    types = result.scores.drop_duplicates("task").set_index("task")["task_type"]
    per_task.index = [f"{t} ({types[t]})" for t in per_task.index]
    masked = result.masked
    sec = result.seconds
    masked_line = (f"{masked['mean'].mean():.1%} ± {masked['mean'].std(ddof=0):.1%} over seeds "
                   f"(per seed: {', '.join(f'{m:.1%}' for m in masked['mean'])})") if len(masked) else "n/a"
    return f"""# Results: GISTEmbed vs MNRL in small

Generated by `core/experiment.py` on {datetime.now():%Y-%m-%d %H:%M}; do not edit by hand, rerun instead.

## Setup

- Student `{config.student}`, guide `{config.guide}` (frozen), data `{config.data}`
  ({'task-homogeneous batches, as in the paper' if config.homogeneous else 'mixed-task batches'}).
- Arms: `mnrl` (in-batch softmax, same blocks and temperature as GIST, no mask) and `gist`
  (the guide's mask, margin 0, absolute); {config.steps} steps of batch {config.batch_size},
  lr {config.lr:g}, seeds {', '.join(map(str, config.seeds))}. For a seed both arms train on the
  same batches in the same order: the difference is the masking alone.
- Evaluation: the bundled WordNet mini benchmark (`--tasks {config.tasks}`), mteb's own
  evaluators and main scores; base = the student before fine-tuning.
- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average
  {result.load[0]:.1f} at the start and {result.load[1]:.1f} at the end (above {os.cpu_count()} means
  other work shared the cores and stretched the wall time); Python {platform.python_version()};
  {_versions()}.

## Reproduce

```
{command}
```

Wall time: {sec.get('total', 0) / 60:.1f} min in all ({sec.get('train', 0) / 60:.1f} min training,
{sec.get('eval', 0) / 60:.1f} min evaluating, {len(result.runs)} runs + the base model). CPU time
{sec.get('cpu', 0) / 60:.1f} min (all threads): on {os.cpu_count()} otherwise idle cores, roughly
{sec.get('cpu', 0) / 60 / (os.cpu_count() or 1):.0f} min of wall time (CPU time / cores, a rough estimate).

## Per task (main score, mean ± std over {len(config.seeds)} seeds)

{summary_markdown(per_task, 'task (type)')}

## Per task type

{summary_markdown(per_type, 'task type')}

## Masked fraction (GIST runs)

Mean share of in-batch candidates the guide masked per step: {masked_line}.

## Reading

{reading(per_task, masked)}

Caveats: this is a toy scale ({config.steps} steps, a 3-layer student derived from the very
model that serves as guide, WordNet definitions only), so it shows the mechanism, not the
paper's effect sizes. WordNetClassification and WordNetClustering group definitions by
lexicographer category, the same categories the training triplets use (on other synsets), the
same kind of overlap the paper's MTEB classification training sets have with MTEB classification.
"""


# ---------------------------------------------------------------- demo


def copy_demo(runs: dict[tuple[str, int], Path], seed: int, table: pd.DataFrame, dest: Path) -> None:
    """Copy the paired run of ``seed`` into ``dest`` for the demo page: no weights, masks of a few steps.

    Writes ``dest/<arm>/`` (config, status, metrics, batches, masks of the first steps, results
    JSON), ``dest/results.csv`` (base and both arms) and ``dest/sample_batch.parquet`` (the masked
    pairs of the GIST run's clearest early batch, as the inspector shows them).
    """
    from core.runs import read_masks

    staging = dest.with_name(f".{dest.name}-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for arm in ARMS:
        run, target = runs[(arm, seed)], staging / arm
        target.mkdir()
        for name in DEMO_FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, target / name)
        masks = read_masks(run)
        masks[masks["step"] <= DEMO_MASK_STEPS].to_parquet(target / "masks.parquet", index=False)
        for result in run.glob("results/*/*/*"):
            copied = target / result.relative_to(run)
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(result, copied)
    keep = table[table["run"].isna() | table["seed"].eq(seed)]
    keep.drop(columns="path").to_csv(staging / "results.csv", index=False)
    _sample_batch(runs[("gist", seed)]).to_parquet(staging / "sample_batch.parquet", index=False)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _sample_batch(run: Path) -> pd.DataFrame:
    """The inspector's masked-pairs table for the demo: the run's clearest batch, trained student.

    Of the first DEMO_SEARCH_STEPS batches, the one whose DEMO_PAIRS clearest masked pairs
    (core.explain.clearest_pairs, what the Demo page shows) the guide scores highest: with WordNet
    a category batch masks many candidates against weak positives, which explains the method less
    well than two senses of one word. The table gets a ``step`` column.
    """
    from core.guide_cache import GuideCache
    from core.explain import DEMO_PAIRS, clearest_pairs
    from core.inspect import encoder, inspect_batch, open_run_batches, run_student
    from core.models import load_model
    from core.runs import read_metrics

    steps = range(1, min(DEMO_SEARCH_STEPS, len(read_metrics(run))) + 1)
    batches, config = open_run_batches(run, steps)
    guide = GuideCache(load_model(config.guide, device="cpu"), config.guide)

    def clarity(batch) -> float:
        pairs = inspect_batch(batch, guide.embed, config.margin_settings()).pairs
        return clearest_pairs(pairs, DEMO_PAIRS)["guide_score"].mean() if len(pairs) else float("-inf")

    best = max(range(len(batches)), key=lambda k: clarity(batches[k]))
    student = encoder(load_model(run_student(run), device="cpu"))
    pairs = inspect_batch(batches[best], guide.embed, config.margin_settings(), student).pairs
    return pairs.assign(step=steps[best])


# ---------------------------------------------------------------- the experiment


def run_experiment(
    config: ExperimentConfig,
    *,
    report: Path | None = None,
    demo_dir: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ExperimentResult:
    """Train both arms for every seed, evaluate base and runs, write the report and the demo copy."""
    from core.evaluate import evaluate
    from core.results import results_table
    from core.runs import runs_root
    from core.train import TrainConfig, run_training

    start, load_start, cpu_start = time.perf_counter(), os.getloadavg()[0], time.process_time()
    seconds = {"train": 0.0, "eval": 0.0}
    root = Path(config.out) if config.out else None
    run_root = root / "runs" if root else runs_root()
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"

    tick = time.perf_counter()
    base = evaluate(config.student, config.tasks, out=root, log=log)
    seconds["eval"] += time.perf_counter() - tick
    runs: dict[tuple[str, int], Path] = {}
    for seed in config.seeds:
        for arm in ARMS:
            log(f"training {arm}, seed {seed} ({config.steps} steps)")
            tick = time.perf_counter()
            runs[(arm, seed)] = run_training(TrainConfig(
                data=config.data, out=str(run_root / f"exp-{stamp}-{arm}-s{seed}"), student=config.student,
                guide=config.guide, loss=arm, batch_size=config.batch_size, steps=config.steps,
                lr=config.lr, seed=seed, homogeneous=config.homogeneous,
            ))
            seconds["train"] += time.perf_counter() - tick
            tick = time.perf_counter()
            evaluate(str(runs[(arm, seed)]), config.tasks, log=log)
            seconds["eval"] += time.perf_counter() - tick

    table = results_table([*base.result_files, *runs.values()])
    result = ExperimentResult(runs, arm_scores(table), masked_summary(runs), seconds,
                              (load_start, os.getloadavg()[0]))
    if demo_dir is not None:
        copy_demo(runs, config.seeds[0], table, Path(demo_dir))
    seconds["total"], seconds["cpu"] = time.perf_counter() - start, time.process_time() - cpu_start
    if report is not None:
        Path(report).write_text(render_report(config, result, config.command(report, demo_dir)))
    return result
