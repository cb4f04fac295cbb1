"""The Demo's story from the experiment summary (``experiment.json``): the verdict, the best arm at each
false-negative rate, whether a cheaper guide did as well, the verdict arm's mask quality, and the two
masked pairs the story shows (a caught false negative beside a cost).

Pure functions over the summary as plain data (pandas, no torch), so the page stays thin and loads no
model. Gains are *points*: the paired difference (arm − MNRL, same rate, same seed, so the same
batches) of the bundled benchmark's mean over tasks, x100, with the std of the per-seed differences as
its spread and the seeds where the arm was higher. "Beat MNRL" means higher in every seed, from two
seeds up; the verdict says plainly when nothing did.

    summary = read_summary(demo_dir / "experiment.json")
    gains = paired_gains(summary)
    verdict(summary, gains)     # one sentence, Markdown
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from core.analysis.experiment_summary import ExperimentSummary
from core.method.explain import relation
from core.training.results import MEAN_TASK, MNRL, arm_label, paired_deltas

"""What every run of the summary needs for the story (summary_schema.md, version 1)."""
POINTS = 100
"""Scores are 0..1; the story speaks in points (x100), as MTEB tables do."""
STRONG_GUIDE = "bundled:mpnet-base"
CHEAPER_GUIDES = {"bundled:minilm-l6": "a 22M-parameter guide instead of mpnet-base's 110M",
                  "self": "no second model at all: the student's own frozen copy"}
"""The guides that cost less than :data:`STRONG_GUIDE`, each with what it saves."""


@dataclass(frozen=True)
class Published:
    """A figure measured elsewhere, at scale, shown beside the lab's own small result (never as the lab's)."""

    benchmark: str
    gist_model: str
    gist_score: float
    base_model: str
    base_score: float
    source: str

    def sentence(self) -> str:
        return (f"Published, not measured here: on {self.benchmark}, {self.gist_model} scores "
                f"{self.gist_score:.2f} against {self.base_model}'s {self.base_score:.2f} "
                f"({self.gist_score - self.base_score:+.2f} points).")


PUBLISHED = Published(
    benchmark="MTEB STSBenchmark (test, cosine Spearman x100)",
    gist_model="GIST-all-MiniLM-L6-v2", gist_score=84.40, base_model="all-MiniLM-L6-v2", base_score=82.03,
    source="Source: the MTEB results published with the models (avsolatorio/GIST-all-MiniLM-L6-v2's model card; "
           "sentence-transformers/all-MiniLM-L6-v2 in the MTEB results), trained at scale on MEDI and MTEB "
           "classification data with the UAE-Large-V1 guide (Solatorio, 2024, arXiv:2402.16829)")


def read_summary(path: Path | str) -> dict:
    """The experiment summary at ``path`` (:class:`core.analysis.experiment_summary.ExperimentSummary`,
    the one reader) as plain data, which the functions below take. Raises GistlabError with what to do
    when the file is missing or garbled."""
    return asdict(ExperimentSummary.read(path))


def student_name(summary: dict) -> str:
    return str(summary.get("setup", {}).get("student", "the student")).removeprefix("bundled:")


def labels(summary: dict) -> dict[str, str]:
    """Each arm's name for people, as the summary gives it (else core.training.results.arm_label)."""
    return {run["arm"]: run.get("label") or arm_label(run["arm"]) for run in summary["runs"]}


def score_table(summary: dict) -> pd.DataFrame:
    """One row per (rate, arm, seed, task): rate, arm, seed, task, main_score."""
    rows = [(run["rate"], run["arm"], run["seed"], task, score)
            for run in summary["runs"] for task, score in (run.get("scores") or {}).items()]
    return pd.DataFrame(rows, columns=["rate", "arm", "seed", "task", "main_score"])


