"""Pairs datasets: load them from files, the Hub or the bundled set, check them, draw batches.

A pairs dataset is a ``datasets.Dataset`` with text columns ``anchor`` and ``positive``, zero or
more negative columns (``negative``, or ``negative_1`` .. ``negative_k`` in that order) and
optionally ``task``. Ground truth is kept when present (core/method/groundtruth.py): an optional
``group`` column and, per text column, ``<column>_synset`` / ``_lemmas`` / ``_category`` (the bundled
data's provenance). Every other column is dropped; training keeps only the texts (text_columns).

Sources (``load_pairs(spec)``):
- a local ``.csv`` / ``.tsv`` / ``.jsonl`` / ``.parquet`` file;
- a local folder that ``datasets.load_dataset`` understands (one data file per split);
- a Hugging Face dataset id (offline: one line at once, like ``core.guides.models``);
- ``bundled``: the WordNet pairs of ``core.corpus.bundled``.

Reading a source as it is (files parsed with their line numbers, folders, the Hub) is
core.corpus.reading's job; this module maps, checks and samples. Bad input raises
:class:`GistlabError` with one line that names the file, column or row and says what to do, before
any model is loaded. Row numbers count data rows from 0 (the header is not a
row), which is also the row id training records in ``masks.parquet``.
"""

from __future__ import annotations

import numbers
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Value

from core.errors import GistlabError

TEXT_COLUMNS = ("anchor", "positive")
TASK_COLUMN = "task"
GROUP_COLUMN = "group"  # optional: rows of one group are true positives of each other
PROVENANCE_KINDS = ("synset", "lemmas", "category")  # ground truth per text: <text column>_<kind>
FILE_TYPES = (".csv", ".tsv", ".jsonl", ".parquet")  # the local files core.corpus.reading parses
_NUMBERED_NEGATIVE = re.compile(r"^negative_(\d+)$")


def load_pairs(
    spec: str,
    *,
    split: str = "train",
    columns: dict[str, str] | None = None,
    batch_size: int | None = None,
) -> Dataset:
    """Load and check a pairs dataset.

    Args:
        spec: a file path, a dataset folder, a Hugging Face dataset id, or ``bundled``.
        split: the split to read from a folder or a Hub dataset (ignored for single files).
        columns: target -> source column names, e.g. ``{"anchor": "question", "positive": "answer"}``.
        batch_size: if given, fewer rows than this is an error (a batch could never be filled).

    Returns:
        A Dataset with only the pairs columns, texts checked non-empty.
    """
    spec = str(spec).strip()
    if batch_size is not None and batch_size < 2:
        raise GistlabError(f"Batch size {batch_size}: give at least 2 (in-batch negatives need company).")
    if spec == "bundled":
        from core.corpus.bundled import bundled_pairs

        raw, source, lines = bundled_pairs(), "the bundled data", None
    else:
        from core.corpus.reading import read_source

        raw, source, lines = read_source(spec, split)
    ds = _group_labels(_select_columns(raw, columns or {}, source))
    _check_texts(ds, source, lines)
    if batch_size is not None and len(ds) < batch_size:
        raise GistlabError(
            f"{source} has {len(ds)} rows, fewer than the batch size {batch_size}: "
            "lower --batch-size or use more data."
        )
    return ds


def raw_columns(spec: str, split: str = "train") -> list[str]:
    """The columns of a data source as they are, before any mapping: what a page offers to map
    to anchor / positive / negatives when a file does not use those names."""
    from core.corpus.reading import read_source

    return read_source(str(spec).strip(), split)[0].column_names


def negative_columns(ds: Dataset) -> list[str]:
    """The dataset's negative columns in order: ``["negative"]`` or ``["negative_1", ...]``."""
    if "negative" in ds.column_names:
        return ["negative"]
    numbered = [(int(m.group(1)), c) for c in ds.column_names if (m := _NUMBERED_NEGATIVE.match(c))]
    return [c for _, c in sorted(numbered)]


def text_columns(ds: Dataset) -> list[str]:
    """The columns training embeds, in the order the loss expects: anchor, positive, negatives."""
    return [*TEXT_COLUMNS, *negative_columns(ds)]


def truth_columns(ds: Dataset) -> list[str]:
    """The ground-truth columns the data has (core/method/groundtruth.py): ``group``, then each text
    column's ``_synset``, ``_lemmas``, ``_category``."""
    names = (GROUP_COLUMN, *(f"{t}_{k}" for t in text_columns(ds) for k in PROVENANCE_KINDS))
    return [c for c in names if c in ds.column_names]


