"""The report's false-negative-rate sections: when does the guide matter, and which recipe for which data.

Drawn from :mod:`core.analysis.experiment_summary` (the numbers ``experiment.json`` holds, so the
report, the Results page's figure and the Demo agree): per rate and arm the paired difference against
MNRL on the mean over tasks with its std over seeds and sign count; per masking arm and rate what the
mask removed against the ground truth; and plain sentences from those numbers with the ladder's
helps / hurts / noise rule (core.analysis.experiment_report.verdicts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from core.analysis.experiment_plan import ExperimentResult
from core.training.results import MNRL
from core.analysis.experiment_summary import (
    ExperimentSummary, cost_frame, curve, quality_frame, score_frame, summarise,
)

if TYPE_CHECKING:
    from core.analysis.experiment import ExperimentConfig

MEANING = {"helps": "beats MNRL", "hurts": "trails MNRL", "noise": "is within the seed noise of MNRL",
           "1 seed": "cannot be judged yet (1 seed, no spread)"}


def _pct(value) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.1%}"


def judged_curve(summary: ExperimentSummary) -> pd.DataFrame:
    """:func:`core.analysis.experiment_summary.curve` with the ladder's verdict per (rate, arm)."""
    from core.analysis.experiment_report import verdicts

    return verdicts(curve(summary))


def curve_markdown(judged: pd.DataFrame, scores: pd.DataFrame, rates: list[float]) -> str:
    """Per arm (rows, MNRL first) and rate (columns): the arm's mean over tasks (± std over seeds), then its
    difference against MNRL ± std over seeds (higher in k/n)."""
    from core.analysis.experiment_report import markdown_table

    def score(row) -> str:
        return f"{row['mean']:.4f}" + ("" if row["seeds"] < 2 or pd.isna(row["std"]) else f" ± {row['std']:.4f}")

    def delta(row) -> str:
        spread = "" if row["seeds"] < 2 or pd.isna(row["spread"]) else f" ± {row['spread']:.4f}"
        return f"{row['delta']:+.4f}{spread} (higher in {int(row['wins'])}/{int(row['seeds'])})"

    wide = scores.set_index(["arm", "rate"])
    paired = judged.set_index(["arm", "rate"])
    rows = []
    arms = [(MNRL, "MNRL (no guide)")] if (scores["arm"] == MNRL).any() else []
    arms += list(judged[["arm", "label"]].drop_duplicates().itertuples(index=False, name=None))
    for arm, label in arms:
        cells = []
        for r in rates:
            text = score(wide.loc[(arm, r)]) if (arm, r) in wide.index else "n/a"
            if (arm, r) in paired.index:
                text += f"; {delta(paired.loc[(arm, r)])}"
            cells.append(text)
        rows.append([label, *cells])
    return markdown_table(rows, ["arm", *(f"rate {r:g}: score; arm − MNRL" for r in rates)])


def quality_markdown(quality: pd.DataFrame) -> str:
    """Per masking arm and rate: masked share, FN precision and recall, related and unrelated shares, denominators."""
    from core.analysis.experiment_report import markdown_table

    rows = [[row["label"], f"{row['rate']:g}", _pct(row["masked_share"]), _pct(row["fn_precision"]),
             _pct(row["fn_recall"]), _pct(row["related_share"]), _pct(row["unrelated_share"]),
             f"{row['fn_present'] / max(row['steps'], 1):.1f}", f"{int(row['fn_caught']):,} / {int(row['fn_present']):,}",
             str(int(row["seeds"]))]
            for _, row in quality.iterrows()]
    return markdown_table(rows, ["arm", "rate", "candidates masked", "FN precision", "FN recall", "related share",
                                 "unrelated share", "FN present per step", "FN caught / present", "seeds"])


