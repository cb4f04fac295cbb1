"""The experiment's results as typed data: ``experiment.json``, read by the Results and Demo pages.

Written by core.analysis.experiment after every run (in the experiment's folder, and copied into
``--demo-dir``): the setup, the base student's scores, and one record per finished run of the main
student (rate, arm, seed, scores per task and their mean, and for masking arms the mask's quality
against the ground truth: core.analysis.experiment.run_quality_summary). Paired differences are
derived here, by the reader's side: an arm minus MNRL (``none``) at the same rate and seed, on the
mean over tasks (:func:`paired_runs`, :func:`curve`), so the report and the figure draw the same numbers.

    summary = ExperimentSummary.from_json(Path("assets/demo/experiment.json").read_text())
    curve(summary)   # rate, arm, label, delta, spread, seeds, wins
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.analysis.experiment_plan import ExperimentResult, experiment_label
from core.errors import GistlabError
from core.training.results import MNRL

if TYPE_CHECKING:
    from core.analysis.experiment import ExperimentConfig

VERSION = 1
CURVE_COLUMNS = ["rate", "arm", "label", "delta", "spread", "seeds", "wins"]
MINING_KEYS = ("retriever", "guide", "settings", "rows_in", "rows_out", "rows_padded", "candidates_considered",
               "removed_by_guide", "removed_share", "false_negative_share")


@dataclass
class RunRecord:
    """One finished run: its rate, arm, seed, main score per task and their mean, and its mask's quality."""

    rate: float
    arm: str
    label: str
    loss: str
    seed: int
    scores: dict[str, float]
    mean: float
    quality: dict | None = None
    train_s: float | None = None  # training wall time (the run's status, started to ended)


