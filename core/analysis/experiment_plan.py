"""The guide ladder as data: its default arms, one ``Arm`` per run, and what the runs produced.

Shared by the orchestration (core.analysis.experiment), the report (experiment_report) and the demo
copy (experiment_demo), so none of them imports another for its types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.training.results import MNRL, RECIPES

LADDER = (MNRL, "self", "bundled:minilm-l6", "bundled:mpnet-base")
SMALL_STUDENT = "bundled:minilm-l6"
SMALL_GUIDES = (MNRL, "bundled:mpnet-base")
MASKING_COLUMNS = ["student", "arm", "seed", "steps", "masked", "fn_precision", "fn_recall", "weak_rows"]


@dataclass(frozen=True)
class Arm:
    """One run of the experiment: a student trained with a guide (``none``: MNRL; a guide-free recipe of
    :data:`core.training.results.RECIPES`: that loss) on a seed's batches."""

    student: str
    guide: str
    seed: int

    @property
    def loss(self) -> str:
        """mnrl for ``none``, the recipe itself for a guide-free recipe (self-judge, mnrl-hard), else gist."""
        if self.guide == MNRL:
            return "mnrl"
        return self.guide if self.guide in RECIPES else "gist"

    @property
    def masks(self) -> bool:
        """Whether the arm's runs record masks (mnrl and mnrl-hard mask nothing)."""
        return self.loss not in ("mnrl", "mnrl-hard")


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


def short_name(spec: str) -> str:
    """A folder-safe short name of a model spec: ``bundled:minilm-l3`` -> ``minilm-l3``, a path -> its name."""
    name = spec.removeprefix("bundled:").rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) or "model"