def mining_text(mining: dict | None) -> str:
    """What the mined arm's guide filter removed, from the mining summary (empty without a mined arm)."""
    if not mining:
        return ""
    settings = mining.get("settings") or {}
    shares = mining.get("false_negative_share") or {}
    truth = (f" By the ground truth, {_pct(shares.get('removed'))} of the removed candidates were false negatives "
             f"(right answers the filter spared the student from pushing away) and {_pct(shares.get('kept'))} of the "
             "kept ones (false negatives left in as negatives)." if shares else "")
    return (f"The mined arm's negatives: `{mining.get('retriever')}` retrieved the top {settings.get('candidates')} "
            f"other positives for each of the {mining.get('rows_in'):,} rows the experiment trains on; the guide "
            f"`{mining.get('guide')}` removed {mining.get('removed_by_guide'):,} of {mining.get('candidates_considered'):,} "
            f"candidates ({_pct(mining.get('removed_share'))}: those scoring at least "
            f"{settings.get('guide_share', 0):.0%} of the row's positive); the first {settings.get('num_negatives')} "
            f"survivors became its negatives ({mining.get('rows_padded') or 0} rows had fewer and kept the data's "
            f"own negative in the empty slots).{truth}")


def cost_markdown(cost: pd.DataFrame, steps: int) -> str:
    """Per arm: training seconds per step and the ratio to MNRL's."""
    from core.analysis.experiment_report import markdown_table

    rows = [[row["label"], str(int(row["runs"])), f"{row['per_step']:.2f}",
             "n/a" if pd.isna(row["ratio"]) else f"{row['ratio']:.2f}×"] for _, row in cost.iterrows()]
    return markdown_table(rows, ["arm", "runs", f"training s per step (mean over runs of {steps} steps)",
                                 "against MNRL"])


def base_text(summary: ExperimentSummary) -> str:
    """The base student's score, the line every arm's score moves from."""
    base = summary.base.get("mean")
    return "" if base is None else f"The base student (before fine-tuning) scores {base:.4f} on the same mean over tasks."


def tie_note(win: pd.Series, helps: pd.DataFrame) -> str:
    """Whether the highest helping arm really leads: the helping arms whose difference against MNRL is
    within the larger of the two seed spreads of the highest one's tie with it at this scale."""
    tied = [r for _, r in helps.iterrows() if r["arm"] != win["arm"]
            and win["delta"] - r["delta"] <= max(win["spread"], r["spread"])]
    if not tied:
        return " It leads every other arm by more than the seed spread."
    names = ", ".join(f"{r['label']} ({win['delta'] - r['delta']:.4f} behind)" for r in tied)
    return f" Within the seed spread of it, so tied at this scale: {names}."


def recipe_sentences(judged: pd.DataFrame, rates: list[float]) -> str:
    """Which arm wins at each rate and by how much, in words; plainly when nothing beats MNRL."""
    if judged.empty:
        return "- No arm has a finished MNRL partner at any rate yet: nothing to compare."
    lines = []
    for rate in rates:
        at = judged[judged["rate"] == rate]
        if at.empty:
            lines.append(f"- Rate {rate:g}: no pair finished yet.")
            continue
        best = at.sort_values("delta", ascending=False).iloc[0]
        seeds = int(at["seeds"].max())
        helps = at[at["verdict"] == "helps"]
        hurts = at[at["verdict"] == "hurts"]
        spread = "" if pd.isna(best["spread"]) else f" ± {best['spread']:.4f}"
        if seeds < 2:
            lines.append(f"- Rate {rate:g} (1 seed: no verdict yet): the highest is {best['label']} at "
                         f"{best['delta']:+.4f} against MNRL.")
            continue
        if helps.empty:
            line = (f"- Rate {rate:g}: nothing beats MNRL beyond the seed noise; the highest, {best['label']}, is "
                    f"{best['delta']:+.4f}{spread} (higher in {int(best['wins'])}/{int(best['seeds'])}).")
        else:
            ranked = helps.sort_values("delta", ascending=False)
            win = ranked.iloc[0]
            others = ", ".join(f"{r['label']} ({r['delta']:+.4f})" for _, r in ranked.iloc[1:].iterrows())
            line = (f"- Rate {rate:g}: {win['label']} is highest, {win['delta']:+.4f} ± {win['spread']:.4f} over MNRL "
                    f"(higher in {int(win['wins'])}/{int(win['seeds'])})" + (f"; also helping: {others}" if others else "")
                    + "." + tie_note(win, ranked))
        if len(hurts):
            line += " Trailing MNRL: " + ", ".join(f"{r['label']} ({r['delta']:+.4f})" for _, r in hurts.iterrows()) + "."
        lines.append(line)
    if len(rates) > 1:
        trend = []
        for (_arm, label), part in judged.groupby(["arm", "label"], sort=False):
            at = part.set_index("rate")["delta"]
            trend.append(f"{label} " + " → ".join(f"{at[r]:+.4f}" for r in rates if r in at.index))
        lines.append(f"- Across the rates ({' → '.join(f'{r:g}' for r in rates)}), each arm's difference against "
                     "MNRL: " + "; ".join(trend) + ".")
    lines.append("- Rule (the ladder's): an arm *helps* (or *hurts*) at a rate when it beats (or trails) MNRL in "
                 "every seed and the mean difference exceeds the std of the per-seed differences; else noise.")
    return "\n".join(lines)