def task_rows(ds: Dataset) -> dict[str, np.ndarray]:
    """Row ids of each task, tasks in order of first appearance (needs the ``task`` column)."""
    if TASK_COLUMN not in ds.column_names:
        raise GistlabError(
            "The data has no 'task' column, so batches cannot be drawn per task: "
            "add one, or use mixed batches."
        )
    # One Arrow column read (it honours an indices mapping), not a Python loop over rows.
    tasks = ds.with_format("arrow")[TASK_COLUMN].to_numpy(zero_copy_only=False)
    names, first = np.unique(tasks, return_index=True)
    return {str(names[i]): np.flatnonzero(tasks == names[i]) for i in np.argsort(first)}


def task_pool(ds: Dataset, task: str | None = None) -> np.ndarray:
    """The row ids of ``task`` (every row when None); an unknown task is a one-line error naming the known ones."""
    if task is None:
        return np.arange(len(ds))
    by_task = task_rows(ds)
    if task not in by_task:
        raise GistlabError(f"No task {task!r} in the data: choose one of {', '.join(by_task)}.")
    return by_task[task]


MAX_SEED = 2**32 - 1  # numpy's legacy seeding (transformers' set_seed) takes no more


def check_seed(seed: int) -> int:
    """``seed`` if every seeded draw here (numpy, torch, transformers' set_seed) takes it, else one line."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise GistlabError(f"--seed {seed}: give a whole number from 0 to {MAX_SEED}.")
    return seed


def sample_batch(ds: Dataset, batch_size: int, seed: int, task: str | None = None) -> list[int]:
    """A seeded draw of ``batch_size`` distinct row ids, optionally all from one task.

    The same (dataset, batch_size, seed, task) always gives the same rows in the same order;
    row ids are global (positions in ``ds``), also when restricted to a task.
    """
    check_seed(seed)
    pool, where = task_pool(ds, task), "the data" if task is None else f"task {task!r}"
    if len(pool) < batch_size:
        raise GistlabError(
            f"{where} has {len(pool)} rows, fewer than the batch size {batch_size}: "
            "choose a smaller batch."
        )
    rng = np.random.default_rng(seed)
    groups = row_groups(ds)
    if groups is None:
        return [int(i) for i in rng.choice(pool, size=batch_size, replace=False)]
    picked, seen = [], set()
    for row in rng.permutation(pool):  # the first rows of a seeded order, one per group
        if groups[row] < 0 or groups[row] not in seen:
            picked.append(int(row))
            seen.add(groups[row])
            if len(picked) == batch_size:
                return picked
    raise GistlabError(
        f"{where} has only {len(picked)} rows of distinct groups, fewer than the batch size {batch_size}: "
        "choose a smaller batch."
    )


def row_groups(ds: Dataset) -> np.ndarray | None:
    """Group id per row (-1: in no group) from the ``group`` column; None when no two rows share one.

    Rows of one group are copies or the same meaning (core/analysis/cleaning.py writes the column), so
    :func:`sample_batch` and :func:`epoch_batches` never put two of them in one batch.
    """
    if GROUP_COLUMN not in ds.column_names:
        return None
    labels = ds.with_format("arrow")[GROUP_COLUMN].to_pylist()
    ids: dict[str, int] = {}
    out = np.array([-1 if g is None else ids.setdefault(str(g), len(ids)) for g in labels], dtype=np.int64)
    return out if len(ids) < int((out >= 0).sum()) else None


def _group_labels(ds: Dataset) -> Dataset:
    """The ``group`` column as text, a blank cell (a CSV's empty field) as null: in no group."""
    if GROUP_COLUMN not in ds.column_names:
        return ds
    table = ds.with_format("arrow")[:]  # honours a selection's indices mapping
    labels = pc.cast(table.column(GROUP_COLUMN), pa.string())
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(labels), ""), True)
    column = pc.if_else(blank, pa.scalar(None, pa.string()), labels)
    return Dataset(table.set_column(table.column_names.index(GROUP_COLUMN), GROUP_COLUMN, column))


def _group_batches(rows: np.ndarray, groups: np.ndarray, batch_size: int) -> list[list[int]]:
    """``rows`` (in order) cut into full batches without two rows of one group: each row joins the
    first unfilled batch that lacks its group; batches come out in the order they fill."""
    filling: list[tuple[list[int], set[int]]] = []
    full = []
    for row in rows.tolist():
        group = groups[row]
        for k, (batch, seen) in enumerate(filling):
            if group < 0 or group not in seen:
                break
        else:
            k, batch, seen = len(filling), [], set()
            filling.append((batch, seen))
        batch.append(row)
        seen.add(group)
        if len(batch) == batch_size:
            full.append(batch)
            del filling[k]
    return full