def paired_gains(summary: dict) -> pd.DataFrame:
    """Each arm minus MNRL at the same rate and seed, per (rate, arm, task) and the mean over tasks:
    core.training.results.paired_deltas' columns (delta, spread, seeds, wins) plus ``label``."""
    table = score_table(summary)
    if table.empty or not (table["arm"] == MNRL).any():
        return pd.DataFrame(columns=["rate", "arm", "task", "delta", "spread", "seeds", "wins", "label"])
    gains = paired_deltas(table, ["rate"])
    return gains.assign(label=gains["arm"].map(labels(summary)))


@dataclass(frozen=True)
class Gain:
    """One arm against MNRL at one rate on the mean over tasks."""

    rate: float
    arm: str
    label: str
    delta: float
    spread: float  # NaN with one seed
    seeds: int
    wins: int

    @property
    def clear(self) -> bool:
        """Higher than MNRL in every seed, from two seeds up."""
        return self.seeds >= 2 and self.wins == self.seeds and self.delta > 0

    def points(self) -> str:
        """``+1.14 ± 0.09 points`` (``+1.14 points, 1 seed: no spread`` for one seed)."""
        if self.seeds < 2 or math.isnan(self.spread):
            return f"{self.delta * POINTS:+.2f} points (1 seed: no spread)"
        return f"{self.delta * POINTS:+.2f} ± {self.spread * POINTS:.2f} points"

    def seeds_higher(self) -> str:
        return f"higher in {self.wins} of {self.seeds} seed{'s' if self.seeds != 1 else ''}"


def rate_text(rate: float) -> str:
    """0.1 -> ``10%``, 0.05 -> ``5%``, 0.125 -> ``12.5%``."""
    return f"{round(rate * 100, 6):g}%"


def mean_gains(gains: pd.DataFrame) -> list[Gain]:
    """Every arm's :class:`Gain` on the mean over tasks, by rate then best first."""
    rows = gains[gains["task"] == MEAN_TASK].sort_values(["rate", "delta"], ascending=[True, False])
    return [Gain(float(r.rate), r.arm, r.label, float(r.delta), float(r.spread), int(r.seeds), int(r.wins))
            for r in rows.itertuples()]


def best_per_rate(gains: pd.DataFrame) -> list[Gain]:
    """The arm with the largest mean gain at each false-negative rate, lowest rate first."""
    best: dict[float, Gain] = {}
    for gain in mean_gains(gains):
        best.setdefault(gain.rate, gain)
    return list(best.values())


def headline_gain(gains: pd.DataFrame) -> Gain | None:
    """The verdict's arm and rate: the largest clear gain (higher in every seed), else the largest gain."""
    every = mean_gains(gains)
    clear = [g for g in every if g.clear]
    return max(clear or every, key=lambda g: g.delta, default=None)


def task_count(summary: dict) -> int:
    return len(summary.get("setup", {}).get("tasks") or score_table(summary)["task"].unique())


def verdict(summary: dict, gains: pd.DataFrame) -> str:
    """The story's first line (Markdown): which student, which arm, the gain in points with its spread,
    in how many seeds, at what false-negative rate; plainly "nothing beat MNRL" when nothing did."""
    best = headline_gain(gains)
    student = student_name(summary)
    benchmark = f"the bundled benchmark's mean over {task_count(summary)} tasks"
    if best is None:
        return "**No verdict yet:** the summary holds no MNRL run to compare the guided runs with."
    where = f"at a false-negative rate of {rate_text(best.rate)}"
    if best.clear:
        return (f"**{student} trained with {best.label} scored {best.points()} above MNRL** on {benchmark}, "
                f"{best.seeds_higher()}, {where}.")
    if best.delta > 0:
        return (f"**No arm beat MNRL in every seed.** The closest: {best.label} {where}, {best.points()} on "
                f"{benchmark}, {best.seeds_higher()} (student {student}).")
    return (f"**Nothing beat MNRL here.** The best arm, {best.label} {where}, scored {best.points()} against "
            f"MNRL on {benchmark}, {best.seeds_higher()} (student {student}).")