def curve_sections(config: ExperimentConfig, result: ExperimentResult) -> str:
    """The two report sections (Markdown), from the summary of the main student's runs."""
    summary = summarise(config, result)
    rates = [float(r) for r in dict.fromkeys(config.rates)]
    judged = judged_curve(summary)
    quality = quality_frame(summary)
    seeds = ", ".join(map(str, config.seeds))
    table = curve_markdown(judged, score_frame(summary), rates) if len(judged) else "No arm has a finished MNRL partner yet."
    masks = quality_markdown(quality) if len(quality) else "No masking run with ground truth finished yet."
    cost = cost_frame(summary)
    costs = cost_markdown(cost, config.steps) if len(cost) else "No run finished yet."
    mined = mining_text(summary.setup.get("mining"))
    repeats = ("\n\nOn the bundled definition tasks a synset has one definition and at most 3 rows, so most added "
               "false negatives repeat a text (the definition as positive, or a row's own anchor), which the "
               "identical-text rule masks whatever the guide; only the other examples or word lists of the synset "
               "are distinct texts a guide must judge; `category_triplet` adds distinct texts of a category (per task and "
               "rate, identical and distinct counts in assets/README.md, `python scripts/fn_rates.py`). So on the "
               "definition tasks the rate "
               "mostly tests masking against no masking, less one guide against another."
               if config.data == "bundled" and any(rates) else "")
    return f"""## When does the guide matter: the false-negative-rate curve

Student `{config.student}`, rates {', '.join(f'{r:g}' for r in rates)} (core/corpus/false_negatives.py: each batch
of {config.batch_size} is rebuilt so a row has about rate × {config.batch_size} other rows of its meaning; rate 0 is
the data as is), seeds {seeds}; every arm at a (rate, seed) trains on the same batches.

Score = the run's main score averaged over the tasks, then over seeds (± sample std over seeds). Paired
difference = the arm's score minus MNRL's, same rate and seed, then averaged over seeds; ± the sample std
of the per-seed differences; "higher in k/n": seeds where the arm scored above MNRL. The figure on the Results page draws this table (experiment.json).{repeats}

{table}

{base_text(summary)}

What each masking arm removed (pooled over every step of a run, then averaged over seeds; the counts
summed over seeds). A false negative (FN) is an in-batch candidate that is a right answer for the row
by its task's relation (core/method/groundtruth.py). FN precision = FN masked / masked; FN recall = FN masked / FN present;
related share = masked candidates that are related hard negatives (same word or category where that is
not the task's relation) / masked; unrelated share = the rest of the masked / masked; candidates masked
= masked / in-batch candidates (mean over steps); FN present per step: the recall's denominator per step.

{masks}

{mined}

What each arm costs: training wall time per step from the runs' own clocks (model, loss and guide
forward passes; evaluation not included), on the cores the experiment shared with other work, so only
large ratios mean anything.

{costs}

## Which recipe for which data

{recipe_sentences(judged, rates)}"""