def epoch_batches(
    ds: Dataset, batch_size: int, seed: int, epoch: int, homogeneous: bool = False
) -> list[list[int]]:
    """The full batches of one training epoch, as global row ids.

    Mixed: a seeded permutation of all rows cut into batches. Task-homogeneous: each task's rows
    shuffled and cut separately, then the batches of all tasks shuffled together. Incomplete
    batches are dropped (in-batch negatives need full batches). The order depends only on the
    data, batch size, seed and epoch, so every loss arm sees the same batches. With a ``group``
    column (:func:`row_groups`), no batch holds two rows of one group (:func:`_group_batches`).
    """
    rng = np.random.default_rng([seed, epoch])
    pools = list(task_rows(ds).values()) if homogeneous else [np.arange(len(ds))]
    groups = row_groups(ds)
    batches = []
    for rows in pools:
        rows = rng.permutation(rows)
        if groups is not None:
            batches += _group_batches(rows, groups, batch_size)
            continue
        whole = len(rows) // batch_size * batch_size
        batches += [rows[i : i + batch_size].tolist() for i in range(0, whole, batch_size)]
    order = rng.permutation(len(batches)) if homogeneous else range(len(batches))
    return [batches[i] for i in order]


# ---- checking ----------------------------------------------------------------------------------


def _select_columns(ds: Dataset, mapping: dict[str, str], source: str) -> Dataset:
    """Apply the column mapping, check the pairs columns exist, keep only them (in order)."""
    found = ds.column_names
    for target, src in mapping.items():
        if target not in (*TEXT_COLUMNS, TASK_COLUMN, GROUP_COLUMN, "negative") and not _NUMBERED_NEGATIVE.match(target):
            raise GistlabError(
                f"Unknown target column {target!r} in the column mapping: map to anchor, positive, "
                "negative (or negative_1, negative_2, ...), task or group."
            )
        if src not in found:
            raise GistlabError(
                f"{source} has no column {src!r} to use as {target!r} (found: {', '.join(found)}): "
                "fix the mapping in --data-columns."
            )
    replaced = [t for t in mapping if t in found and t not in mapping.values()]
    ds = ds.remove_columns(replaced).rename_columns({s: t for t, s in mapping.items() if s != t})
    for column in TEXT_COLUMNS:
        if column not in ds.column_names:
            raise GistlabError(
                f"{source} has no {column!r} column (found: {', '.join(found)}): rename the columns "
                "or map them, e.g. --data-columns anchor=question,positive=answer."
            )
    negatives = negative_columns(ds)
    if "negative" in ds.column_names and any(_NUMBERED_NEGATIVE.match(c) for c in ds.column_names):
        raise GistlabError(
            f"{source} has both 'negative' and numbered negative columns: use one form, "
            "'negative' or 'negative_1', 'negative_2', ..."
        )
    numbers = [int(_NUMBERED_NEGATIVE.match(c).group(1)) for c in negatives if c != "negative"]
    if numbers != list(range(1, len(numbers) + 1)):
        raise GistlabError(
            f"{source} has negative columns {', '.join(negatives)}: number them negative_1 .. "
            f"negative_{len(numbers)} without gaps."
        )
    truth = truth_columns(ds)
    if TASK_COLUMN not in ds.column_names:
        return ds.select_columns([*text_columns(ds), *truth])
    ds = ds.select_columns([*text_columns(ds), TASK_COLUMN, *truth])
    text_task = ds.features[TASK_COLUMN] in (Value("string"), Value("large_string"))
    return ds if text_task else ds.cast_column(TASK_COLUMN, Value("string"))


def _check_texts(ds: Dataset, source: str, lines: list[int] | None = None) -> None:
    """Every text column holds strings, none null or blank; tasks are present where given. A bad
    row is named by number and, for a text file, by the line it starts on (``lines``)."""
    if len(ds) == 0:
        raise GistlabError(f"{source} has no rows: give at least one batch of pairs.")
    table = ds.data.table
    for column in text_columns(ds) + ([TASK_COLUMN] if TASK_COLUMN in ds.column_names else []):
        values = table.column(column)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
                or pa.types.is_null(values.type)):
            raise GistlabError(
                f"{source}: column {column!r} holds {values.type} values, not text: "
                "give it strings."
            )
        bad = pc.is_null(values) if pa.types.is_null(values.type) else pc.fill_null(
            pc.or_(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(values), "")), True
        )
        row = pc.index(bad, True).as_py()
        if row >= 0:
            where = f"{source} line {lines[row]}: row {row}" if lines else f"{source}: row {row}"
            raise GistlabError(
                f"{where} has an empty {column!r} (missing, null or blank; rows count from 0, "
                "header excluded): fill it in or drop the row."
            )
