"""The guide ladder as data: its default arms, one ``Arm`` per run, and what the runs produced.

Shared by the orchestration (core.analysis.experiment), the report (experiment_report) and the demo
copy (experiment_demo), so none of them imports another for its types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.training.results import MNRL, RECIPES, arm_label

GIST_HARD, MINED = "gist-hard", "mined"
HARD_GUIDE = "bundled:minilm-l6"  # gist-hard's guide, and the filter of the mined arm's negatives
EXPERIMENT_RECIPES = (*RECIPES, GIST_HARD, MINED)  # arms that are not a guide spec
LADDER = (MNRL, "self", "bundled:minilm-l6", "bundled:mpnet-base")
SMALL_STUDENT = "bundled:minilm-l6"
SMALL_GUIDES = (MNRL, "bundled:mpnet-base")
MASKING_COLUMNS = ["student", "arm", "rate", "seed", "steps", "masked", "fn_precision", "fn_recall", "weak_rows"]


@dataclass(frozen=True)
class Arm:
    """One run of the experiment: a student trained with an arm on a seed's batches at a false-negative rate.

    ``guide`` names the arm: ``none`` (MNRL), a guide-free recipe of
    :data:`core.training.results.RECIPES` (that loss), ``gist-hard`` (GIST with :data:`HARD_GUIDE`
    plus hardness weighting), ``mined`` (MNRL whose negatives are mined offline with the student and
    filtered by :data:`HARD_GUIDE`: core.analysis.experiment_mined), else a GIST guide spec."""

    student: str
    guide: str
    seed: int
    rate: float = 0.0  # core.corpus.false_negatives: 0 = the data as is

    @property
    def loss(self) -> str:
        """The training loss: mnrl for ``none`` and ``mined``, the recipe itself for a recipe, else gist."""
        if self.guide in (MNRL, MINED):
            return "mnrl"
        return self.guide if self.guide in (*RECIPES, GIST_HARD) else "gist"

    @property
    def guide_spec(self) -> str | None:
        """The frozen guide the run loads (None: it loads none)."""
        if self.loss == "gist":
            return self.guide
        return HARD_GUIDE if self.guide == GIST_HARD else None

    @property
    def masks(self) -> bool:
        """Whether the arm's runs record masks (mnrl, mnrl-hard and mined mask nothing in-batch)."""
        return self.loss not in ("mnrl", "mnrl-hard")


def experiment_label(arm: str) -> str:
    """A person's name for an experiment arm (core.training.results.arm_label plus gist-hard and mined)."""
    if arm == GIST_HARD:
        return f"GIST · {HARD_GUIDE.removeprefix('bundled:')} + hardness"
    if arm == MINED:
        return f"MNRL · mined negatives ({HARD_GUIDE.removeprefix('bundled:')} filter)"
    return arm_label(arm)


@dataclass
class ExperimentResult:
    """Where everything went, the tidy scores, the masking figures and the time each run took."""

    runs: dict[Arm, Path]
    scores: pd.DataFrame  # student, arm, rate, seed, task, task_type, metric, split, main_score
    masking: pd.DataFrame  # MASKING_COLUMNS, one row per guided run
    base_files: dict[str, list[Path]] = field(default_factory=dict)  # per student: its base results
    ledgers: dict[Arm, dict] = field(default_factory=dict)
    skipped: dict[Arm, str] = field(default_factory=dict)
    seconds: float = 0.0  # this invocation's wall time
    quality: dict[Arm, dict | None] = field(default_factory=dict)  # per masking run: core.analysis.run_quality, summed


def short_name(spec: str) -> str:
    """A folder-safe short name of a model spec: ``bundled:minilm-l3`` -> ``minilm-l3``, a path -> its name."""
    name = spec.removeprefix("bundled:").rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) or "model"
