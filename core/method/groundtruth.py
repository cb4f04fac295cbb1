"""Ground truth for masks: is each in-batch candidate really a false negative of its row?

The guide's verdict (:func:`core.method.masking.guided_mask`) says which candidates look at least as close
as a row's own positive. Where the data says where its texts came from, that verdict can be checked.
A candidate of row i is a **false negative** when it would be a correct positive for row i under the
row's *task's own relation* (:data:`core.corpus.bundled.TASK_RELATIONS`): the same WordNet synset for
the definition tasks (usage example -> definition, words -> definition), the same lexicographer
category for ``category_triplet``, the same ``group`` for user data. Every candidate gets one
relation, the first that holds:

- ``false-negative``: a right answer for row i by its task's relation. Masking it is a *catch*.
- ``same-word``: shares a lemma (a word) with row i's anchor or positive synset: another sense.
- ``same-category``: same lexicographer category as row i, where that is not the task's relation.
- ``unrelated``: none of these.

``same-word`` and ``same-category`` together are the **related hard negatives**: close, but wrong
answers; masking them is a *cost*, as is masking an unrelated one. So every masked candidate is in
exactly one of three shares (:data:`SHARES`): false negative, related hard negative, unrelated.

Sources, read from a batch's columns (core/corpus/data.py keeps them): the bundled data's provenance
``<column>_synset`` / ``<column>_lemmas`` / ``<column>_category`` for every text column, the ``task``
column (which relation counts), and an optional ``group`` (anchor and positive of a row are in its
group; negatives are in none). Data with neither provenance nor group has no ground truth:
:func:`ground_truth` returns None, and every consumer then says "no ground truth" instead of showing zeros.

Layout: :func:`relations` gives an int8 [B, C] tensor per block, cell for cell like
:class:`~core.method.masking.BatchMask` (a-p, a-a, p-p, a-n; negative columns side by side).
Quality of a mask (:func:`mask_quality`): **precision** = false negatives masked / masked;
**recall** = false negatives masked / false negatives present (undefined, NaN, where a batch holds
none: say so, never draw an empty chart); ``share_related`` and ``share_unrelated`` are the costs
beside precision (the three add up to 1). Per block and per task, plus ``all``.

    truth = ground_truth(ds[rows], ["negative"])
    quality = mask_quality(mask, relations(truth, mask.blocks), tasks)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.corpus.bundled import TASK_RELATIONS
from core.corpus.data import GROUP_COLUMN, TASK_COLUMN
from core.method.masking import BatchMask

RELATIONS = ("false-negative", "same-word", "same-category", "unrelated")
FALSE_NEGATIVE, SAME_WORD, SAME_CATEGORY, UNRELATED = range(len(RELATIONS))
RELATED = (SAME_WORD, SAME_CATEGORY)  # the related hard negatives
SHARES = ("false negative", "related hard negative", "unrelated")  # the three-way split of a mask
SHARE_OF = {"false-negative": SHARES[0], "same-word": SHARES[1], "same-category": SHARES[1],
            "unrelated": SHARES[2], "same-meaning": SHARES[0]}  # "same-meaning": label of runs before issue 22
NO_GROUND_TRUTH = "no ground truth"
NO_FALSE_NEGATIVES = "no false negatives in this batch: recall undefined"
ALL = "all"
QUALITY_COLUMNS = (
    "task", "block", "candidates", "masked", *(f"masked_{r}" for r in RELATIONS),
    "false_negatives", "caught", "missed", "precision", "share_related", "share_unrelated", "recall",
)


@dataclass(frozen=True)
class TextTruth:
    """Where the texts of one column come from, one entry per batch row (-1 = unknown).

    ``synset``, ``group`` and ``category`` are ids shared across the batch's columns; ``words`` is
    a bool [B, V] multi-hot over the batch's lemmas (lower-case)."""

    synset: torch.Tensor
    group: torch.Tensor
    category: torch.Tensor
    words: torch.Tensor


