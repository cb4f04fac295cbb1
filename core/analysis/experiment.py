"""The guide ladder: which guide helps a small student, by how much, how sure, on the same batches.

For each seed the student is fine-tuned once per arm of ``guides`` (``none`` = MNRL, the in-batch
softmax without a mask; any other entry is a GIST guide spec: ``self``, ``bundled:minilm-l6``,
``bundled:mpnet-base``...), for the same steps on the same batches (core.training.train draws batches from
the seed alone, so the arms of a seed differ only in the mask). A second case, the paper's "small
model" one, trains another student (``small_student``, default ``bundled:minilm-l6``) with
``small_guides`` (default none and ``bundled:mpnet-base``). Every base student and every run is
evaluated on the mini benchmark (core.training.evaluate). The runs go seed by seed, so whatever has
finished is a complete paired comparison for the seeds done.

Resumable: each run's directory is named after its settings (``exp-<student>-<arm>-s<seed>-
<steps>x<batch>-<hash>``); a completed run is reused, not retrained, and its evaluation is read
back (core.training.evaluate reuses results by weights). Each run keeps its own clock in
``experiment.json`` (training and evaluation seconds, CPU seconds), so the report's time covers
every invocation that contributed. An arm that cannot run (e.g. the mpnet extra is not installed)
is skipped with its one-line reason, which the report repeats.

The report (a ``ladder`` section of a Markdown file, core.training.results.write_section) is rewritten after
every run: per case, each arm's score ± std over seeds per task and mean, the paired difference of
each guide against MNRL with its sign count, the mask's precision and recall of false negatives
against the WordNet ground truth, weak-positive rows and the masked fraction per guide, the time,
and a reading. Optionally the first seed's MNRL run and strongest-guide run are copied without
weights into ``assets/demo/`` with the experiment's tidy scores and masking figures (``ladder_scores.csv``,
``ladder_masking.csv``) for the Demo page.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import pandas as pd

from core.errors import GistlabError, first_line
from core.guides.models import DEFAULT_STUDENT
from core.training.results import MEAN_TASK, MNRL, arm_label, arm_summary, paired_deltas

LADDER = (MNRL, "self", "bundled:minilm-l6", "bundled:mpnet-base")
SMALL_STUDENT = "bundled:minilm-l6"
SMALL_GUIDES = (MNRL, "bundled:mpnet-base")
SECTION = "ladder"
LEDGER = "experiment.json"  # a run's own clock, written once it is trained and evaluated
DEMO_MASK_STEPS = 5
DEMO_SEARCH_STEPS = 20
DEMO_FILES = ("config.json", "status.json", "metrics.jsonl", "batches.jsonl")
DEMO_SCORES, DEMO_MASKING, DEMO_SAMPLE = "ladder_scores.csv", "ladder_masking.csv", "sample_batch.json"
MASKING_COLUMNS = ["student", "arm", "seed", "steps", "masked", "fn_precision", "fn_recall", "weak_rows"]


@dataclass(frozen=True)
class Arm:
    """One run of the experiment: a student trained with a guide (``none``: MNRL) on a seed's batches."""

    student: str
    guide: str
    seed: int

    @property
    def loss(self) -> str:
        return "mnrl" if self.guide == MNRL else "gist"


