"""Tidy tables from mteb result JSON: one row per (model or run, task, split), ready for pandas.

Reads the files :mod:`core.evaluate` leaves in mteb's ResultCache layout
(``<root>/results/<model>/<revision>/<Task>.json``) as plain JSON, so the app's Results page and
``gistlab eval`` show exactly what is on disk. When ``<root>`` is a run directory, its
``config.json`` supplies the run's name, loss arm and seed.

Columns: model, run, loss, seed, task, task_type, split, main_score, overlaps_gist_training,
revision, path. ``main_score`` is mteb's main score of that split, averaged over its subsets
(languages). Files that cannot be read are listed in ``table.attrs["unreadable"]``, never dropped
silently.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pandas as pd

COLUMNS = [
    "model", "run", "loss", "seed", "task", "task_type", "split", "main_score",
    "overlaps_gist_training", "revision", "path",
]

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
def task_type(name: str) -> str:
    """The mteb task type of a task name (bundled or official), or ``unknown``."""
    from core.mteb_tasks import bundled_tasks

    for task in bundled_tasks():
        if task.metadata.name == name:
            return task.metadata.type
    import mteb

    try:
        return mteb.get_task(name).metadata.type
    except (KeyError, ValueError):
        return "unknown"


def _run_info(result_file: Path) -> dict:
    """Run name, loss and seed when the file sits in a run directory (``<run>/results/m/r/t.json``).

    A run directory is one whose ``config.json`` is a training config (it names the loss); its
    weights need not be there (the demo copy in ``assets/demo`` ships results without them).
    """
    root = result_file.parents[3]
    config = root / "config.json"
    settings = json.loads(config.read_text()) if config.is_file() else {}
    if not isinstance(settings, dict) or "loss" not in settings:
        return {"run": None, "loss": None, "seed": None}
    return {"run": root.name, "loss": settings.get("loss"), "seed": settings.get("seed")}


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
    """The results table with ``label``: the run's name for a fine-tuned model, else the model's name."""
    return table.assign(label=table["run"].fillna(table["model"]))


def mark_overlaps(table: pd.DataFrame) -> pd.DataFrame:
    """Task names with `` *`` where the task overlaps GIST's training data (see OVERLAP_NOTE)."""
    overlap = table["overlaps_gist_training"].fillna(False).astype(bool)
    return table.assign(task=table["task"] + overlap.map({True: " *", False: ""}))


def deltas(table: pd.DataFrame, base: str) -> pd.DataFrame:
    """Each loss arm's score minus ``base``'s, per task: mean and std over seeds, and how many seeds.

    Columns: loss, task, delta, spread (std over runs, i.e. seeds; 0 for one run), runs.
    """
    base_scores = table[table["model"] == base].groupby(["task", "split"])["main_score"].mean()
    tuned = table[table["run"].notna()].join(base_scores.rename("base"), on=["task", "split"])
    tuned = tuned.dropna(subset=["base"]).assign(delta=lambda t: t["main_score"] - t["base"])
    per_run = tuned.groupby(["loss", "task", "run"], as_index=False)["delta"].mean()
    out = per_run.groupby(["loss", "task"]).agg(
        delta=("delta", "mean"), spread=("delta", "std"), runs=("run", "nunique")
    ).reset_index()
    return out.fillna({"spread": 0.0})


def write_section(path: Path | str, name: str, markdown: str) -> None:
    """Put ``markdown`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in the file at ``path``.

    Replaces that block where the file has it, else appends it (creating the file if needed), so
    that several writers (the experiment's "ladder", the mining report's "mining") share one
    Markdown file without overwriting each other. The file is replaced atomically.
    """
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.is_file() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = f"{text.rstrip()}\n\n{block}\n" if text.strip() else f"{block}\n"
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text)
    staging.replace(path)