@dataclass(frozen=True)
class GroundTruth:
    """A batch's ground truth: the anchors', the positives' and each negative column's, and per row
    whether its task's relation is the category (``by_category``, bool [B]) rather than the synset."""

    anchor: TextTruth
    positive: TextTruth
    negatives: tuple[TextTruth, ...]
    source: str  # "wordnet", "group" or "wordnet+group"
    by_category: torch.Tensor | None = None  # None: every row by synset / group


def ground_truth(columns: dict[str, list], negative_names: Sequence[str] = ()) -> GroundTruth | None:
    """The ground truth of a batch from its picked columns (e.g. ``ds[rows]``; the texts
    themselves are not needed), or None without any.

    Provenance counts when both ``anchor_synset`` and ``positive_synset`` are there (a negative
    column without its own ``_synset`` is unknown: never a false negative, same word or category); a
    ``group`` column counts on its own. ``task`` picks each row's relation (:data:`TASK_RELATIONS`;
    an unknown task or none: the synset, or the group).
    """
    names = ["anchor", "positive", *negative_names]
    wordnet = all(f"{n}_synset" in columns for n in names[:2])
    grouped = GROUP_COLUMN in columns
    if not (wordnet or grouped):
        return None
    n = len(columns[GROUP_COLUMN if grouped else "anchor_synset"])
    ids: dict[tuple[str, object], int] = {}
    unknown = [None] * n
    # ids[role, kind, row]: synset, group, category ids shared by all roles (-1 unknown); numpy,
    # then one tensor: a batch costs well under a millisecond (this runs every training step)
    codes = np.full((len(names), 3, n), -1, dtype=np.int64)
    words = {name: [{w.lower() for w in (ws or ())} for ws in columns.get(f"{name}_lemmas", [()] * n)]
             for name in names}
    vocab = {w: k for k, w in enumerate(sorted(set().union(*(s for col in words.values() for s in col))))}
    multi_hot = np.zeros((len(names), n, len(vocab)), dtype=bool)
    for k, name in enumerate(names):
        group = columns[GROUP_COLUMN] if grouped and k < 2 else unknown
        for j, (kind, values) in enumerate((
                ("synset", columns.get(f"{name}_synset", unknown) if wordnet else unknown),
                ("group", group),
                ("category", columns.get(f"{name}_category", unknown) if wordnet else unknown))):
            codes[k, j] = [-1 if v is None else ids.setdefault((kind, str(v)), len(ids)) for v in values]
        cells = [(row, vocab[w]) for row, row_words in enumerate(words[name]) for w in row_words]
        if cells:
            rows, cols = zip(*cells)
            multi_hot[k, list(rows), list(cols)] = True
    codes_t, words_t = torch.from_numpy(codes), torch.from_numpy(multi_hot)
    texts = [TextTruth(codes_t[k, 0], codes_t[k, 1], codes_t[k, 2], words_t[k]) for k in range(len(names))]
    source = "+".join(s for s, on in (("wordnet", wordnet), ("group", grouped)) if on)
    tasks = columns.get(TASK_COLUMN)
    by_category = (torch.tensor([TASK_RELATIONS.get(t) == "category" for t in tasks])
                   if wordnet and tasks is not None else None)
    return GroundTruth(texts[0], texts[1], tuple(texts[2:]), source, by_category)


def stack_truths(truths: Sequence[GroundTruth]) -> GroundTruth:
    """Several batches' ground truth (one size, same columns) as one with a leading batch dim
    ([N, B] ids, [N, B, V] words padded to the widest vocabulary), for :func:`relations` on all
    batches at once. Ids stay per batch: only cells of one batch are ever compared."""
    def stack(columns: Sequence[TextTruth]) -> TextTruth:
        width = max(c.words.shape[-1] for c in columns)
        words = torch.stack([torch.nn.functional.pad(c.words, (0, width - c.words.shape[-1])) for c in columns])
        return TextTruth(*(torch.stack([getattr(c, f) for c in columns]) for f in ("synset", "group", "category")),
                         words)

    first = truths[0]
    by_category = (None if all(t.by_category is None for t in truths) else
                   torch.stack([t.by_category if t.by_category is not None else torch.zeros(len(t.anchor.synset),
                                dtype=torch.bool) for t in truths]))
    return GroundTruth(stack([t.anchor for t in truths]), stack([t.positive for t in truths]),
                       tuple(stack([t.negatives[k] for t in truths]) for k in range(len(first.negatives))),
                       first.source, by_category)


