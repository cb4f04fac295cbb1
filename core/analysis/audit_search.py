"""The audit's search: every row against every other row with the guide, into finding tables.

Every text is embedded once with the guide (through its cache, in chunks that report progress),
into one array (core.analysis.spill: above 1 GB a temporary file mapped into memory, so a
million-row audit's embeddings, 3 GB at D = 384, are pages the kernel can drop, not memory the
process must hold).
Small sets (below ``settings.neighbours.exact_below`` rows) are searched exactly: two matrix
products in row chunks of at most ``CHUNK_CELLS`` scores, anchors against all positives (which rows'
positives beat a row's threshold: false negatives, suspect positives) and positives against
positives (near-duplicates, joined with exact copies by union-find).

Larger sets go through a nearest-neighbour index on the positives (core.analysis.neighbours: an
inverted file whose nprobe is raised until its recall against exact search reaches the target,
its lists in a file beside the embeddings, mapped too; nothing N x D is held in memory beyond the
embeddings' pages): each anchor asks for its ``max_above + 2`` best positives (enough to tell
whether at most ``max_above`` others beat its own), each positive for its ``DUPLICATE_K`` nearest
(near-duplicates), and the share of positives above a row's threshold (suspect positives) is
counted on a seeded sample of ``COUNT_SAMPLE`` positives. The index's recall@k against exact
search on a seeded sample of each search's queries (with the nprobe it chose) goes into
``Findings.search`` every time. What each finding
means is in core.analysis.audit's docstring; that module turns the tables into a report with
ground truth, a summary and files.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.analysis.neighbours import Neighbours
from core.analysis.spill import embed_rows
from core.errors import GistlabError
from core.method.heap import bound_heap_growth
from core.method.masking import thresholds

if TYPE_CHECKING:
    from core.analysis.audit import AuditSettings

CHUNK_CELLS = 1 << 24  # scores held at once: 16M float32 = 64 MB
EMBED_CHUNK = 2048  # texts per guide call, so progress moves while the cache fills
DUPLICATE_K = 16  # nearest positives per positive asked of the index for near-duplicates
COUNT_SAMPLE = 4096  # positives on which the index path counts the share above a row's threshold
MAX_COPIES = 32  # copies of a row's positive the index path's a-p search makes room for

Embed = Callable[[list[str]], torch.Tensor]
Progress = Callable[[str, int, int], None]


@dataclass
class Findings:
    """The three finding tables of one search, the dataset rows it covered and their guide positive scores."""

    rows: np.ndarray
    positive_scores: torch.Tensor  # g_i per audited row
    false_negatives: pd.DataFrame
    duplicates: pd.DataFrame
    suspects: pd.DataFrame
    search: dict  # how: {"method": "exact"} or the index, its recall@k and the counting sample


def search(ds, embed: Embed, settings: AuditSettings, progress: Progress | None = None) -> Findings:
    """The findings of ``settings`` on ``ds`` with the guide behind ``embed``; ``progress`` hears
    (stage, done, total) as the work goes."""
    progress = progress or (lambda stage, done, total: None)
    bound_heap_growth()  # one score block after another: without it glibc's heap grows by GBs
    rows = audit_rows(ds, settings)
    _check(ds, rows)
    picked = ds.select_columns(["anchor", "positive"])[rows.tolist()] if len(rows) < len(ds) else \
        ds.select_columns(["anchor", "positive"])[:]
    anchors, positives = picked["anchor"], picked["positive"]
    with tempfile.TemporaryDirectory(prefix="gistlab-audit-") as spill:
        vectors = embed_rows([*anchors, *positives], lambda texts: F.normalize(embed(texts).float(), dim=-1),
                             Path(spill) / "embeddings.npy", EMBED_CHUNK,
                             lambda done, total: progress("embedding", done, total))
        a, p = vectors[:len(anchors)], vectors[len(anchors):]
        g = _positive_scores(a, p)
        t = thresholds(g, settings.margin)

        copies = pd.factorize(np.asarray(positives, dtype=object))[0]  # equal ids: the same positive text
        if settings.neighbours.approximate(len(rows)):
            above, hits, groups, how = _indexed(a, p, t, copies, positives, settings, progress, Path(spill))
        else:
            above, hits = _beats_positive(a, p, t, torch.from_numpy(copies), settings.max_above + 1, progress)
            groups = duplicate_groups(positives, p, settings.duplicate_threshold, progress)
            how = {"method": "exact"}
        weak = above >= settings.weak_share * (len(rows) - 1)
        return Findings(rows, g, _false_negatives(hits, groups, g, rows, anchors, positives),
                        _duplicates(groups, g, rows, anchors, positives, p),
                        _suspects(weak, above, g, rows, anchors, positives), how)


def audit_rows(ds, settings: AuditSettings) -> np.ndarray:
    """The dataset row ids the audit covers: all (of ``settings.task``, if given), or a seeded
    sample of ``settings.limit`` of them, in row order."""
    from core.corpus.data import task_pool

    pool = task_pool(ds, settings.task) if len(ds) else np.arange(0)
    if settings.limit is None or settings.limit >= len(pool):
        return pool
    rng = np.random.default_rng(settings.seed)
    return np.sort(rng.choice(pool, size=settings.limit, replace=False))


def _check(ds, rows: np.ndarray) -> None:
    """Bad inputs in one line: too few rows to compare, or no positives."""
    if len(ds) == 0:
        raise GistlabError("The data has no rows: give at least two pairs to audit.")
    if "positive" not in ds.column_names:
        raise GistlabError("The data has no 'positive' column: an audit compares each anchor with its positive.")
    if len(rows) < 2:
        raise GistlabError(f"The data has {len(rows)} row: an audit compares rows with each other, give at least two.")


def _positive_scores(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """g_i = a_i . p_i per row, a row chunk at a time (the product of the whole arrays would be one
    more N x D array in memory)."""
    size = max(1, CHUNK_CELLS // max(a.shape[1], 1))
    return torch.cat([(a[start:start + size] * p[start:start + size]).sum(dim=1) for start in range(0, len(a), size)])


def _chunks(n: int):
    size = max(1, CHUNK_CELLS // max(n, 1))
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _beats_positive(a: torch.Tensor, p: torch.Tensor, t: torch.Tensor, copies: torch.Tensor, keep_below: int,
                    progress: Progress):
    """Per row: how many other rows' positives score above its threshold; and those (i, j, score)
    pairs for rows with fewer than ``keep_below`` of them. A positive with the row's own text (its
    own, an exact copy: ``copies`` ids equal) is never another one above: its vector is the row's own,
    and whether a matrix product rounds its score a hair above g is not a finding."""
    n = len(a)
    above = torch.zeros(n, dtype=torch.long)
    found = []
    for start, end in _chunks(n):
        scores = a[start:end] @ p.T
        hit = (scores > t[start:end, None]) & (copies[None, :] != copies[start:end, None])
        counts = hit.sum(dim=1)
        above[start:end] = counts
        hit &= (counts < keep_below)[:, None]
        i, j = hit.nonzero(as_tuple=True)
        found.append((i + start, j, scores[i, j]))
        progress("searching", end, 2 * n)
    i, j, s = (torch.cat(x) for x in zip(*found))
    return above.numpy(), (i.numpy(), j.numpy(), s.numpy())


def _indexed(a: torch.Tensor, p: torch.Tensor, t: torch.Tensor, copies: np.ndarray, positives: list[str],
             settings: AuditSettings, progress: Progress, spill: Path):
    """The index path of :func:`search`: (above per row, false-negative hits, duplicate groups, how).
    The index's inverted lists (one more copy of the positives) live in a file in ``spill``.

    A row's false-negative hits come from its ``max_above + 1`` best other positives (the search asks
    for as many more as the most copied positive has rows, up to ``MAX_COPIES`` + 1, so that copies of
    the row's own positive, at exactly g, cannot crowd them out under a positive margin): if all beat
    its threshold, at least that many do and the row gives none (as in the exact path). A row with
    some but fewer is searched again at ``DEEPER`` times the nprobe (``how["recheck"]``: how many
    rows, at what nprobe, and how many it then dropped), since a neighbour the index missed could
    be the one that makes it "beaten by many" instead of a finding; the
    suspect-positive count is the share above the threshold on a seeded sample of positives,
    scaled to the other rows."""
    n, keep_below = len(a), settings.max_above + 1
    a_np, p_np, t_np = a.numpy(), p.numpy(), t.numpy()
    index = Neighbours(p_np, settings.neighbours, approximate=True,
                       progress=lambda done, total: progress("indexing", done, total), lists_dir=spill)
    reach = keep_below + min(int(np.bincount(copies).max()), MAX_COPIES + 1)  # the own positive and its copies too
    _, ids, recall_ap = index.search_measured(a_np, reach, lambda done, total: progress("searching", done, 3 * n))
    scores, ids = _other_positives(a, np.arange(n), p, ids, copies, keep_below)
    hit = (scores > t_np[:, None]) & _others(ids, np.arange(n), copies)
    count = hit.sum(axis=1)
    # A missed neighbour can only lower a row's count, and a row with fewer than keep_below others
    # above its threshold gives findings where exact search gives none: those rows ask again, deeper.
    unsure = np.flatnonzero((count > 0) & (count < keep_below))
    recheck = None
    if len(unsure) and index.ivf is not None and not recall_ap.get("exact"):
        _, deeper, nprobe = index.search_deeper(a_np[unsure], reach)
        scores[unsure], ids[unsure] = _other_positives(a[torch.from_numpy(unsure)], unsure, p, deeper, copies,
                                                       keep_below)
        hit[unsure] = (scores[unsure] > t_np[unsure, None]) & _others(ids[unsure], unsure, copies)
        count = hit.sum(axis=1)
        recheck = {"rows": int(len(unsure)), "nprobe": nprobe, "dropped": int((count[unsure] >= keep_below).sum())}
    hit &= (count < keep_below)[:, None]
    i, k = hit.nonzero()
    hits = (i, ids[i, k], scores[i, k])

    near_scores, near, recall_pp = index.search_measured(
        p_np, DUPLICATE_K + 1, lambda done, total: progress("searching", n + done, 3 * n))
    pairs = (near_scores >= settings.duplicate_threshold) & (near >= 0) & (near != np.arange(n)[:, None])
    x, y = pairs.nonzero()
    groups = _groups(positives, ((min(u, v), max(u, v)) for u, v in zip(x.tolist(), near[x, y].tolist())))

    above = _sampled_above(a_np, p_np, t_np, copies, settings.neighbours.seed,
                           lambda done, total: progress("searching", 2 * n + done * n // total, 3 * n))
    how = {"method": "index", "index": index.describe(),
           "recall_at_k": {"a-p": recall_ap, "p-p": recall_pp},
           "above_counted_on": int(min(COUNT_SAMPLE, n)), **({"recheck": recheck} if recheck else {})}
    return above, hits, groups, how


def _other_positives(a_rows: torch.Tensor, rows: np.ndarray, p: torch.Tensor, ids: np.ndarray, copies: np.ndarray,
                     k: int):
    """(scores, ids) of the first ``k`` found positives of each query row (row numbers ``rows``, their
    anchors ``a_rows``) with another text than its own positive, rescored as g is, best first."""
    return _first_others(_rescored(a_rows, p, ids), ids, (ids >= 0) & ~_others(ids, rows, copies), k)


def _others(ids: np.ndarray, rows: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """Which found ids (-1: none) are other rows' positives with another text than row ``rows``' own."""
    return (ids >= 0) & (copies[np.maximum(ids, 0)] != copies[rows][:, None])


def _rescored(a: torch.Tensor, p: torch.Tensor, ids: np.ndarray) -> np.ndarray:
    """The scores of the found (row, id) pairs computed as g is, element by element (FAISS rounds
    its own differently): a copy of a row's positive then scores exactly g, never above its
    threshold, as in the exact path. Missing ids (-1) score -inf. Rows in blocks of at most
    ``CHUNK_CELLS`` products (k of them per row, D wide)."""
    out = np.full(ids.shape, -np.inf, dtype=np.float32)
    rows = max(1, CHUNK_CELLS // max(ids.shape[1] * a.shape[1], 1))
    for start in range(0, len(ids), rows):
        block = torch.from_numpy(ids[start:start + rows])
        found = block >= 0
        scores = (a[start:start + rows, None, :] * p[block.clamp(min=0)]).sum(dim=-1)
        out[start:start + rows] = torch.where(found, scores, torch.tensor(float("-inf"))).numpy()
    return out


def _first_others(scores: np.ndarray, ids: np.ndarray, own: np.ndarray, k: int):
    """Per row, the first ``k`` results that are not ``own`` (the row's own positive text; best first)."""
    order = np.argsort(own, axis=1, kind="stable")[:, :k]  # own moves to the end, the rest keep their order
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _sampled_above(a: np.ndarray, p: np.ndarray, t: np.ndarray, copies: np.ndarray, seed: int,
                   progress) -> np.ndarray:
    """Per row, how many other positives beat its threshold, estimated from a seeded sample of
    ``COUNT_SAMPLE`` positives (exact when the sample is all of them); positives with the row's own
    text are not others, as in the exact path."""
    n = len(p)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, COUNT_SAMPLE), replace=False))
    base, sample_copies = p[sample].T, copies[sample]
    above = np.zeros(n, dtype=np.int64)
    size = max(1, CHUNK_CELLS // len(sample))
    for start in range(0, n, size):
        end = min(start + size, n)
        own = sample_copies[None, :] == copies[start:end, None]
        hit = ((a[start:end] @ base) > t[start:end, None]) & ~own
        others = len(sample) - own.sum(axis=1)
        above[start:end] = np.rint(hit.sum(axis=1) / np.maximum(others, 1) * (n - 1))
        progress(end, n)
    return above


class UnionFind:
    """Rows joined into groups (union-find); a group is named by its lowest row."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def root(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def join(self, rows) -> None:
        """Put all ``rows`` in one group."""
        rows = [int(r) for r in rows]
        for r in rows[1:]:
            a, b = self.root(rows[0]), self.root(r)
            if a != b:
                self.parent[max(a, b)] = min(a, b)

    def roots(self) -> np.ndarray:
        return np.array([self.root(k) for k in range(len(self.parent))], dtype=np.int64)


def normalise(text: str) -> str:
    """A text as compared for exact duplicates: case-folded, spaces collapsed, end punctuation off."""
    return re.sub(r"[\s.;:!?,]+$", "", " ".join(text.casefold().split()))


def duplicate_groups(positives: list[str], p: torch.Tensor, threshold: float,
                     progress: Progress | None = None) -> np.ndarray:
    """Group label per row (-1: none): rows whose positives are equal once normalised or score at
    least ``threshold`` alike with the guide, joined transitively (union-find)."""
    n = len(positives)

    def pairs():
        for start, end in _chunks(n):
            scores = p[start:end] @ p.T
            i, j = (scores >= threshold).nonzero(as_tuple=True)
            yield from zip((i + start).tolist(), j.tolist())
            if progress is not None:
                progress("searching", n + end, 2 * n)

    return _groups(positives, pairs())


def _groups(positives: list[str], pairs) -> np.ndarray:
    """Group label per row (-1: none) from equal normalised positives and the row ``pairs`` (x, y) given."""
    n = len(positives)
    union = UnionFind(n)
    first: dict[str, int] = {}
    for k, text in enumerate(positives):
        union.join([first.setdefault(normalise(text), k), k])
    for x, y in pairs:
        if x < y:  # each pair once (both orders come)
            union.join([x, y])
    roots = union.roots()
    sizes = np.bincount(roots, minlength=n)
    return np.where(sizes[roots] > 1, roots, -1)


def _false_negatives(hits, groups, g, rows, anchors, positives) -> pd.DataFrame:
    """One line per unordered row pair, from rows with few hits, outside one duplicate group."""
    i, j, s = hits
    keep = ~((groups[i] >= 0) & (groups[i] == groups[j]))
    i, j, s = i[keep], j[keep], s[keep]
    g_np = g.numpy()
    frame = pd.DataFrame({"i": i, "j": j, "guide_score": s, "positive_score": g_np[i]})
    frame["above_by"] = frame["guide_score"] - frame["positive_score"]
    frame["lo"], frame["hi"] = np.minimum(i, j), np.maximum(i, j)
    frame["both_ways"] = frame.groupby(["lo", "hi"])["i"].transform("size") > 1
    frame = frame.sort_values(["above_by", "lo", "hi"], ascending=[False, True, True])
    frame = frame.drop_duplicates(["lo", "hi"]).reset_index(drop=True)
    anchors_np, positives_np = np.array(anchors, dtype=object), np.array(positives, dtype=object)
    out = pd.DataFrame({
        "finding": [f"fn:{rows[x]}:{rows[y]}" for x, y in zip(frame["i"], frame["j"])],
        "row": rows[frame["i"]], "other_row": rows[frame["j"]],
        "anchor": anchors_np[frame["i"]], "positive": positives_np[frame["i"]],
        "other_positive": positives_np[frame["j"]], "other_anchor": anchors_np[frame["j"]],
        "guide_score": frame["guide_score"].astype(float), "positive_score": frame["positive_score"].astype(float),
        "above_by": frame["above_by"].astype(float), "both_ways": frame["both_ways"].astype(bool),
    })
    return out


def _duplicates(groups, g, rows, anchors, positives, p) -> pd.DataFrame:
    """One line per row of each duplicate group: the group's finding id, its keeper, how alike."""
    members = np.flatnonzero(groups >= 0)
    columns = ["finding", "row", "keeper_row", "keeper", "kind", "anchor", "positive", "similarity",
               "positive_score", "size"]
    if not len(members):
        return pd.DataFrame(columns=columns)
    g_np = g.numpy()
    frame = pd.DataFrame({"local": members, "group": groups[members], "positive_score": g_np[members]})
    frame = frame.sort_values(["group", "positive_score", "local"], ascending=[True, False, True])
    keeper = frame.groupby("group")["local"].transform("first").to_numpy()
    local = frame["local"].to_numpy()
    norm_anchor = np.array([normalise(anchors[k]) for k in local], dtype=object)
    norm_positive = np.array([normalise(positives[k]) for k in local], dtype=object)
    keeper_anchor = np.array([normalise(anchors[k]) for k in keeper], dtype=object)
    keeper_positive = np.array([normalise(positives[k]) for k in keeper], dtype=object)
    kind = np.where((norm_anchor == keeper_anchor) & (norm_positive == keeper_positive), "copy",
                    np.where(norm_positive == keeper_positive, "same positive", "near-duplicate"))
    similarity = (p[torch.tensor(local)] * p[torch.tensor(keeper)]).sum(dim=1).numpy()
    first_row = frame.groupby("group")["local"].transform("min").to_numpy()
    return pd.DataFrame({
        "finding": [f"dup:{rows[k]}" for k in first_row], "row": rows[local], "keeper_row": rows[keeper],
        "keeper": local == keeper, "kind": np.where(local == keeper, "keeper", kind),
        "anchor": [anchors[k] for k in local], "positive": [positives[k] for k in local],
        "similarity": similarity.astype(float), "positive_score": frame["positive_score"].astype(float).to_numpy(),
        "size": frame.groupby("group")["local"].transform("size").to_numpy(),
    }, columns=columns)


def _suspects(weak, above, g, rows, anchors, positives) -> pd.DataFrame:
    """One line per suspect-positive row, lowest guide positive score first."""
    local = np.flatnonzero(weak)
    g_np = g.numpy()
    local = local[np.lexsort((local, g_np[local]))]
    return pd.DataFrame({
        "finding": [f"pos:{rows[k]}" for k in local], "row": rows[local],
        "anchor": [anchors[k] for k in local], "positive": [positives[k] for k in local],
        "positive_score": g_np[local].astype(float), "candidates_above": above[local].astype(int),
        "share_above": above[local] / max(len(rows) - 1, 1),
    })