@dataclass
class ExperimentConfig:
    """What the experiment trains and evaluates; every arm of a seed shares all of it but the guide.

    ``out=None`` puts the runs in the workspace's runs folder (so the app lists them) and the base
    models' results in the workspace; otherwise both go under ``out``. ``small_student=None`` (or
    empty ``small_guides``) leaves the second case out.
    """

    student: str = DEFAULT_STUDENT
    guides: tuple[str, ...] = LADDER
    small_student: str | None = SMALL_STUDENT
    small_guides: tuple[str, ...] = SMALL_GUIDES
    data: str = "bundled"
    tasks: str = "bundled"
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 50  # 18 runs (6 with the 6-layer student) fit in ~45 min on 2 idle cores
    batch_size: int = 16
    lr: float = 2e-5
    homogeneous: bool = True
    out: str | None = None
    threads: int | None = None  # torch threads for every run; None: all cores (never load-dependent)
    report_only: bool = False  # train nothing: report (and copy the demo of) the runs already finished
    false_negatives: float = 0.0  # core.corpus.false_negatives: every arm trains at this rate (0: the data as is)

    def cases(self) -> list[tuple[str, tuple[str, ...]]]:
        """(student, guides) of each case: the ladder, then the small-model case if any."""
        cases = [(self.student, tuple(dict.fromkeys(self.guides)))]
        if self.small_student and self.small_guides and self.small_student != self.student:
            cases.append((self.small_student, tuple(dict.fromkeys(self.small_guides))))
        return cases

    def plan(self) -> list[Arm]:
        """Every run, seed by seed (so a cut-off leaves whole seeds), each case's arms in order."""
        return [Arm(student, guide, seed) for seed in self.seeds
                for student, guides in self.cases() for guide in guides]

    def train_settings(self, arm: Arm) -> dict:
        """The core.training.train.TrainConfig fields of an arm's run (all but ``out``)."""
        guide = {} if arm.guide == MNRL else {"guide": arm.guide}  # MNRL loads no guide
        return {"data": self.data, "student": arm.student, **guide, "loss": arm.loss,
                "batch_size": self.batch_size, "steps": self.steps, "lr": self.lr, "seed": arm.seed,
                "homogeneous": self.homogeneous,
                **({"false_negatives": self.false_negatives} if self.false_negatives else {})}  # rate 0: old names

    def run_name(self, arm: Arm) -> str:
        """``exp-<student>-<arm>-s<seed>-<steps>x<batch>-<hash of the settings>``: same settings, same folder."""
        digest = hashlib.sha1(json.dumps(self.train_settings(arm), sort_keys=True).encode()).hexdigest()[:6]
        arm_name = "mnrl" if arm.guide == MNRL else _short(arm.guide)
        return f"exp-{_short(arm.student)}-{arm_name}-s{arm.seed}-{self.steps}x{self.batch_size}-{digest}"

    def command(self, report: Path | None, demo_dir: Path | None) -> str:
        """The ``gistlab experiment`` command line that reruns (or resumes) exactly this."""
        d = ExperimentConfig()
        parts = ["gistlab experiment", f"--guides {','.join(self.guides)}", f"--steps {self.steps}",
                 f"--batch-size {self.batch_size}", f"--seeds {','.join(map(str, self.seeds))}",
                 f"--lr {self.lr:g}"]
        parts += [] if self.homogeneous else ["--mixed"]
        parts += [f"--false-negatives {self.false_negatives:g}"] if self.false_negatives else []
        parts += [f"--student {self.student}"] if self.student != d.student else []
        if (self.small_student, self.small_guides) != (d.small_student, d.small_guides):
            parts += [f"--small-student {self.small_student or 'none'}",
                      f"--small-guides {','.join(self.small_guides)}"]
        parts += [f"--data {self.data}"] if self.data != d.data else []
        parts += [f"--tasks {self.tasks}"] if self.tasks != d.tasks else []
        parts += [f"--report {report}"] if report else []
        parts += [f"--demo-dir {demo_dir}"] if demo_dir else []
        return " ".join(parts)


def _short(spec: str) -> str:
    """A folder-safe short name of a model spec: ``bundled:minilm-l3`` -> ``minilm-l3``, a path -> its name."""
    name = spec.removeprefix("bundled:").rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) or "model"


@dataclass
class ExperimentResult:
    """Where everything went, the tidy scores, the masking figures and the time each run took."""

    runs: dict[Arm, Path]
    scores: pd.DataFrame  # student, arm, seed, task, task_type, metric, split, main_score
    masking: pd.DataFrame  # MASKING_COLUMNS, one row per guided run
    base_files: dict[str, list[Path]] = field(default_factory=dict)  # per student: its base results
    ledgers: dict[Arm, dict] = field(default_factory=dict)
    skipped: dict[Arm, str] = field(default_factory=dict)
    seconds: float = 0.0  # this invocation's wall time