def _concat(columns: Sequence[TextTruth]) -> TextTruth:
    """Negative columns side by side (rows are the last id dim, the words' second last)."""
    return TextTruth(*(torch.cat([getattr(c, f) for c in columns], dim=-1) for f in ("synset", "group", "category")),
                     torch.cat([c.words for c in columns], dim=-2))


def _same(row_a: torch.Tensor, row_p: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """[..., B, C]: the candidate's id is known and equals the row's anchor's or positive's."""
    c = cand[..., None, :]
    return (c >= 0) & ((c == row_a[..., None]) | (c == row_p[..., None]))


def relations(truth: GroundTruth, blocks: Iterable[str]) -> dict[str, torch.Tensor]:
    """The relation code (index into :data:`RELATIONS`) of every cell of every block, int8 [B, C]
    ([N, B, C] for :func:`stack_truths` of N batches).

    The relation is to the *row* (its anchor and positive together), whatever the block's row side:
    in p-p, p_j is a false negative of a definition task's row i when it shares a synset with a_i or
    p_i, of a ``category_triplet`` row when it shares their category.
    """
    a, p = truth.anchor, truth.positive
    row_words = (a.words | p.words).int()  # int, not float: no BLAS thread pool for a tiny product
    columns = {"a-p": p, "a-a": a, "p-p": p}
    if truth.negatives:
        columns["a-n"] = _concat(truth.negatives)
    out = {}
    for block in blocks:
        cand = columns[block]
        meaning = _same(a.synset, p.synset, cand.synset) | _same(a.group, a.group, cand.group)
        word = (row_words @ cand.words.int().transpose(-1, -2)) > 0
        category = _same(a.category, p.category, cand.category)
        if truth.by_category is not None:  # category_triplet rows: the category is the right answer
            meaning = meaning | (category & truth.by_category[..., None])
        code = torch.full(meaning.shape, UNRELATED, dtype=torch.int8)
        for rel, hit in ((SAME_CATEGORY, category), (SAME_WORD, word), (FALSE_NEGATIVE, meaning)):
            code[hit] = rel  # strongest relation written last
        out[block] = code
    return out


def relation_counts(mask: BatchMask, rel: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per block, int [B, 2, R]: per row, candidates of each relation ([:, 0]) and masked ones ([:, 1])."""
    out = {}
    for block in mask.blocks:
        onehot = torch.nn.functional.one_hot(rel[block].long(), len(RELATIONS))  # [B, C, R]
        cand = mask.candidates[block].cpu()
        masked = mask.masked_candidates(block).cpu()
        out[block] = torch.stack([(onehot * cand[..., None]).sum(1), (onehot * masked[..., None]).sum(1)], 1)
    return out


def quality_record(task: str, block: str, counts: torch.Tensor) -> dict:
    """One row of :func:`mask_quality` from counts [2, R] (candidates, masked per relation).
    Precision and the two cost shares are NaN when nothing was masked; recall is NaN when no false
    negative was present (:data:`NO_FALSE_NEGATIVES`)."""
    cand, masked = (int(x) for x in counts.sum(1))
    per_rel = counts[1].tolist()
    present, caught = int(counts[0, FALSE_NEGATIVE]), per_rel[FALSE_NEGATIVE]
    related = sum(per_rel[r] for r in RELATED)
    nan = float("nan")
    return {
        "task": task, "block": block, "candidates": cand, "masked": masked,
        **{f"masked_{r}": n for r, n in zip(RELATIONS, per_rel)},
        "false_negatives": present, "caught": caught, "missed": present - caught,
        "precision": caught / masked if masked else nan,
        "share_related": related / masked if masked else nan,
        "share_unrelated": per_rel[UNRELATED] / masked if masked else nan,
        "recall": caught / present if present else nan,
    }


def mask_quality(mask: BatchMask, rel: dict[str, torch.Tensor], tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision and recall of ``mask`` against the ground truth ``rel``, per block and per task.

    One row per (task, block), ``all`` pooling blocks and (first) tasks; columns
    :data:`QUALITY_COLUMNS`. ``tasks`` is each batch row's task (None: only ``all``).
    """
    counts = relation_counts(mask, rel)
    groups = {ALL: slice(None)}
    if tasks is not None:
        names = list(tasks)
        groups |= {t: torch.tensor([x == t for x in names]) for t in dict.fromkeys(names)}
    records = []
    for task, rows in groups.items():
        per_block = {b: c[rows].sum(0) for b, c in counts.items()}
        for block, c in [*per_block.items(), (ALL, sum(per_block.values()))]:
            records.append(quality_record(task, block, c))
    return pd.DataFrame.from_records(records, columns=list(QUALITY_COLUMNS))


def quality_table(quality: pd.DataFrame) -> pd.DataFrame:
    """:func:`mask_quality`'s rows a reader needs (every block pooled over tasks, every task pooled over
    blocks) with the columns that define the three-way split: masked, false negatives present,
    caught, missed, precision, recall, related and unrelated shares."""
    rows = quality[(quality.task == ALL) | (quality.block == ALL)]
    return rows[["task", "block", "masked", "false_negatives", "caught", "missed", "precision", "recall",
                 "share_related", "share_unrelated"]].rename(columns={
                     "false_negatives": "fn_present", "share_related": "related", "share_unrelated": "unrelated"})


def in_words(record) -> str:
    """One row of :func:`mask_quality` (or the same keys) as a sentence: the false negatives present,
    caught and missed, precision and recall with their counts, and the three shares of the mask."""
    present, caught, masked = int(record["false_negatives"]), int(record["caught"]), int(record["masked"])
    pct = lambda x: "n/a" if x != x else f"{x:.0%}"  # noqa: E731 (NaN: undefined)
    found = (NO_FALSE_NEGATIVES if not present else
             f"false negatives: {present} present, {caught} caught, {present - caught} missed "
             f"(recall {caught}/{present} = {pct(record['recall'])})")
    if not masked:
        return f"{found}; nothing masked: precision undefined"
    return (f"{found}; precision {caught}/{masked} = {pct(record['precision'])} of the masked are false "
            f"negatives, {pct(record['share_related'])} related hard negatives (same word or category, not "
            f"the task's relation), {pct(record['share_unrelated'])} unrelated")


STEP_KEYS = ("fn_present", "fn_caught", "fn_precision", "fn_recall", "related_share", "unrelated_share")
"""Keys of :func:`step_quality` in metrics.jsonl (runs before issue 22 wrote ``mask_precision`` and
``mask_recall`` under an older definition: readers treat those as absent, never as these)."""


def step_quality(mask: BatchMask, rel: dict[str, torch.Tensor]) -> dict[str, float | int | None]:
    """One training step's mask against the ground truth, for metrics.jsonl: false negatives present
    and caught, precision and recall, the two cost shares (pooled, :data:`STEP_KEYS`) and
    ``fn_precision_<block>`` / ``fn_recall_<block>``; None where undefined (nothing masked, or no
    false negative present)."""
    counts = {b: c.sum(0) for b, c in relation_counts(mask, rel).items()}
    value = lambda x: None if x != x else round(x, 4)  # noqa: E731 (NaN: undefined)
    pooled = quality_record(ALL, ALL, sum(counts.values()))
    out = {"fn_present": pooled["false_negatives"], "fn_caught": pooled["caught"],
           "fn_precision": value(pooled["precision"]), "fn_recall": value(pooled["recall"]),
           "related_share": value(pooled["share_related"]), "unrelated_share": value(pooled["share_unrelated"])}
    for block, c in counts.items():
        record = quality_record(ALL, block, c)
        out |= {f"fn_precision_{block}": value(record["precision"]), f"fn_recall_{block}": value(record["recall"])}
    return out