def per_rate_line(gains: pd.DataFrame) -> str:
    """The best arm at each false-negative rate, so the verdict's choice of rate can be checked."""
    return "Best arm at each false-negative rate: " + " · ".join(
        f"{rate_text(g.rate)}: {g.label} {g.points()}, {g.seeds_higher()}" for g in best_per_rate(gains))


def cheaper_guide(gains: pd.DataFrame, rate: float) -> str | None:
    """A sentence when a cheaper guide (minilm-l6, self) did as well as mpnet-base at ``rate`` (its gain
    within mpnet-base's spread) or better (above it); None otherwise or without a spread."""
    at = {g.arm: g for g in mean_gains(gains) if g.rate == rate}
    strong = at.get(STRONG_GUIDE)
    if strong is None or strong.seeds < 2 or math.isnan(strong.spread):
        return None
    for arm, saving in CHEAPER_GUIDES.items():
        cheap = at.get(arm)
        if cheap is None:
            continue
        if abs(cheap.delta - strong.delta) <= strong.spread:
            how = "did as well"
        elif cheap.delta > strong.delta:
            how = "did better"
        else:
            continue
        return (f"A cheaper guide {how}: at {rate_text(rate)}, {cheap.label} gained {cheap.points()}, "
                f"{'within' if how == 'did as well' else 'above'} the spread of {strong.label}'s "
                f"{strong.points()}, with {saving}.")
    return None


def quality_line(summary: dict, rate: float, arm: str) -> str | None:
    """The arm's mask at ``rate`` against the ground truth, pooled over its seeds' runs: false negatives
    caught of present (recall), and the three shares of the masked candidates. None where it masks nothing."""
    runs = [r for r in summary["runs"] if r["arm"] == arm and r["rate"] == rate and r.get("quality")]
    if not runs:
        return None
    q = pd.DataFrame([r["quality"] for r in runs])
    total = lambda column: int(q[column].fillna(0).sum()) if column in q else None  # noqa: E731
    present, caught = total("fn_present"), total("fn_caught")
    steps = int(q["steps"].max()) if "steps" in q and q["steps"].notna().any() else None
    over = f"{len(runs)} seed{'s' if len(runs) != 1 else ''}" + (f" x {steps} steps" if steps else "")
    found = ("did not record its false negatives" if present is None or caught is None else
             f"caught {caught:,} of the {present:,} false negatives present (recall {caught / present:.0%})"
             if present else "met no false negative (recall undefined)")
    label = labels(summary).get(arm, arm)

    def share(column: str) -> str:
        return f"{q[column].mean():.0%}" if column in q and q[column].notna().any() else "n/a"

    return (f"{label}'s mask at {rate_text(rate)}, over {over}: it {found}; it masked {share('masked_share')} of "
            f"the in-batch candidates, of which {share('fn_precision')} were false negatives (precision: the "
            f"catches), {share('related_share')} related hard negatives and {share('unrelated_share')} "
            "unrelated (the costs); shares are means over seeds.")


def story_pairs(pairs: pd.DataFrame) -> tuple[pd.Series | None, pd.Series | None]:
    """From a masked-pairs table (core.analysis.inspect, with ``relation``): the clearest caught false
    negative (a different text, the guide's highest score) and the clearest cost (a related hard
    negative, else an unrelated candidate), each None where the batch has none."""
    if pairs is None or "relation" not in pairs or pairs.empty:
        return None, None
    names = pairs.apply(relation, axis=1)
    distinct = ~pairs.get("identical_text", pd.Series(False, index=pairs.index)).fillna(False).astype(bool)
    ranked = pairs.assign(_name=names)[distinct].sort_values("guide_score", ascending=False, kind="stable")

    def first(kinds: tuple[str, ...]) -> pd.Series | None:
        hits = ranked[ranked["_name"].isin(kinds)]
        return hits.iloc[0].drop("_name") if len(hits) else None

    cost = first(("same-word", "same-category"))
    return first(("false-negative",)), cost if cost is not None else first(("unrelated",))