# ---------------------------------------------------------------- pure summaries


def run_masking(metrics: pd.DataFrame) -> dict:
    """One guided run's masking over its steps: masked fraction, precision, recall, weak-positive rows per step.

    Precision (false negatives masked / masked) and recall (false negatives masked / present), by the
    task's relation of core.method.groundtruth, and weak rows (rows with most of their candidates
    masked) come from the per-step metrics core.training.train records; NaN where the run has no such
    metric (no ground truth, no false negative present, or a run recorded before that definition).
    """
    def mean(column: str) -> float:
        if column not in metrics:
            return float("nan")
        return float(pd.to_numeric(metrics[column], errors="coerce").mean())

    return {"steps": len(metrics), "masked": mean("masked_fraction"), "fn_precision": mean("fn_precision"),
            "fn_recall": mean("fn_recall"),
            "weak_rows": mean("weak_rows")}


def masking_summary(masking: pd.DataFrame) -> pd.DataFrame:
    """Per (student, arm): mean of each masking figure over seeds, its std and the seed count."""
    grouped = masking.groupby(["student", "arm"], sort=False)
    out = grouped[["masked", "fn_precision", "fn_recall", "weak_rows"]].agg(["mean", "std"])
    out.columns = [f"{figure}_{stat}" for figure, stat in out.columns]
    return out.assign(seeds=grouped["seed"].nunique()).reset_index()


def _pm(mean: float, std: float, seeds: int, digits: int = 4) -> str:
    if pd.isna(mean):
        return "n/a"
    if seeds < 2 or pd.isna(std):
        return f"{mean:.{digits}f} (1 seed)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _task_table(frame: pd.DataFrame, arms: list[str], headers: list[str], cell: Callable[[str, pd.Series], str],
                types: dict[str, str] | None = None) -> str:
    """A Markdown table: one line per task (sorted, the mean over tasks last), one column per arm."""
    wide = frame.set_index(["task", "arm"])
    tasks = [*sorted(t for t in frame["task"].unique() if t != MEAN_TASK), MEAN_TASK]
    lines = ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    for task in tasks:
        cells = [cell(arm, wide.loc[(task, arm)]) if (task, arm) in wide.index else "n/a" for arm in arms]
        name = f"{task} ({types[task]})" if types and task in types else task
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scores_markdown(summary: pd.DataFrame, arms: list[str], types: dict[str, str]) -> str:
    """Per task and mean: each arm's score ± std over seeds (one column per arm, base first)."""
    def cell(arm: str, row: pd.Series) -> str:
        return f"{row['mean']:.4f}" if arm == "base" else _pm(row["mean"], row["std"], row["seeds"])

    return _task_table(summary, arms, ["task (main score)", *map(arm_label, arms)], cell, types)


def deltas_markdown(deltas: pd.DataFrame, arms: list[str]) -> str:
    """Per task and mean: each guide's paired difference against MNRL, ± std, and its sign count."""
    def cell(_arm: str, row: pd.Series) -> str:
        spread = "" if row["seeds"] < 2 else f" ± {row['spread']:.4f}"
        return f"{row['delta']:+.4f}{spread} (higher in {int(row['wins'])}/{int(row['seeds'])})"

    return _task_table(deltas, arms, ["task", *(f"{arm_label(a)} − MNRL" for a in arms)], cell)


def masking_markdown(summary: pd.DataFrame) -> str:
    """Per guide: masked fraction, precision and recall of false negatives, weak-positive rows per step."""
    lines = ["| guide | candidates masked | precision (false negatives / masked) | recall (caught / present) "
             "| weak-positive rows per step | seeds |",
             "|---|---|---|---|---|---|"]
    for _, row in summary.iterrows():
        seeds = int(row["seeds"])

        def cell(figure: str, percent: bool) -> str:
            mean, std = row[f"{figure}_mean"], row[f"{figure}_std"]
            if pd.isna(mean):
                return "no ground truth" if figure == "fn_precision" else "n/a"
            text = f"{mean:.1%}" if percent else f"{mean:.2f}"
            if seeds > 1 and pd.notna(std):
                text += f" ± {std:.1%}" if percent else f" ± {std:.2f}"
            return text

        lines.append(f"| {arm_label(row['arm'])} | {cell('masked', True)} | {cell('fn_precision', True)} "
                     f"| {cell('fn_recall', True)} | {cell('weak_rows', False)} | {seeds} |")
    return "\n".join(lines)