@dataclass
class ExperimentSummary:
    """``experiment.json`` (module docstring); ``setup`` and ``base`` as plain dicts, ``runs`` typed."""

    setup: dict
    base: dict
    runs: list[RunRecord] = field(default_factory=list)
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "setup": self.setup, "base": self.base,
                           "runs": [asdict(r) for r in self.runs]}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ExperimentSummary:
        """Parse ``experiment.json``; one GistlabError line when it is not one."""
        try:
            data = json.loads(text)
            runs = [RunRecord(**r) for r in data["runs"]]
            return cls(setup=dict(data["setup"]), base=dict(data["base"]), runs=runs, version=int(data["version"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise GistlabError(f"Not an experiment summary ({type(exc).__name__}: {exc}): rerun "
                               "`gistlab experiment --report-only` to write it again.") from None

    @classmethod
    def read(cls, path: str | Path) -> ExperimentSummary:
        """Read ``experiment.json`` at ``path``; one GistlabError line when missing or garbled."""
        try:
            text = Path(path).read_text()
        except OSError:
            raise GistlabError(f"No experiment summary at {path}: run `gistlab experiment` first.") from None
        return cls.from_json(text)

    def runs_frame(self) -> pd.DataFrame:
        """One row per run: rate, arm, label, loss, seed, mean (over tasks)."""
        return pd.DataFrame([{"rate": r.rate, "arm": r.arm, "label": r.label, "loss": r.loss, "seed": r.seed,
                              "mean": r.mean, "train_s": r.train_s} for r in self.runs],
                            columns=["rate", "arm", "label", "loss", "seed", "mean", "train_s"])


def _scores(table: pd.DataFrame) -> tuple[dict[str, float], float]:
    """Main score per task (splits averaged) and their mean, from tidy rows of one model."""
    per_task = table.groupby("task")["main_score"].mean()
    return {t: round(float(v), 6) for t, v in per_task.items()}, round(float(per_task.mean()), 6)


def summarise(config: ExperimentConfig, result: ExperimentResult) -> ExperimentSummary:
    """The summary of the main student's finished runs (``result``) under ``config``."""
    from importlib.metadata import version

    from core.analysis.experiment_mined import mined_path, read_summary
    from core.analysis.experiment_plan import MINED

    scores = result.scores
    own = scores[scores["student"] == config.student] if len(scores) else scores
    base_rows = own[own["arm"] == "base"] if len(own) else own
    base_scores, base_mean = _scores(base_rows) if len(base_rows) else ({}, None)
    tasks = sorted(set(own["task"])) if len(own) else []
    setup = {"student": config.student, "data": config.data, "steps": config.steps, "batch_size": config.batch_size,
             "lr": config.lr, "seeds": list(config.seeds), "rates": [float(r) for r in config.rates],
             "arms": list(config.cases()[0][1]), "tasks": tasks, "homogeneous": config.homogeneous,
             "versions": {p: version(p) for p in ("torch", "sentence-transformers")}}
    mining = read_summary(mined_path(config, config.student)) if MINED in config.guides else None
    if mining is not None:  # what the mined arm's guide filter removed (core.analysis.mining's summary)
        setup["mining"] = {k: mining.get(k) for k in MINING_KEYS}
    runs = []
    for arm in result.runs:
        if arm.student != config.student:
            continue
        rows = own[(own["arm"] == arm.guide) & (own["seed"] == arm.seed) & (own["rate"] == arm.rate)]
        if rows.empty:
            continue
        per_task, mean = _scores(rows)
        runs.append(RunRecord(rate=float(arm.rate), arm=arm.guide, label=experiment_label(arm.guide), loss=arm.loss,
                              seed=arm.seed, scores=per_task, mean=mean, quality=result.quality.get(arm),
                              train_s=result.ledgers.get(arm, {}).get("train_s")))
    return ExperimentSummary(setup=setup, base={"scores": base_scores, "mean": base_mean}, runs=runs)


def paired_runs(summary: ExperimentSummary) -> pd.DataFrame:
    """Per (rate, arm, seed): the arm's mean over tasks minus MNRL's at the same rate and seed (``delta``)."""
    runs = summary.runs_frame()
    ref = runs[runs["arm"] == MNRL][["rate", "seed", "mean"]].rename(columns={"mean": "reference"})
    paired = runs[runs["arm"] != MNRL].merge(ref, on=["rate", "seed"], how="inner")
    return paired.assign(delta=paired["mean"] - paired["reference"])


def score_frame(summary: ExperimentSummary) -> pd.DataFrame:
    """Per (rate, arm): the main score averaged over tasks, its mean and sample std over seeds, the seed count."""
    runs = summary.runs_frame()
    return runs.groupby(["rate", "arm", "label"], as_index=False, sort=False).agg(
        mean=("mean", "mean"), std=("mean", "std"), seeds=("seed", "nunique"))


def curve(summary: ExperimentSummary) -> pd.DataFrame:
    """Per (rate, arm): the paired difference against MNRL on the mean over tasks, averaged over seeds
    (``delta``), its sample std over seeds (``spread``; NaN for one seed), the seed count and the seeds
    where the arm scored higher (``wins``); arms in the experiment's order, rates ascending."""
    paired = paired_runs(summary)
    if paired.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    out = paired.groupby(["rate", "arm", "label"], as_index=False).agg(
        delta=("delta", "mean"), spread=("delta", "std"), seeds=("seed", "nunique"),
        wins=("delta", lambda d: int((d > 0).sum())))
    order = {a: k for k, a in enumerate(summary.setup.get("arms", []))}
    out = out.assign(_order=out["arm"].map(order).fillna(len(order)))
    return out.sort_values(["_order", "rate"]).drop(columns="_order").reset_index(drop=True)[CURVE_COLUMNS]


def cost_frame(summary: ExperimentSummary) -> pd.DataFrame:
    """Per arm: training seconds per step (mean over its runs) and that against MNRL's (``ratio``)."""
    runs = summary.runs_frame().dropna(subset=["train_s"])
    steps = max(int(summary.setup.get("steps") or 1), 1)
    if runs.empty:
        return pd.DataFrame(columns=["arm", "label", "runs", "per_step", "ratio"])
    out = runs.groupby(["arm", "label"], as_index=False, sort=False).agg(runs=("seed", "size"), train_s=("train_s", "mean"))
    out = out.assign(per_step=out["train_s"] / steps).drop(columns="train_s")
    mnrl = out.loc[out["arm"] == MNRL, "per_step"]
    return out.assign(ratio=out["per_step"] / mnrl.iloc[0] if len(mnrl) and mnrl.iloc[0] > 0 else float("nan"))


def quality_frame(summary: ExperimentSummary) -> pd.DataFrame:
    """Per (rate, arm) of the masking arms: each quality figure averaged over seeds, and the pooled counts."""
    rows = [{"rate": r.rate, "arm": r.arm, "label": r.label, "seed": r.seed, **r.quality}
            for r in summary.runs if r.quality]
    columns = ["rate", "arm", "label", "seeds", "masked_share", "fn_precision", "fn_recall", "related_share",
               "unrelated_share", "fn_present", "fn_caught", "steps"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    for column in ("masked_share", "fn_precision", "fn_recall", "related_share", "unrelated_share"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    out = frame.groupby(["rate", "arm", "label"], as_index=False).agg(
        seeds=("seed", "nunique"), masked_share=("masked_share", "mean"), fn_precision=("fn_precision", "mean"),
        fn_recall=("fn_recall", "mean"), related_share=("related_share", "mean"),
        unrelated_share=("unrelated_share", "mean"), fn_present=("fn_present", "sum"),
        fn_caught=("fn_caught", "sum"), steps=("steps", "sum"))
    order = {a: k for k, a in enumerate(summary.setup.get("arms", []))}
    out = out.assign(_order=out["arm"].map(order).fillna(len(order)))
    return out.sort_values(["_order", "rate"]).drop(columns="_order").reset_index(drop=True)[columns]

