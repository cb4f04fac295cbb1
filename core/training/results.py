"""Tidy tables from mteb result JSON: one row per (model or run, task, split), ready for pandas.

Reads the files :mod:`core.training.evaluate` leaves in mteb's ResultCache layout
(``<root>/results/<model>/<revision>/<Task>.json``) as plain JSON, so the app's Results page and
``gistlab eval`` show exactly what is on disk. When ``<root>`` is a run directory, its
``config.json`` supplies the run's name, loss arm, seed, student, guide and pairing key.

Columns: model, run, loss, seed, task, task_type, split, main_score, overlaps_gist_training,
revision, path, student, guide, pairing, setup (a run's training setup in words), metric (the
metric behind the task's main score, e.g. ``nDCG@10``). ``main_score`` is mteb's main score of
that split, averaged over its subsets (languages). Files that cannot be read are listed in
``table.attrs["unreadable"]``, never dropped silently.

Also the pure summaries the experiment, the Results page and the Demo page share: arms named by
their guide (``none`` = MNRL), each arm's mean and spread over seeds, and the paired difference of
every arm against MNRL seed by seed (runs with one pairing key trained on the same batches); and
:func:`write_section`, which lets several reports share one Markdown file.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pandas as pd

from core.fsio import locked, write_text_atomic

COLUMNS = [
    "model", "run", "loss", "seed", "task", "task_type", "split", "main_score",
    "overlaps_gist_training", "revision", "path", "student", "guide", "pairing", "setup", "metric",
]
MNRL = "none"
"""The arm name of MNRL: the in-batch softmax with no guide (every guide arm is compared with it)."""
MEAN_TASK = "mean over tasks"
"""The pseudo-task of :func:`per_seed_scores`: each seed's mean over its tasks."""
PAIRING_IGNORES = frozenset({"out", "loss", "guide", "seed", "margin_strategy", "margin", "positive_floor"})
"""Training settings that do not change which batches a run draws: runs equal in all the rest (and
in seed) trained on the same batches in the same order, so their scores can be paired."""

GIST_TRAINING_OVERLAP = frozenset({
    "AmazonCounterfactualClassification",
    "AmazonPolarityClassification",
    "AmazonReviewsClassification",
    "Banking77Classification",
    "EmotionClassification",
    "ImdbClassification",
    "MTOPDomainClassification",
    "MTOPIntentClassification",
    "MassiveIntentClassification",
    "MassiveScenarioClassification",
    "ToxicConversationsClassification",
    "TweetSentimentExtractionClassification",
})
"""Official tasks whose training split the published GIST models were fine-tuned on.

GISTEmbed's training data is MEDI plus the training sets of every English MTEB classification
task that has one (the list mteb 2.x records in the ``training_datasets`` of the
``avsolatorio/GIST-*`` model metadata). Scores of published GIST models on these tasks are not
zero-shot: say so wherever they are compared. The bundled WordNet tasks overlap none of it; the
bundled training pairs come from the same WordNet resource, but from other synsets.
"""


def result_files(path: Path) -> list[Path]:
    """Result JSON files under ``path``: a file, a ResultCache root (run dir, workspace) or its ``results/``.

    Only ``results/`` is searched: a workspace also holds other JSON at the same depth (the guide
    cache's ``meta.json``, the derived student's config), which are not results.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    base = path if path.name == "results" else path / "results"
    return sorted(p for p in base.glob("*/*/*.json") if p.name != "model_meta.json")


def _default_roots() -> list[Path]:
    from core.workspace import subdir, workspace

    return [workspace(), *sorted(p for p in subdir("runs").iterdir() if p.is_dir())]


@lru_cache(maxsize=None)
def _task_metadata(name: str):
    """The mteb metadata of a task name (bundled or official), or None."""
    from core.corpus.mteb_tasks import bundled_tasks

    for task in bundled_tasks():
        if task.metadata.name == name:
            return task.metadata
    import mteb

    try:
        return mteb.get_task(name).metadata
    except (KeyError, ValueError):
        return None


def task_type(name: str) -> str:
    """The mteb task type of a task name (bundled or official), or ``unknown``."""
    meta = _task_metadata(name)
    return meta.type if meta is not None else "unknown"


METRIC_NAMES = {
    "ndcg_at_10": "nDCG@10", "map_at_1000": "MAP@1000", "map": "MAP", "mrr_at_10": "MRR@10",
    "accuracy": "accuracy", "f1": "F1", "v_measure": "V-measure", "max_ap": "max AP",
    "max_average_precision": "max AP", "ap": "AP", "cosine_spearman": "Spearman (cosine)",
    "cosine_pearson": "Pearson (cosine)",
}
"""How a person writes mteb's main-score names (others are shown as mteb names them)."""