def verdicts(deltas: pd.DataFrame) -> pd.DataFrame:
    """Each (arm, task) delta judged: ``helps`` / ``hurts`` when every seed agrees on the sign and the
    mean exceeds the seed-to-seed std of the differences, ``noise`` otherwise, ``1 seed`` when no
    spread can be measured."""
    def verdict(row: pd.Series) -> str:
        if row["seeds"] < 2:
            return "1 seed"
        if row["wins"] == row["seeds"] and row["delta"] > row["spread"]:
            return "helps"
        if row["wins"] == 0 and -row["delta"] > row["spread"]:
            return "hurts"
        return "noise"

    return deltas.assign(verdict=deltas.apply(verdict, axis=1) if len(deltas) else [])


def reading(deltas: pd.DataFrame, summary: pd.DataFrame, masking: pd.DataFrame, student: str) -> str:
    """Plain sentences drawn from the numbers: per guide, where it helps, where it hurts, where it is noise."""
    if deltas.empty:
        return "- No guide arm has a finished MNRL partner yet: nothing to compare."
    judged = verdicts(deltas)
    parts = []
    for arm, rows in judged.groupby("arm", sort=False):
        mean = rows[rows["task"] == MEAN_TASK].iloc[0] if (rows["task"] == MEAN_TASK).any() else None
        tasks = rows[rows["task"] != MEAN_TASK]

        def names(kind: str) -> str:
            picked = tasks[tasks["verdict"] == kind]
            return ", ".join(f"{t} ({d:+.4f})" for t, d in zip(picked["task"], picked["delta"])) or "none"

        seeds = int(rows["seeds"].max())
        line = f"- **{arm_label(arm)}** vs MNRL, {seeds} seed{'s' if seeds != 1 else ''}: "
        if mean is not None:
            verdict = {"helps": "helps", "hurts": "hurts", "noise": "is within the seed noise",
                       "1 seed": "cannot be judged (1 seed, no spread)"}[mean["verdict"]]
            spread = "" if mean["seeds"] < 2 else f" ± {mean['spread']:.4f}"
            line += f"on the mean over tasks it {verdict} ({mean['delta']:+.4f}{spread}). "
        if seeds >= 2:
            line += (f"Helps on {names('helps')}; hurts on {names('hurts')}; noise on {names('noise')}.")
        parts.append(line)
    base = summary[(summary["arm"] == "base") & (summary["task"] == MEAN_TASK)]
    mnrl = summary[(summary["arm"] == MNRL) & (summary["task"] == MEAN_TASK)]
    if len(base) and len(mnrl):
        parts.append(f"- Fine-tuning with MNRL moved the mean over tasks from {base['mean'].iloc[0]:.4f} "
                     f"(base `{student}`) to {mnrl['mean'].iloc[0]:.4f}.")
    for _, row in masking.iterrows():
        if pd.notna(row["fn_precision_mean"]):
            parts.append(f"- {arm_label(row['arm'])} masked {row['masked_mean']:.1%} of the in-batch candidates, "
                         f"{row['fn_precision_mean']:.0%} of them false negatives by the task's relation (the "
                         f"rest related hard negatives or unrelated: costs); {row['weak_rows_mean']:.2f} rows "
                         f"per step were weak positives.")
    parts.append("- Rule: a guide *helps* (or *hurts*) on a task when it beats (or trails) MNRL in every "
                 "seed and the mean difference exceeds the std of the per-seed differences; anything "
                 "else is noise at this scale.")
    return "\n".join(parts)


def _versions() -> str:
    from importlib.metadata import version

    packages = ("torch", "sentence-transformers", "transformers", "mteb")
    return ", ".join(f"{p} {version(p)}" for p in packages)


