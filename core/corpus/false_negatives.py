"""A false-negative rate you can set: batches where about ``RATE x B`` in-batch candidates per row are right answers.

Random batches of a large data set seldom hold two texts of one meaning (the bundled definition
tasks, up to 3 rows per synset in 8000: 0.017 false-negative candidates per row at batch 64, 0.6%
of rows with any; ``python scripts/fn_rates.py``, assets/README.md), so the guide has little to
catch and MNRL little to lose. :func:`add_false_negatives` rebuilds each batch of B rows as
*clusters*: a few of the batch's rows
are kept as sources, and each source is joined by added rows of the same meaning, so that a row
has on average ``RATE x B`` other rows of its meaning in the batch (in the a-p block: that many
false-negative positives among its B - 1 candidates; as many again in a-a and p-p). Cluster sizes
are of two neighbouring sizes, mixed so the mean comes closest to the rate; rate 0 changes nothing.

An added row is a row of the data with the source's meaning under the source's task's relation
(:data:`core.corpus.bundled.TASK_RELATIONS`): the same synset for the definition tasks (from any
task judged by the synset: a usage example or the word list of the synset, its definition as
positive: the classic repeated positive), the same lexicographer category for ``category_triplet``
(another definition pair of that category), the same ``group`` for user data. Other rows are
preferred; where the source is its meaning's only row, the added row repeats it. On the bundled
definition tasks a synset has at most 3 rows, so a cluster larger than its rows repeats them, and
every same-synset positive is the identical definition: there most added false negatives are
identical texts that the identical-text rule masks whatever the guide, and only a-a (another usage
example or word list of the synset) leaves distinct ones for a guide to judge; ``category_triplet``
adds distinct texts of a category. Measured by scripts/fn_rates.py at rate 0.1, batch 32, per row
over a-p, a-a and p-p: ``example_definition`` 8.5 identical and 1.0 distinct, ``words_definition``
7.6 and 1.9, ``category_triplet`` 0.06 and 11.5. Added rows keep all their ground-truth columns
and take the source's ``task``; they are appended after the data's
rows, so every original row id keeps its text. Rows the source rows replace leave the batch: its size
stays B. False negatives the data already holds (``category_triplet`` many, the definition tasks a
few) come on top.

Deterministic: the same data, batches, rate and seed give the same rows and batches, so paired
arms (gist, mnrl) still train on identical batches. Data without ground truth is refused: an added
row's meaning would be a guess.

    plan = false_negative_plan(ds, batch_size=32, seed=0, rate=0.1, steps=100)
    plan.pairs          # ds + the added rows
    plan.batches(0)     # epoch 0's batches, row ids into plan.pairs
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
from datasets import Dataset

from core.corpus.bundled import TASK_RELATIONS
from core.corpus.data import GROUP_COLUMN, TASK_COLUMN, epoch_batches
from core.errors import GistlabError

MAX_RATE = 0.5  # beyond this a batch is a handful of meanings: no contrast left to learn from


def check_rate(rate: float) -> float:
    """``rate`` as a float in [0, MAX_RATE], or one clear error."""
    rate = float(rate)
    if not 0.0 <= rate <= MAX_RATE or rate != rate:
        raise GistlabError(f"--false-negatives must be a rate between 0 and {MAX_RATE} (e.g. 0.1), not {rate:g}.")
    return rate


def _column(ds: Dataset, name: str) -> list:
    """One column as a list, through Arrow (a ``Dataset`` column iterates row by row: seconds at 24k)."""
    return ds.with_format("arrow")[name].to_pylist()


def has_ground_truth(columns) -> bool:
    """Whether data with these columns can say which rows mean the same (a ``group`` column, or the
    bundled provenance's ``positive_synset``): what a false-negative rate needs."""
    return GROUP_COLUMN in columns or "positive_synset" in columns


def meaning_keys(ds: Dataset) -> list[tuple | None]:
    """Per row, the key of its meaning under its task's relation (None: unknown), or one clear error
    when the data has no ground truth (no ``group`` column, no ``positive_synset``)."""
    columns = set(ds.column_names)
    if GROUP_COLUMN in columns:
        return [None if g is None else ("group", str(g)) for g in _column(ds, GROUP_COLUMN)]
    if not has_ground_truth(columns):
        raise GistlabError(
            "--false-negatives needs data with ground truth (the bundled data, or a 'group' column that "
            "marks rows of one meaning): without it an added row's meaning would be a guess.")
    tasks = _column(ds, TASK_COLUMN) if TASK_COLUMN in columns else [None] * len(ds)
    categories = _column(ds, "positive_category") if "positive_category" in columns else [None] * len(ds)
    keys = []
    for task, synset, category in zip(tasks, _column(ds, "positive_synset"), categories):
        by_category = TASK_RELATIONS.get(task) == "category"
        value = category if by_category else synset
        keys.append(None if value is None else ("category" if by_category else "synset", str(value)))
    return keys


@cache
def cluster_sizes(batch_size: int, rate: float) -> tuple[int, ...]:
    """Sizes of the clusters one batch is cut into (they sum to ``batch_size``, largest first): a row in
    a cluster of k has k - 1 partners. Clusters of two neighbouring sizes (and one smaller one for
    the rows left over), mixed so the mean partner count per row comes closest to ``rate x batch_size``."""
    target = rate * batch_size * batch_size  # the partner count summed over rows
    best, best_gap = (1,) * batch_size, target
    for a in range(1, batch_size + 1):
        for n_big in range(batch_size // (a + 1) + 1):
            n_small, left = divmod(batch_size - n_big * (a + 1), a)
            sizes = (a + 1,) * n_big + (a,) * n_small + ((left,) if left else ())
            gap = abs(sum(k * (k - 1) for k in sizes) - target)
            if gap < best_gap:
                best, best_gap = sizes, gap
    return best


@dataclass(frozen=True)
class FalseNegativePlan:
    """The data with its added rows and each epoch's batches (row ids into ``pairs``)."""

    pairs: Dataset
    epoch_plans: list[list[list[int]]]
    rate: float
    added_rows: int

    def batches(self, epoch: int) -> list[list[int]]:
        """Epoch ``epoch``'s batches (later epochs than planned repeat the plan in turn)."""
        return self.epoch_plans[epoch % len(self.epoch_plans)]


def add_false_negatives(ds: Dataset, batches: list[list[int]], rate: float,
                        seed: int) -> tuple[Dataset, list[list[int]]]:
    """``ds`` with added rows, and ``batches`` rebuilt as clusters of one meaning (module docstring).

    Each batch keeps as many of its first rows as it has clusters (:func:`cluster_sizes`); each
    kept row is followed by its cluster's added rows. Returns (data, batches); rate 0 returns them
    unchanged."""
    rate = check_rate(rate)
    if rate == 0 or not batches:
        return ds, [list(b) for b in batches]
    keys = meaning_keys(ds)
    pools: dict[tuple, list[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        if key is not None:
            pools[key].append(row)
    rng = np.random.default_rng([seed, 22])
    tasks = _column(ds, TASK_COLUMN) if TASK_COLUMN in ds.column_names else None
    picked, picked_task, out = [], [], []
    next_id = len(ds)
    for batch in batches:
        sizes = cluster_sizes(len(batch), rate)
        rebuilt = []
        for source, size in zip(batch, sizes):
            rebuilt.append(source)
            if size == 1:
                continue
            key = keys[source]
            others = [r for r in pools.get(key, ()) if r != source] if key is not None else []
            if others:
                draw = rng.permutation(others)
                chosen = [int(draw[k % len(draw)]) for k in range(size - 1)]
            else:  # the meaning's only row: repeat it (the classic repeated pair)
                chosen = [source] * (size - 1)
            picked += chosen
            if tasks is not None:
                picked_task += [tasks[source]] * len(chosen)
            rebuilt += list(range(next_id, next_id + len(chosen)))
            next_id += len(chosen)
        out.append(rebuilt)
    table = ds.with_format("arrow")[:]  # honours an indices mapping
    added = table.take(pa.array(picked, type=pa.int64()))
    if tasks is not None:
        where = added.column_names.index(TASK_COLUMN)
        added = added.set_column(where, TASK_COLUMN, pa.array(picked_task, type=table.schema.field(TASK_COLUMN).type))
    return Dataset(pa.concat_tables([table, added]).combine_chunks()), out


def false_negative_plan(ds: Dataset, batch_size: int, seed: int, rate: float, *, homogeneous: bool = False,
                        steps: int | None = None, epochs: float | None = None) -> FalseNegativePlan:
    """The training batches (:func:`core.corpus.data.epoch_batches`, the same for every arm) of as
    many epochs as ``steps`` or ``epochs`` need, with false negatives added at ``rate``; the data they index."""
    first = epoch_batches(ds, batch_size, seed, 0, homogeneous)
    needed = math.ceil(steps / max(len(first), 1)) if steps else math.ceil(epochs or 1)
    planned = [first] + [epoch_batches(ds, batch_size, seed, e, homogeneous) for e in range(1, max(1, needed))]
    flat = [b for epoch in planned for b in epoch]
    pairs, rebuilt = add_false_negatives(ds, flat, rate, seed)
    cut, epoch_plans = 0, []
    for epoch in planned:
        epoch_plans.append(rebuilt[cut:cut + len(epoch)])
        cut += len(epoch)
    return FalseNegativePlan(pairs, epoch_plans, rate, len(pairs) - len(ds))


def with_false_negatives(ds: Dataset, rows: list[int], rate: float, seed: int) -> tuple[Dataset, list[int]]:
    """One sampled batch (``rows``, e.g. core.corpus.data.sample_batch) with false negatives added at
    ``rate``: the data with the added rows and the batch's row ids into it (inspect, what-if)."""
    pairs, [batch] = add_false_negatives(ds, [list(rows)], rate, seed)
    return pairs, batch
