"""The bundled WordNet data in ``assets/`` (built by scripts/build_assets.py), read offline.

``bundled_pairs()`` is the training set behind ``--data bundled``: a ``datasets.Dataset`` with
``anchor``, ``positive``, ``negative`` and ``task`` (one of :data:`TRAIN_TASKS`), then every text's
provenance, the ground truth of :mod:`core.method.groundtruth`: ``<role>_synset`` (WordNet synset id),
``<role>_lemmas`` (its words) and ``<role>_category`` (lexicographer category) for the roles
anchor, positive and negative. Batches drawn from one ``task`` are the paper's task-homogeneous
batches. :data:`TASK_RELATIONS` says, per task, which relation makes another text a right answer
for a row (the false negatives of core.method.groundtruth). ``task_counts()`` and
:data:`TASK_DESCRIPTIONS` are what the app shows about it. The folder is found next to the
``core`` package (a checkout, or ``pip install -e .``), or wherever ``GISTLAB_ASSETS`` points.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset

from core.errors import GistlabError

ENV_VAR = "GISTLAB_ASSETS"
TRAIN_FILE = "train/wordnet_pairs.parquet"
TRAIN_TASKS = ("example_definition", "words_definition", "category_triplet")
TASK_DESCRIPTIONS = {
    "example_definition": "usage example -> its definition (MEDI-style); negative: another sense's definition",
    "words_definition": "a synset's words -> its definition (MEDI-style); negative: another sense's definition",
    "category_triplet": "definition -> another definition of the same WordNet category "
                        "(MTEB-classification-style); negative: another category",
}
TASK_RELATIONS = {  # what makes another in-batch text a right answer (a false negative) for a row
    "example_definition": "synset",
    "words_definition": "synset",
    "category_triplet": "category",
}


def assets_dir() -> Path:
    """The assets folder: ``$GISTLAB_ASSETS`` if set, else ``assets/`` beside the ``core`` package."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else Path(__file__).resolve().parents[2] / "assets"


def asset_path(relative: str) -> Path:
    """An existing file under the assets folder, or one clear error saying how to get it back."""
    path = assets_dir() / relative
    if not path.is_file():
        raise GistlabError(
            f"Bundled data file {path} is missing: use a gistlab checkout (pip install -e .) or "
            "rebuild it with: python scripts/build_assets.py --wordnet-dir /usr/share/wordnet --out assets"
        )
    return path


def read_table(relative: str) -> pa.Table:
    """A Parquet file of the assets folder as an Arrow table."""
    return pq.read_table(asset_path(relative))


@cache
def _manifest(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def manifest() -> dict:
    """The build's manifest: config, per-task and per-table row counts, benchmark revision, hashes."""
    return _manifest(asset_path("manifest.json"))


def task_counts() -> dict[str, int]:
    """Rows per training task, in :data:`TRAIN_TASKS` order."""
    return dict(manifest()["train_tasks"])


def bundled_pairs(tasks: Iterable[str] | None = None) -> Dataset:
    """The bundled training pairs (all tasks, or only ``tasks``), in memory, in file order."""
    table = read_table(TRAIN_FILE)
    if tasks is not None:
        wanted = checked_names(tasks, TRAIN_TASKS)
        table = table.filter(pc.is_in(table["task"], value_set=pa.array(wanted)))
    return Dataset(table)


def checked_names(names: Iterable[str], known: Iterable[str]) -> list[str]:
    """``names`` without repeats, or one clear error naming the unknown ones and the choices."""
    known, wanted = list(known), list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise GistlabError(
            f"Unknown bundled task(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"choose from {', '.join(known)}."
        )
    return wanted