def time_markdown(result: ExperimentResult, planned: int) -> str:
    """The time it took, from each run's own clock (all invocations), and this invocation's wall time."""
    ledgers = list(result.ledgers.values())
    train = sum(entry.get("train_s", 0.0) for entry in ledgers)
    evaluate = sum(entry.get("eval_s", 0.0) for entry in ledgers)
    cpu = sum(entry.get("cpu_s", 0.0) for entry in ledgers)
    cores = os.cpu_count() or 1
    threads = pd.Series([entry.get("threads") for entry in ledgers], dtype="object").value_counts()
    loads = [x for entry in ledgers for x in entry.get("load", [])]
    load_text = (f"The 1-minute load average ranged from {min(loads):.1f} to {max(loads):.1f} at the runs' starts "
                 f"and ends (above {cores}: other work shared the cores and stretched the wall time)."
                 if loads else "")
    threads_text = ", ".join(f"{n} with {t} thread{'s' if t != 1 else ''}" for t, n in threads.items())
    return (
        f"{len(result.runs)} of {planned} runs finished ({threads_text or 'none yet'}; the thread count is "
        f"fixed per experiment: --threads, default all cores). From the runs' own clocks: "
        f"{(train + evaluate) / 60:.1f} min ({train / 60:.1f} min training, {evaluate / 60:.1f} min "
        f"evaluating), {cpu / 60:.1f} min of CPU time (all threads), i.e. about {cpu / 60 / cores:.0f} min "
        f"on {cores} otherwise idle cores (a rough estimate: CPU time / cores). {load_text}"
    )


def render_report(config: ExperimentConfig, result: ExperimentResult, command: str) -> str:
    """The ladder section: setup, command, time, per-case tables, masking, reading, caveats."""
    types = result.scores.drop_duplicates("task").set_index("task")["task_type"].to_dict()
    scores = result.scores
    masking = masking_summary(result.masking)
    done_seeds = sorted({arm.seed for arm in result.runs})
    sections = []
    for number, (student, guides) in enumerate(config.cases(), start=1):
        own = scores[scores["student"] == student]
        if own.empty:
            sections.append(f"## Case {number}: student `{student}`\n\nNo results yet.")
            continue
        summary = arm_summary(own, [])
        deltas = paired_deltas(own, [])
        guided = [g for g in guides if g != MNRL]
        arms = [a for a in ("base", *guides) if a in set(own["arm"])]
        title = "the guide ladder" if number == 1 else "the paper's small-model case"
        own_masking = masking[masking["student"] == student]
        sections.append(f"""## Case {number}: {title} (student `{student}`)

### Main score per task (mean ± std over seeds)

{scores_markdown(summary, arms, types)}

### Paired difference against MNRL (same seed, same batches; ± std over seeds; seeds where the guide scored higher)

{deltas_markdown(deltas, [g for g in guided if g in set(deltas['arm'])]) if len(deltas) else 'No pair finished yet.'}

### What each guide masked (mean over steps, then over seeds)

{masking_markdown(own_masking) if len(own_masking) else 'No guided run finished yet.'}

### Reading

{reading(deltas, summary, own_masking, student)}""")
    skipped = "".join(f"\n- `{arm.guide}` for `{arm.student}`, seed {arm.seed}: {reason}"
                      for arm, reason in result.skipped.items())
    return f"""# Results: the guide ladder (GISTEmbed vs MNRL in small)

Generated by `core/analysis/experiment.py` on {datetime.now():%Y-%m-%d %H:%M}; do not edit by hand, rerun
instead (finished runs are reused). Seeds with results so far: {', '.join(map(str, done_seeds)) or 'none'}.

## Setup

- Data `{config.data}` ({'task-homogeneous batches, as in the paper' if config.homogeneous else 'mixed-task batches'}),
  {config.steps} steps of batch {config.batch_size}, lr {config.lr:g}, seeds {', '.join(map(str, config.seeds))}.
  For a seed every arm trains on the same batches in the same order: arms differ in the mask alone.
- Arms: MNRL (`none`: in-batch softmax, same blocks and temperature 0.01 as GIST, no mask) and GIST
  with each guide (margin 0, absolute): `self` = a frozen copy of the student before training,
  `bundled:minilm-l6` = all-MiniLM-L6-v2 (the 3-layer student is cut from it: layers 0, 2, 4),
  `bundled:mpnet-base` = all-mpnet-base-v2 (110 M parameters, another tokenizer).
- Evaluation: the bundled WordNet mini benchmark (`--tasks {config.tasks}`), mteb's own evaluators
  and main scores; base = the student before fine-tuning. Std is the sample std over seeds.
- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; {_versions()}.

## Reproduce (or resume)

```
{command}
```

## Time

{time_markdown(result, len(config.plan()))}
{f'''
Not in this report (skipped, failed or not run yet):{skipped}
''' if skipped else ''}
{(chr(10) * 2).join(sections)}

## Caveats

- Toy scale ({config.steps} steps of {config.batch_size}, WordNet definitions only): this shows the
  mechanism and its direction, not the paper's effect sizes.
- The 3-layer student is derived from all-MiniLM-L6-v2, so the `minilm-l6` guide is the student's
  own parent: it is not an independent judge.
- WordNetClassification and WordNetClustering group definitions by lexicographer category, the same
  categories the training triplets use (on other synsets): the same kind of overlap the paper's MTEB
  classification training sets have with MTEB classification.
"""


