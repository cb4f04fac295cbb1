"""Top-k neighbours by inner product on L2-normalised embeddings: exactly, or through a FAISS index.

The whole-data-set searches (the audit's, mining's candidate retrieval) ask each query row for its
k best base rows. Exactly, that is a matrix product per row chunk (N^2 cost): the reference, and
the way for small sets. Beyond ``exact_below`` rows an approximate index (``faiss-cpu``, any
``faiss.index_factory`` string) answers far faster; the scores it returns are the exact inner
products of the rows it found, only a true neighbour can be missed.

The default index is an inverted file, ``IVF{nlist},Flat`` with ``nlist`` = 4 sqrt(N) lists (at most
one per ``TRAIN_PER_LIST`` rows), its coarse quantiser trained by k-means on a seeded sample of
``TRAIN_PER_LIST`` rows per list. A query compares itself with the nlist centroids and scans the
``nprobe`` lists nearest to it (~sqrt(N) / 4 rows each): N queries cost ~N^1.5 at a fixed nprobe
(against N^2 exactly), with the constant set by how few lists suffice. ``nprobe`` is not guessed:
:meth:`Neighbours.search_measured` measures recall@k against exact search on a seeded sample of the
queries (:func:`recall_sample`) at nprobe 1, 2, 4, ... and keeps the first that reaches
``target_recall``, then searches every query with it and reports that measured recall (on the
sample that chose it). Where a quarter of the lists do not reach it (data with no near neighbours,
such as isotropic random vectors, where an index must scan nearly everything), those queries are
searched exactly instead, which then costs no more, and the report says so. HNSW64 with
efSearch=256, the previous default, had recall 0.55 at 100k random 384-d rows and was slower than
exact search (docs/PERFORMANCE.md).

Inputs are float32 arrays, memory-mapped ones included: the exact search reads them chunk by
chunk without a copy. An IVF-Flat index stores the base once more, in its inverted lists (N x D x 4
bytes, 1.5 GB at a million 384-d rows): in memory by default, or, given ``lists_dir``, in a file
there that FAISS maps into memory (``OnDiskInvertedLists``), so for a big base the lists too are
pages the kernel can drop and the process holds only O(N) ids and O(sqrt N) centroids and training
rows. The file is written once, list by list, after every row's list is known (sizes first, then
each list's rows): no list grows by copying. FAISS uses all cores (OpenMP); its search results
were the same across runs here, and the same with the lists in memory or on disk.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import GistlabError

METHODS = ("auto", "exact", "index")
CHUNK_CELLS = 1 << 24  # exact scores held at once: 16M float32 = 64 MB
ADD_CHUNK = 65536  # rows added to (or searched in) the index per call, so progress moves
LISTS_PER_ROOT = 4  # an IVF index's lists: 4 sqrt(N)
TRAIN_PER_LIST = 40  # k-means training rows per list (FAISS warns below 39)
MAX_PROBED = 4  # a tuned index probes at most 1/4 of its lists; beyond, exact search is as cheap
DEEPER = 8  # search_deeper scans 8 times the lists

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class NeighbourSettings:
    """``method``: "exact", "index" (approximate) or "auto" (exact below ``exact_below`` rows);
    ``index`` and ``params``: the FAISS factory string (``{nlist}``: 4 sqrt(N) lists) and its search
    parameters; none given for an IVF index: ``nprobe`` is raised until the recall measured against
    exact search on the seeded sample of ``recall_queries`` queries reaches ``target_recall``."""

    method: str = "auto"
    exact_below: int = 50_000
    index: str = "IVF{nlist},Flat"
    params: str = ""
    target_recall: float = 0.95
    recall_queries: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise GistlabError(f"--search {self.method!r}: give one of {', '.join(METHODS)}.")
        if self.exact_below < 0 or self.recall_queries < 1:
            raise GistlabError("exact_below must be at least 0 and recall_queries at least 1.")
        if not 0.0 < self.target_recall <= 1.0:
            raise GistlabError(f"The target recall is a share: give a value in (0, 1], not {self.target_recall}.")

    def approximate(self, rows: int) -> bool:
        """Whether a search over ``rows`` base rows goes through the index."""
        return self.method == "index" or (self.method == "auto" and rows >= self.exact_below)


def lists(rows: int) -> int:
    """An IVF index's number of lists for ``rows`` base rows: 4 sqrt(N), at least 1, at most one per
    ``TRAIN_PER_LIST`` rows (k-means needs that many points per centroid)."""
    return max(1, min(round(LISTS_PER_ROOT * math.sqrt(rows)), rows // TRAIN_PER_LIST))


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
    """A base set to search: exactly (``approximate=False``) or through a FAISS index built on it,
    an IVF-Flat index's inverted lists in a file under ``lists_dir`` if one is given (else in memory)."""

    def __init__(self, base, settings: NeighbourSettings = NeighbourSettings(), approximate: bool | None = None,
                 progress: Progress | None = None, lists_dir: Path | None = None) -> None:
        self.base = _float32(base)
        self.settings = settings
        self.approximate = settings.approximate(len(self.base)) if approximate is None else approximate
        self.factory, self.ivf = "exact", None  # the index's factory string and its inverted file, once built
        self.lists_file: Path | None = None  # where the inverted lists live when they are on disk
        self.index = self._build(progress, lists_dir) if self.approximate else None

    def _build(self, progress: Progress | None, lists_dir: Path | None):
        import faiss

        n, d = self.base.shape
        self.factory = self.settings.index.replace("{nlist}", str(lists(n)))
        try:
            index = faiss.index_factory(d, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as e:
            reason = str(e).splitlines()[0]
            raise GistlabError(f"FAISS index {self.factory!r} cannot be built: {reason}") from None
        self.ivf = faiss.try_extract_index_ivf(index)
        if progress is not None:
            progress(0, n)  # k-means training comes first (a minute at a million rows)
        if not index.is_trained:  # IVF, PQ: trained on a seeded sample
            size = min(n, TRAIN_PER_LIST * self.ivf.nlist if self.ivf is not None else 100_000)
            sample = np.random.default_rng(self.settings.seed).choice(n, size=size, replace=False)
            index.train(self.base[np.sort(sample)])
        if lists_dir is not None and type(index) is faiss.IndexIVFFlat:
            self.lists_file = Path(lists_dir) / "inverted-lists.ivfdata"
            _fill_on_disk(index, self.base, self.lists_file, progress)
        else:
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

    def search_deeper(self, queries, k: int, factor: int = DEEPER) -> tuple[np.ndarray, np.ndarray, int]:
        """:meth:`search` of a few ``queries`` scanning ``factor`` times as many lists (at most all of
        them), for answers a missed neighbour could change; returns (scores, ids, nprobe used) and
        leaves the index's own nprobe as it was. Only for an IVF index."""
        nprobe = self.ivf.nprobe
        self.ivf.nprobe = min(self.ivf.nlist, nprobe * factor)
        try:
            return (*self.search(queries, k), int(self.ivf.nprobe))
        finally:
            self.ivf.nprobe = nprobe

    @property
    def tuned(self) -> bool:
        """Whether ``nprobe`` is tuned to the target recall (an IVF index given no search parameters)."""
        return self.approximate and self.ivf is not None and not self.settings.params

    def search_measured(self, queries, k: int, progress: Progress | None = None):
        """(scores, ids, recall): :meth:`search` of every query, with the index's recall@k against
        exact search on the seeded sample of ``queries`` (None for an exact search). A tuned index
        first raises ``nprobe`` (1, 2, 4, ...) until that recall reaches the target; where that would
        take more than a quarter of the lists (data with no near neighbours: the index would cost what
        exact search costs) the queries are searched exactly and the recall is 1 (``exact``: True)."""
        if not self.approximate:
            return (*self.search(queries, k, progress), None)
        recall = self.tune(queries, k) if self.tuned else measure_recall(self, queries, k)
        if recall.get("exact"):
            return (*exact_top_k(queries, self.base, k, progress), recall)
        return (*self.search(queries, k, progress), recall)

    def tune(self, queries, k: int) -> dict:
        """Set ``nprobe`` to the smallest power of two whose recall@k against exact search on the
        seeded sample of ``queries`` reaches ``target_recall``, trying up to a quarter of the lists
        (all of them below 8 lists); returns that measurement (as :func:`measure_recall`, plus ``nprobe``
        and every ``tried`` [nprobe, recall]), or, when none reached it, ``exact``: True and recall 1."""
        sample = recall_sample(len(queries), self.settings)
        picked = _float32(queries)[sample]
        k = min(k, len(self.base))
        exact_scores, _ = exact_top_k(picked, self.base, k)
        nlist = self.ivf.nlist
        most = nlist if nlist < 8 else nlist // MAX_PROBED
        tried, nprobe = [], 1
        while True:
            self.ivf.nprobe = nprobe
            found_scores, found = self.index.search(picked, k)
            recall = round(recall_at_k(found, found_scores, exact_scores), 4)
            tried.append([nprobe, recall])
            if recall >= self.settings.target_recall or nprobe >= most:
                break
            nprobe = min(2 * nprobe, most)
        measured = {"k": int(k), "queries": int(len(sample)), "recall": recall, "nprobe": nprobe, "tried": tried}
        if recall < self.settings.target_recall and most < nlist:
            del measured["nprobe"]
            measured.update(recall=1.0, exact=True)
        return measured

    def describe(self) -> str:
        if not self.approximate:
            return "exact"
        how = self.settings.params or f"nprobe tuned to recall {self.settings.target_recall:g}"
        where = ", lists memory-mapped from disk" if self.lists_file is not None else ""
        return f"FAISS {self.factory} ({how}{where})"


def _fill_on_disk(index, base: np.ndarray, path: Path, progress: Progress | None) -> None:
    """Put every row of ``base`` into the trained IVF-Flat ``index`` through inverted lists kept in
    the file at ``path`` (mapped into memory by FAISS): each row's list is found first (the
    quantiser, chunk by chunk), the file is sized once, then each list is written with its rows
    (ids = row numbers, codes = the float32 vectors, as ``index.add`` would store them)."""
    import faiss

    n = len(base)
    assigned = np.empty(n, dtype=np.int64)
    for start in range(0, n, ADD_CHUNK):
        assigned[start:start + ADD_CHUNK] = index.quantizer.assign(base[start:start + ADD_CHUNK], 1).ravel()
        if progress is not None:
            progress(min(start + ADD_CHUNK, n), n)
    sizes = np.bincount(assigned, minlength=index.nlist)
    order = np.argsort(assigned, kind="stable")  # rows list by list, in row order within a list
    lists = faiss.OnDiskInvertedLists(index.nlist, index.code_size, str(path))
    with _quiet_stdout():  # FAISS prints "resizing <file> to <n> bytes" on C's stdout
        lists.update_totsize(n * (index.code_size + 8))
    counts = sizes.astype(np.uint64)  # held by a name: swig_ptr keeps no reference to its array
    lists.set_all_lists_sizes(faiss.swig_ptr(counts))
    ends = np.cumsum(sizes)
    for number in np.flatnonzero(sizes):
        rows = np.ascontiguousarray(order[ends[number] - sizes[number]:ends[number]])
        codes = np.ascontiguousarray(base[rows]).view(np.uint8)
        lists.update_entries(int(number), 0, len(rows), faiss.swig_ptr(rows), faiss.swig_ptr(codes))
    index.replace_invlists(lists, True)
    lists.this.disown()  # the index owns (and frees) the lists now
    index.ntotal = n


@contextmanager
def _quiet_stdout():
    """File descriptor 1 sent to /dev/null for the block (C code's printf, flushed before it comes
    back); where there is no C library to flush (not POSIX), stdout is left as it is."""
    try:
        flush = ctypes.CDLL(None).fflush
    except (OSError, TypeError, AttributeError):
        yield
        return
    sys.stdout.flush()  # Python's own buffered output goes out before fd 1 is swapped
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            flush(None)
            os.dup2(null.fileno(), 1)
            yield
    finally:
        flush(None)
        os.dup2(saved, 1)
        os.close(saved)


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
    """One line on how a search ran: exactly, or through which index at what measured recall@k (and
    nprobe), and how many rows were searched again deeper (the audit's ``recheck``)."""
    method = how.get("index", how.get("method", "exact"))
    recalls = how.get("recall_at_k", {})
    if "recall" in recalls:
        recalls = {"": recalls}

    def one(side: str, r: dict) -> str:
        at = f" at nprobe {r['nprobe']}" if "nprobe" in r else \
            f" (searched exactly: the index stayed below the target up to nprobe {r['tried'][-1][0]})" if r.get("exact") else ""
        return f"recall@{r['k']} {r['recall']:.4f}{at}" + (f" ({side})" if side else "")

    measured = "; ".join(one(side, r) for side, r in recalls.items())
    queries = next(iter(recalls.values()), {}).get("queries")
    again = how.get("recheck")
    again = (f"; {again['rows']:,} rows with a few others above their threshold searched again at nprobe "
             f"{again['nprobe']} ({again['dropped']:,} of them then had too many to be findings)") if again else ""
    return f"search: {method}" + (f", {measured} against exact search on {queries} seeded queries" if measured else "") \
        + again