def main_metric(name: str) -> str:
    """The metric behind a task's main score, as a person writes it: ``nDCG@10``, ``Spearman (cosine)``."""
    meta = _task_metadata(name)
    if meta is None:
        return "main score"
    return METRIC_NAMES.get(meta.main_score, meta.main_score.replace("_", " "))


def display_name(model: str) -> str:
    """A model's name as the user gives it: results of ``bundled:x`` are filed as ``gistlab/x``."""
    return f"bundled:{model.removeprefix('gistlab/')}" if model.startswith("gistlab/") else model


def _run_info(result_file: Path) -> dict:
    """Run name, loss and seed when the file sits in a run directory (``<run>/results/m/r/t.json``).

    A run directory is one whose ``config.json`` is a training config (it names the loss); its
    weights need not be there (the demo copy in ``assets/demo`` ships results without them).
    """
    root = result_file.parents[3]
    config = root / "config.json"
    settings = json.loads(config.read_text()) if config.is_file() else {}
    if not isinstance(settings, dict) or "loss" not in settings:
        return {"run": None, "loss": None, "seed": None, "student": None, "guide": None, "pairing": None,
                "setup": None}
    length = f"{settings['steps']} steps" if settings.get("steps") else f"{settings.get('epochs') or 1:g} epoch(s)"
    setup = (f"student {settings.get('student')} · {settings.get('data')} · {length} of batch "
             f"{settings.get('batch_size')} · lr {settings.get('lr')}")
    return {"run": root.name, "loss": settings.get("loss"), "seed": settings.get("seed"),
            "student": settings.get("student"), "guide": settings.get("guide"), "pairing": pairing_key(settings),
            "setup": setup}


def pairing_key(settings: dict) -> str:
    """A short key shared by runs that trained on the same batches per seed (see PAIRING_IGNORES)."""
    kept = {k: v for k, v in sorted(settings.items()) if k not in PAIRING_IGNORES}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _rows(result_file: Path) -> list[dict]:
    data = json.loads(result_file.read_text())
    meta_file = result_file.parent / "model_meta.json"
    model = json.loads(meta_file.read_text()).get("name") if meta_file.is_file() else None
    task = data["task_name"]
    common = {
        "model": model or result_file.parents[1].name,
        **_run_info(result_file),
        "task": task,
        "task_type": task_type(task),
        "metric": main_metric(task),
        "overlaps_gist_training": task in GIST_TRAINING_OVERLAP,
        "revision": result_file.parent.name,
        "path": str(result_file),
    }
    rows = []
    for split, entries in data["scores"].items():
        scores = [float(e["main_score"]) for e in entries]
        rows.append({**common, "split": split, "main_score": sum(scores) / len(scores)})
    return rows


def results_table(paths: Path | str | Iterable[Path | str] | None = None) -> pd.DataFrame:
    """One row per (model or run, task, split) from the result JSON under ``paths``.

    ``paths``: run directories, ResultCache roots, ``results/`` folders or JSON files; None means
    the workspace and every run in it.
    """
    if paths is None:
        roots = _default_roots()
    elif isinstance(paths, (str, Path)):
        roots = [Path(paths)]
    else:
        roots = [Path(p) for p in paths]
    rows, unreadable = [], []
    for file in (f for root in roots for f in result_files(root)):
        try:
            rows.extend(_rows(file))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
            unreadable.append(f"{file}: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}")
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"seed": "Int64"})  # None for base models
    table = table.sort_values(["model", "run", "task", "split"], na_position="first", ignore_index=True)
    table.attrs["unreadable"] = unreadable
    return table


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """The results table with ``label``: the run's name for a fine-tuned model, else the model's name
    as the user gave it (:func:`display_name`)."""
    return table.assign(label=table["run"].fillna(table["model"].map(display_name)))