# ---------------------------------------------------------------- demo


def copy_demo(result: ExperimentResult, config: ExperimentConfig, dest: Path) -> None:
    """Copy the first seed's MNRL run and strongest-guide run (ladder case) into ``dest`` for the demo page.

    Writes ``dest/mnrl/`` and ``dest/gist/`` (config, status, metrics, batches, masks of the first
    steps, results JSON; no weights), ``dest/results.csv`` (base and both runs),
    ``dest/sample_batch.parquet`` (the masked pairs of the GIST run's clearest early batch, as the
    inspector shows them), and the whole experiment's tidy scores and masking figures.
    """
    from core.training.results import results_table
    from core.training.runs import read_masks

    student, guides = config.cases()[0]
    seed = min((arm.seed for arm in result.runs), default=None)
    ready = [g for g in reversed(guides) if g != MNRL and Arm(student, g, seed) in result.runs]
    if seed is None or Arm(student, MNRL, seed) not in result.runs or not ready:
        return
    pair = {"mnrl": result.runs[Arm(student, MNRL, seed)], "gist": result.runs[Arm(student, ready[0], seed)]}
    staging = dest.with_name(f".{dest.name}-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, run in pair.items():
        target = staging / name
        target.mkdir()
        for file in DEMO_FILES:
            if (run / file).is_file():
                shutil.copy2(run / file, target / file)
        masks = read_masks(run)
        masks[masks["step"] <= DEMO_MASK_STEPS].to_parquet(target / "masks.parquet", index=False)
        for found in run.glob("results/*/*/*"):
            copied = target / found.relative_to(run)
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, copied)
    table = results_table([*result.base_files.get(student, []), *pair.values()])
    table.drop(columns="path").to_csv(staging / "results.csv", index=False)
    result.scores.to_csv(staging / DEMO_SCORES, index=False)
    result.masking.to_csv(staging / DEMO_MASKING, index=False)
    shipped, config_file = dest / "sample_batch.parquet", dest / "gist" / "config.json"
    same_run = config_file.is_file() and config_file.read_text() == (pair["gist"] / "config.json").read_text()
    if same_run and shipped.is_file() and (dest / DEMO_SAMPLE).is_file():
        for name in ("sample_batch.parquet", DEMO_SAMPLE):  # same run as last time: same batch
            shutil.copy2(dest / name, staging / name)
    else:
        pairs, stats = _sample_batch(pair["gist"])
        pairs.to_parquet(staging / "sample_batch.parquet", index=False)
        (staging / DEMO_SAMPLE).write_text(json.dumps(stats, indent=2))
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _sample_batch(run: Path) -> tuple[pd.DataFrame, dict]:
    """The inspector's masked-pairs table for the demo (the run's clearest batch, trained student) and
    its denominators: rows, candidates, masked, weak-positive rows, precision against the ground truth.

    Of the first DEMO_SEARCH_STEPS batches, the one whose DEMO_PAIRS clearest masked pairs
    (core.method.explain.clearest_pairs, what the Demo page shows) the guide scores highest: with WordNet
    a category batch masks many candidates against weak positives, which explains the method less
    well than two senses of one word. The table gets ``step`` and ``weak_row`` (the row masks at
    least 90% of its candidates) columns.
    """
    from core.method.explain import DEMO_PAIRS, clearest_pairs
    from core.guides.guide_cache import GuideCache
    from core.analysis.inspect import encoder, inspect_batch, open_run_batches, run_student
    from core.guides.models import load_guide, load_model
    from core.training.runs import read_metrics

    steps = range(1, min(DEMO_SEARCH_STEPS, len(read_metrics(run))) + 1)
    batches, config = open_run_batches(run, steps)
    guide = GuideCache(load_guide(config.guide, config.student, device="cpu"), config.guide)

    def clarity(batch) -> float:
        pairs = inspect_batch(batch, guide.embed, config.margin_settings()).pairs
        return clearest_pairs(pairs, DEMO_PAIRS)["guide_score"].mean() if len(pairs) else float("-inf")

    best = max(range(len(batches)), key=lambda k: clarity(batches[k]))
    student = encoder(load_model(run_student(run), device="cpu"))
    report = inspect_batch(batches[best], guide.embed, config.margin_settings(), student)
    mask = report.mask
    weak = mask.weak_rows().numpy()
    quality = report.quality
    pooled = (quality[(quality["task"] == "all") & (quality["block"] == "all")].iloc[0]
              if quality is not None and len(quality) else None)
    shares = {} if pooled is None else {  # the three-way split of the mask (core.method.groundtruth)
        "false_negatives": int(pooled["false_negatives"]), "caught": int(pooled["caught"]),
        "related": int(pooled["masked_same-word"] + pooled["masked_same-category"]),
        "unrelated": int(pooled["masked_unrelated"])}
    precision = None if pooled is None or pooled["precision"] != pooled["precision"] else float(pooled["precision"])
    stats = {"step": steps[best], "guide": config.guide, "rows": len(batches[best]),
             "candidates": sum(int(mask.candidates[b].sum()) for b in mask.blocks),
             "masked": sum(int(mask.masked_candidates(b).sum()) for b in mask.blocks),
             "weak_rows": int(weak.sum()), "precision": precision, **shares}
    return report.pairs.assign(step=steps[best], weak_row=weak[report.pairs["row"].to_numpy()]), stats


