"""The guide ladder's report: pure summaries of the tidy scores and masking figures, rendered as the
``ladder`` section of a Markdown file (core.training.results.write_section).

Per case, each arm's score ± std over seeds per task and mean, the paired difference of each guide
against MNRL with its sign count, masking precision against the WordNet ground truth, weak-positive
rows and the masked fraction per guide, the time, and a reading. What the setup states (data, steps,
margin, strategy, temperature, the guides and how the student was derived) is read from the
experiment's config and the training defaults its runs use, never written down a second time.
"""

from __future__ import annotations

import os
import platform
from datetime import datetime
from typing import TYPE_CHECKING, Callable

import pandas as pd

from core.analysis.mining import MiningSettings
from core.analysis.experiment_plan import EXPERIMENT_RECIPES, GIST_HARD, HARD_GUIDE, MINED, Arm, ExperimentResult
from core.analysis.experiment_plan import experiment_label as arm_label
from core.guides.models import L3_LAYERS, MPNET, SELF
from core.training.results import MEAN_TASK, MNRL, arm_summary, paired_deltas

if TYPE_CHECKING:
    from core.analysis.experiment import ExperimentConfig
    from core.training.train import TrainConfig

L3, L6 = "bundled:minilm-l3", "bundled:minilm-l6"
GUIDE_NOTES = {SELF: "a frozen copy of the student before training", L6: "all-MiniLM-L6-v2",
               MPNET: "all-mpnet-base-v2 (110 M parameters, another tokenizer)"}


def run_masking(metrics: pd.DataFrame, quality: dict | None) -> dict:
    """One guided run's masking over its steps: masked fraction, precision, recall, weak-positive rows per step.

    Precision (false negatives masked / masked) and recall (false negatives masked / present), by the
    task's relation of core.method.groundtruth, are pooled over the run's steps, from its ``quality``
    (core.analysis.experiment.run_quality_summary: the same figures the curve section reports; NaN
    where it is None, data without ground truth, or a denominator is 0). The masked fraction and weak
    rows (rows with most of their candidates masked) are means of the per-step metrics core.training.train records.
    """
    def mean(column: str) -> float:
        if column not in metrics:
            return float("nan")
        return float(pd.to_numeric(metrics[column], errors="coerce").mean())

    def pooled(figure: str) -> float:
        value = (quality or {}).get(figure)
        return float("nan") if value is None else float(value)

    return {"steps": len(metrics), "masked": mean("masked_fraction"), "fn_precision": pooled("fn_precision"),
            "fn_recall": pooled("fn_recall"), "weak_rows": mean("weak_rows")}


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


def markdown_table(rows: list[list[str]], headers: list[str]) -> str:
    """A Markdown table of ready-made text cells (numbers already formatted: none parsed again)."""
    return pd.DataFrame(rows, columns=headers).to_markdown(index=False, disable_numparse=True)


def _task_table(frame: pd.DataFrame, arms: list[str], headers: list[str], cell: Callable[[str, pd.Series], str],
                types: dict[str, str] | None = None) -> str:
    """A Markdown table: one line per task (sorted, the mean over tasks last), one column per arm."""
    wide = frame.set_index(["task", "arm"])
    tasks = [*sorted(t for t in frame["task"].unique() if t != MEAN_TASK), MEAN_TASK]
    rows = [[f"{task} ({types[task]})" if types and task in types else task,
             *(cell(arm, wide.loc[(task, arm)]) if (task, arm) in wide.index else "n/a" for arm in arms)]
            for task in tasks]
    return markdown_table(rows, headers)


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
    def cell(row: pd.Series, figure: str, percent: bool) -> str:
        mean, std = row[f"{figure}_mean"], row[f"{figure}_std"]
        if pd.isna(mean):
            return "no ground truth" if figure == "fn_precision" else "n/a"
        text = f"{mean:.1%}" if percent else f"{mean:.2f}"
        if row["seeds"] > 1 and pd.notna(std):
            text += f" ± {std:.1%}" if percent else f" ± {std:.2f}"
        return text

    rows = [[arm_label(row["arm"]), cell(row, "masked", True), cell(row, "fn_precision", True),
             cell(row, "fn_recall", True), cell(row, "weak_rows", False), str(int(row["seeds"]))]
            for _, row in summary.iterrows()]
    return markdown_table(rows, ["guide", "candidates masked", "precision (false negatives / masked)",
                                 "recall (caught / present)", "weak-positive rows per step", "seeds"])


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


def run_settings(config: ExperimentConfig) -> TrainConfig:
    """The training settings the experiment's guided runs use (its own fields, the rest TrainConfig's
    defaults): where the report reads the margin, its strategy and the temperature it states."""
    from core.training.train import TrainConfig

    guided = [arm for arm in config.plan() if arm.loss == "gist"]
    arm = guided[0] if guided else Arm(config.student, MNRL, config.seeds[0] if config.seeds else 0)
    return TrainConfig(**config.train_settings(arm))