def mark_overlaps(table: pd.DataFrame) -> pd.DataFrame:
    """Task names with `` *`` where the task overlaps GIST's training data (see OVERLAP_NOTE)."""
    overlap = table["overlaps_gist_training"].fillna(False).astype(bool)
    return table.assign(task=table["task"] + overlap.map({True: " *", False: ""}))


RECIPES = {"self-judge": "Self-judge (the student masks)", "mnrl-hard": "MNRL · hardness weighting"}
"""The arms named by their loss, not a guide (they load none), and a person's name for each."""


def arm_of(loss: object, guide: object) -> str:
    """The arm a result belongs to, named by its guide: ``base`` (no run), ``none`` (MNRL), else the guide spec.

    The library's loss (``gist-st``) is its own arm, ``<guide> (GISTEmbedLoss)``; the guide-free
    :data:`RECIPES` are named by their loss, and ``gist-hard`` is ``<guide> (hardness)``.
    """
    if loss is None or pd.isna(loss):
        return "base"
    if loss == "mnrl":
        return MNRL
    if loss in RECIPES:
        return str(loss)
    if loss == "gist-hard":
        return f"{guide} (hardness)"
    return f"{guide} (GISTEmbedLoss)" if loss == "gist-st" else str(guide)


def arm_label(arm: str) -> str:
    """A person's name for an arm: ``MNRL (no guide)``, ``GIST · self-guide``, ``GIST · mpnet-base``."""
    if arm == "base":
        return "base model"
    if arm == MNRL:
        return "MNRL (no guide)"
    if arm == "self":
        return "GIST · self-guide"
    if arm in RECIPES:
        return RECIPES[arm]
    return f"GIST · {arm.removeprefix('bundled:')}"


def per_seed_scores(scores: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Main score per (keys, arm, seed, task), splits averaged, plus each seed's :data:`MEAN_TASK` row."""
    group = [*keys, "arm", "seed", "task"]
    per_task = scores.groupby(group, as_index=False, dropna=False)["main_score"].mean()
    mean = per_task.groupby(group[:-1], as_index=False, dropna=False)["main_score"].mean().assign(task=MEAN_TASK)
    return pd.concat([per_task, mean], ignore_index=True)


def arm_summary(scores: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per (keys, arm, task): mean, std over seeds (sample std; NaN for one seed) and the seed count.

    ``scores`` needs ``keys`` + arm, seed, task, main_score; the :data:`MEAN_TASK` row is included.
    """
    per_seed = per_seed_scores(scores, keys)
    return per_seed.groupby([*keys, "arm", "task"], as_index=False, dropna=False).agg(
        mean=("main_score", "mean"), std=("main_score", "std"), seeds=("seed", "nunique"))


def paired_deltas(scores: pd.DataFrame, keys: list[str], reference: str = MNRL) -> pd.DataFrame:
    """Each arm minus ``reference`` on the same seed (same batches), per (keys, arm, task).

    Columns: keys, arm, task, delta (mean over seeds), spread (sample std of the per-seed deltas;
    NaN for one seed: no spread can be drawn), seeds, wins (seeds where the arm scored higher).
    Base models (no seed) and seeds without a reference run are left out.
    """
    per_seed = per_seed_scores(scores[scores["arm"] != "base"], keys)
    index = [*keys, "seed", "task"]
    ref = per_seed[per_seed["arm"] == reference].rename(columns={"main_score": "reference"})
    arms = per_seed[per_seed["arm"] != reference].merge(ref[[*index, "reference"]], on=index, how="inner")
    arms = arms.assign(delta=arms["main_score"] - arms["reference"])
    out = arms.groupby([*keys, "arm", "task"], as_index=False, dropna=False).agg(
        delta=("delta", "mean"), spread=("delta", "std"), seeds=("seed", "nunique"),
        wins=("delta", lambda d: int((d > 0).sum())))
    return out


def write_section(path: Path | str, name: str, markdown: str) -> None:
    """Put ``markdown`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in the file at ``path``.

    Replaces that block where the file has it, else appends it (creating the file if needed), so
    that several writers (the experiment's "ladder", the mining report's "mining") share one
    Markdown file without overwriting each other. The file is replaced atomically.
    """
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    with locked(path.parent):  # two writers at once: each sees the other's section
        text = path.read_text() if path.is_file() else ""
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text, count=1)
        else:
            text = f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
        write_text_atomic(path, text)
