"""Top-k neighbours by inner product on L2-normalised embeddings: exactly, or through a FAISS index.

The whole-data-set searches (the audit's, mining's candidate retrieval) ask each query row for its
k best base rows. Exactly, that is a matrix product per row chunk (N^2 cost): the reference, and
the way for small sets. Beyond ``exact_below`` rows an approximate index (``faiss-cpu``, any
``faiss.index_factory`` string: ``HNSW64,Flat`` with ``efSearch=256`` by default, which on 10k
random 384-d unit vectors, the hardest case, measured recall@5 0.98, where ``HNSW32`` with
``efSearch=128`` had 0.87) answers in near-linear time; the scores it returns are the exact inner
products of the rows it found, only a true neighbour can be missed. :func:`measure_recall` says how often: recall@k of the
index against exact search on a seeded sample of queries, which every approximate run reports.

Inputs are float32 arrays, memory-mapped ones included: the exact search reads them chunk by
chunk without a copy; a flat FAISS index holds its own copy of the base (N x D x 4 bytes) and
HNSW64 its links (~0.5 KB per row). FAISS builds an HNSW graph on all cores; its search results
were the same across runs here, but a parallel build is not promised to be bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import GistlabError

METHODS = ("auto", "exact", "index")
CHUNK_CELLS = 1 << 24  # exact scores held at once: 16M float32 = 64 MB
ADD_CHUNK = 65536  # rows added to (or searched in) the index per call, so progress moves

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class NeighbourSettings:
    """``method``: "exact", "index" (approximate) or "auto" (exact below ``exact_below`` rows);
    ``index`` and ``params``: the FAISS factory string and its search parameters;
    ``recall_queries``: the seeded sample on which an approximate run measures its recall."""

    method: str = "auto"
    exact_below: int = 50_000
    index: str = "HNSW64,Flat"
    params: str = "efSearch=256"
    recall_queries: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise GistlabError(f"--search {self.method!r}: give one of {', '.join(METHODS)}.")
        if self.exact_below < 0 or self.recall_queries < 1:
            raise GistlabError("exact_below must be at least 0 and recall_queries at least 1.")

    def approximate(self, rows: int) -> bool:
        """Whether a search over ``rows`` base rows goes through the index."""
        return self.method == "index" or (self.method == "auto" and rows >= self.exact_below)


def _float32(x) -> np.ndarray:
    """``x`` as a C-contiguous float32 array, without a copy where it already is one (a memmap too)."""
    if hasattr(x, "numpy"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def exact_top_k(queries, base, k: int, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best base rows per query by inner product, best first (ties: lower id first):
    (scores, ids), each (queries, k). Chunked matrix products: the reference search."""
    queries, base = _float32(queries), _float32(base)
    k = min(k, len(base))
    scores_out = np.empty((len(queries), k), dtype=np.float32)
    ids_out = np.empty((len(queries), k), dtype=np.int64)
    size = max(1, CHUNK_CELLS // max(len(base), 1))
    for start in range(0, len(queries), size):
        scores = queries[start:start + size] @ base.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(base) else \
            np.broadcast_to(np.arange(len(base)), scores.shape)
        picked = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -picked), axis=1)
        ids_out[start:start + size] = np.take_along_axis(part, order, axis=1)
        scores_out[start:start + size] = np.take_along_axis(picked, order, axis=1)
        if progress is not None:
            progress(min(start + size, len(queries)), len(queries))
    return scores_out, ids_out


class Neighbours:
    """A base set to search: exactly (``approximate=False``) or through a FAISS index built on it."""

    def __init__(self, base, settings: NeighbourSettings = NeighbourSettings(), approximate: bool | None = None,
                 progress: Progress | None = None) -> None:
        self.base = _float32(base)
        self.settings = settings
        self.approximate = settings.approximate(len(self.base)) if approximate is None else approximate
        self.index = self._build(progress) if self.approximate else None

    def _build(self, progress: Progress | None):
        import faiss

        n, d = self.base.shape
        try:
            index = faiss.index_factory(d, self.settings.index, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as e:
            reason = str(e).splitlines()[0]
            raise GistlabError(f"FAISS index {self.settings.index!r} cannot be built: {reason}") from None
        if not index.is_trained:  # IVF, PQ: trained on a seeded sample
            sample = np.random.default_rng(self.settings.seed).choice(n, size=min(n, 100_000), replace=False)
            index.train(self.base[np.sort(sample)])
        for start in range(0, n, ADD_CHUNK):
            index.add(self.base[start:start + ADD_CHUNK])
            if progress is not None:
                progress(min(start + ADD_CHUNK, n), n)
        if self.settings.params:
            faiss.ParameterSpace().set_index_parameters(index, self.settings.params)
        return index

    def search(self, queries, k: int, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the ``k`` best base rows per query, best first; an id of -1 means none found."""
        if not self.approximate:
            return exact_top_k(queries, self.base, k, progress)
        queries = _float32(queries)
        k = min(k, len(self.base))
        scores, ids = np.empty((len(queries), k), np.float32), np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), ADD_CHUNK):
            scores[start:start + ADD_CHUNK], ids[start:start + ADD_CHUNK] = \
                self.index.search(queries[start:start + ADD_CHUNK], k)
            if progress is not None:
                progress(min(start + ADD_CHUNK, len(queries)), len(queries))
        return scores, ids

    def describe(self) -> str:
        return f"FAISS {self.settings.index} ({self.settings.params})" if self.approximate else "exact"


def recall_at_k(found: np.ndarray, found_scores: np.ndarray, exact_scores: np.ndarray, tol: float = 1e-5) -> float:
    """Share of the exact top-k that the approximate top-k holds, over all rows, ties counted as
    found: a found id (not -1) is right when its score reaches the exact k-th score (less ``tol``),
    since an exact search could have picked it among equals."""
    right = (found >= 0) & (found_scores >= exact_scores[:, -1:] - tol)
    return float(np.minimum(right.sum(axis=1), exact_scores.shape[1]).sum() / max(exact_scores.size, 1))


def recall_sample(rows: int, settings: NeighbourSettings) -> np.ndarray:
    """The seeded query rows (sorted) on which an approximate search measures its recall."""
    size = min(rows, settings.recall_queries)
    return np.sort(np.random.default_rng(settings.seed).choice(rows, size=size, replace=False))


def measure_recall(neighbours: Neighbours, queries, k: int) -> dict:
    """Recall@k of ``neighbours`` against exact search, on the seeded sample of ``queries``' rows."""
    sample = recall_sample(len(queries), neighbours.settings)
    picked = _float32(queries)[sample]
    found_scores, found = neighbours.search(picked, k)
    exact_scores, _ = exact_top_k(picked, neighbours.base, k)
    return {"k": int(min(k, len(neighbours.base))), "queries": int(len(sample)),
            "recall": round(recall_at_k(found, found_scores, exact_scores), 4)}


def search_line(how: dict) -> str:
    """One line on how a search ran: exactly, or through which index at what measured recall@k."""
    method = how.get("index", how.get("method", "exact"))
    recalls = how.get("recall_at_k", {})
    if "recall" in recalls:
        recalls = {"": recalls}
    measured = "; ".join(f"recall@{r['k']} {r['recall']:.4f}{f' ({side})' if side else ''}"
                         for side, r in recalls.items())
    queries = next(iter(recalls.values()), {}).get("queries")
    return f"search: {method}" + (f", {measured} against exact search on {queries} seeded queries" if measured else "")