_MINING = MiningSettings()  # what the mined arm mines with (core.analysis.experiment_mined)
RECIPE_NOTES = {
    "self-judge": "the student masks, with its own detached cosines, candidates scoring above its row's positive "
                  "+ {s.judge_margin:g} (Qwen3-Embedding's rule; no guide).",
    "mnrl-hard": "MNRL with the library's hardness weighting ({s.hardness_mode}, strength {s.hardness_strength:g}).",
    GIST_HARD: f"GIST with the guide `{HARD_GUIDE}`, then the library's hardness weighting of the candidates left "
               "({s.hardness_mode}, strength {s.hardness_strength:g}).",
    MINED: f"MNRL whose negative column is replaced by {_MINING.num_negatives} hard negatives mined once per "
           f"experiment: the student retrieves {_MINING.candidates} candidates per row, the guide `{HARD_GUIDE}` "
           f"removes any scoring at least {_MINING.guide_share:.0%} of the row's positive (core/analysis/mining.py's "
           "defaults); no in-batch mask.",
}


def _guide_note(guide: str, student: str) -> str:
    """``spec`` = what it is (when known), and how the student derives from it."""
    note = GUIDE_NOTES.get(guide)
    if guide == L6 and student == L3:
        note += (f" (the {len(L3_LAYERS)}-layer student is cut from it: layers "
                 f"{', '.join(map(str, L3_LAYERS))})")
    return f"`{guide}` = {note}" if note else f"`{guide}`"


def arms_text(config: ExperimentConfig, settings: TrainConfig) -> str:
    """The setup's line on the arms: MNRL's and GIST's shared settings, and each guide in words."""
    margin = settings.masking
    rule = [f"margin {margin.margin:g}, {margin.margin_strategy}"]
    rule += [] if margin.contrast_anchors else ["no a-a block"]
    rule += [] if margin.contrast_positives else ["no p-p block"]
    rule += [] if margin.positive_floor is None else [f"positive floor {margin.positive_floor:g}"]
    guides = [g for _, case in config.cases() for g in case if g != MNRL and g not in EXPERIMENT_RECIPES]
    notes = ",\n  ".join(_guide_note(g, config.student) for g in dict.fromkeys(guides))
    recipes = [g for _, case in config.cases() for g in case if g in EXPERIMENT_RECIPES]
    extra = "".join(f"\n  `{r}` = {RECIPE_NOTES[r].format(s=settings)}" for r in dict.fromkeys(recipes))
    return (f"- Arms: MNRL (`{MNRL}`: in-batch softmax, same blocks and temperature {settings.temperature:g} "
            f"as GIST, no mask) and GIST\n  with each guide ({', '.join(rule)}): {notes}.{extra}")


def evaluation_text(config: ExperimentConfig) -> str:
    """The setup's line on the evaluation."""
    tasks = "the bundled WordNet mini benchmark" if config.tasks == "bundled" else "the tasks"
    return (f"- Evaluation: {tasks} (`--tasks {config.tasks}`), mteb's own evaluators\n"
            "  and main scores; base = the student before fine-tuning. Std is the sample std over seeds.")


def caveats(config: ExperimentConfig) -> str:
    """What the numbers cannot say, for this config: its scale, a guide that is the student's parent,
    evaluation categories shared with the training data."""
    wordnet = config.data == "bundled"
    lines = [f"- Toy scale ({config.steps} steps of {config.batch_size}"
             f"{', WordNet definitions only' if wordnet else ''}): this shows the\n"
             "  mechanism and its direction, not the paper's effect sizes."]
    if config.student == L3 and L6 in config.guides:
        lines.append(f"- The {len(L3_LAYERS)}-layer student is derived from all-MiniLM-L6-v2, so the `minilm-l6` "
                     "guide is the student's\n  own parent: it is not an independent judge.")
    if wordnet and config.tasks == "bundled":
        lines.append("- WordNetClassification and WordNetClustering group definitions by lexicographer category, "
                     "the same\n  categories the training triplets use (on other synsets): the same kind of overlap "
                     "the paper's MTEB\n  classification training sets have with MTEB classification.")
    return "\n".join(lines)


def render_report(config: ExperimentConfig, result: ExperimentResult, command: str) -> str:
    """The ladder section: setup, command, time, per-case tables, masking, reading, the false-negative-rate
    curve and which recipe for which data (core.analysis.experiment_curve), caveats."""
    from core.analysis.experiment_curve import curve_sections

    types = result.scores.drop_duplicates("task").set_index("task")["task_type"].to_dict()
    ladder_rate = min(config.rates)  # the ladder's tables: the lowest rate (0: the data as is); the curve has the rest
    scores = result.scores
    if len(scores):
        scores = scores[(scores["arm"] == "base") | (scores["rate"] == ladder_rate)].drop(columns="rate")
    masking = result.masking
    masking = masking_summary(masking[masking["rate"] == ladder_rate].drop(columns="rate")
                              if len(masking) else masking.drop(columns="rate"))
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
        if len(config.rates) > 1 or ladder_rate:
            title += f" at false-negative rate {ladder_rate:g}"
        own_masking = masking[masking["student"] == student]
        sections.append(f"""## Case {number}: {title} (student `{student}`)

### Main score per task (mean ± std over seeds)

{scores_markdown(summary, arms, types)}

### Paired difference against MNRL (same seed, same batches; ± std over seeds; seeds where the guide scored higher)

{deltas_markdown(deltas, [g for g in guided if g in set(deltas['arm'])]) if len(deltas) else 'No pair finished yet.'}

### What each guide masked (precision and recall pooled over every step of a run, the rest mean over steps; then over seeds)

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
  For a (false-negative rate, seed) every arm trains on the same batches in the same order: arms differ in
  the loss alone (its mask, weighting or negatives).
{arms_text(config, run_settings(config))}
{evaluation_text(config)}
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

{curve_sections(config, result)}

## Caveats

{caveats(config)}
"""