# ---------------------------------------------------------------- the experiment


def _finished(run: Path) -> bool:
    """Whether ``run`` holds a completed training with its model saved (then it is reused)."""
    from core.training.runs import STATUS, trained_model

    try:
        state = json.loads((run / STATUS).read_text()).get("state")
    except (OSError, ValueError):
        return False
    return state == "completed" and trained_model(run) is not None


def _train_seconds(run: Path) -> float:
    """Training wall time from the run's status (started to ended)."""
    from core.training.runs import STATUS

    status = json.loads((run / STATUS).read_text())
    started, ended = (datetime.fromisoformat(status[k]) for k in ("started", "ended"))
    return (ended - started).total_seconds()


def run_threads(config_threads: int | None) -> int:
    """Torch threads for every run: the experiment's ``threads`` if given, else all cores.

    Fixed per experiment (never chosen from the machine's load), so a rerun of a seed repeats the
    same float summation order and reproduces its numbers. On cores shared with other work, one
    thread is faster (measured here at a load average of 14: ~12 s a step with 1 thread, ~29 s with
    2): pass ``--threads 1`` then. Each run's ledger records its thread count.
    """
    return config_threads or os.cpu_count() or 1


def _run_arm(config: ExperimentConfig, arm: Arm, run: Path, log: Callable[[str], None]) -> dict:
    """Train (unless already done) and evaluate one arm; its ledger (own clock), also saved in the run."""
    from core.training.evaluate import evaluate
    from core.training.train import TrainConfig, run_training

    import torch

    ledger_file = run / LEDGER
    if _finished(run) and ledger_file.is_file():
        log(f"reusing {run.name}")
        return json.loads(ledger_file.read_text())
    if config.report_only:
        raise GistlabError("not finished yet (report only: nothing trained)")
    threads = run_threads(config.threads)
    torch.set_num_threads(threads)
    cpu, load = time.process_time(), os.getloadavg()[0]
    if _finished(run):
        log(f"reusing the trained {run.name}")
    else:
        log(f"training {run.name} ({config.steps} steps)")
        run_training(TrainConfig(**config.train_settings(arm), out=str(run)), overwrite=True)
        if not _finished(run):  # stopped or interrupted (Ctrl-C, SIGTERM): the whole experiment ends here
            raise KeyboardInterrupt(f"{run.name} did not complete: the experiment stops; rerun to resume")
    tick = time.perf_counter()
    evaluate(str(run), config.tasks, log=log)
    ledger = {"train_s": _train_seconds(run), "eval_s": time.perf_counter() - tick, "threads": threads,
              "load": [load, os.getloadavg()[0]],
              "cpu_s": time.process_time() - cpu, "finished": datetime.now().astimezone().isoformat(timespec="seconds")}
    ledger_file.write_text(json.dumps(ledger, indent=2))
    return ledger


def collect(runs: dict[Arm, Path], base_files: dict[str, list[Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy scores (student, arm, seed, task, task_type, metric, split, main_score) and per-run masking."""
    from core.training.results import results_table
    from core.training.runs import read_metrics

    frames = [results_table(files).assign(student=student, arm="base", seed=-1)
              for student, files in base_files.items() if files]
    frames += [results_table(run).assign(student=arm.student, arm=arm.guide, seed=arm.seed)
               for arm, run in runs.items()]
    columns = ["student", "arm", "seed", "task", "task_type", "metric", "split", "main_score"]
    scores = pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)
    masking = pd.DataFrame([{"student": arm.student, "arm": arm.guide, "seed": arm.seed,
                             **run_masking(read_metrics(run))}
                            for arm, run in runs.items() if arm.guide != MNRL], columns=MASKING_COLUMNS)
    return scores, masking


def run_experiment(
    config: ExperimentConfig,
    *,
    report: Path | None = None,
    demo_dir: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ExperimentResult:
    """Train and evaluate every arm of every case and seed (reusing finished runs), reporting as runs finish."""
    from core.training.evaluate import evaluate
    from core.training.results import write_section
    from core.training.runs import runs_root

    start = time.perf_counter()
    root = Path(config.out) if config.out else None
    run_root = root / "runs" if root else runs_root()
    base_files = {student: evaluate(student, config.tasks, out=root, log=log).result_files
                  for student, _ in config.cases()}
    result = ExperimentResult({}, pd.DataFrame(), pd.DataFrame(columns=MASKING_COLUMNS), base_files)

    def refresh() -> None:
        result.scores, result.masking = collect(result.runs, base_files)
        result.seconds = time.perf_counter() - start
        if report is not None:
            write_section(report, SECTION, render_report(config, result, config.command(report, demo_dir)))

    plan = config.plan()
    for k, arm in enumerate(plan):
        run = run_root / config.run_name(arm)
        try:
            result.ledgers[arm] = _run_arm(config, arm, run, log)
        except Exception as exc:  # one arm's failure (a missing extra, a bug) must not end the ladder
            result.skipped[arm] = first_line(exc) if isinstance(exc, GistlabError) else f"failed: {first_line(exc)}"
            log(f"skipped {run.name}: {result.skipped[arm]}")
        else:
            result.runs[arm] = run
            refresh()
        seed_done = k + 1 == len(plan) or plan[k + 1].seed != arm.seed
        if seed_done and demo_dir is not None:  # the demo follows the experiment seed by seed
            copy_demo(result, config, Path(demo_dir))
    refresh()
    return result
