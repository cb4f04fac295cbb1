"""Hard negatives for a pairs data set: any model retrieves the candidates, the guide filters them.

Positive-aware mining (NV-Retriever's TopK-PercPos) keeps a retrieved candidate as a negative only
if its score is below a share (95%) of the positive's score, so that likely false negatives (texts
that mean what the positive means) are not pushed away. sentence-transformers'
``util.mine_hard_negatives`` does that with the retriever's own scores (``relative_margin=0.05``).
What it lacks is a *separate* judge: here the retriever (the student, or any SentenceTransformer)
proposes its top ``candidates`` distinct positives per anchor (never the anchor's own positives),
searched exactly for small sets and through a FAISS index for large ones (core.analysis.neighbours;
the summary then carries the index's recall@k against exact search; the retriever's vectors and the
index's lists memory-mapped from temporary files when large: core.analysis.spill), and the GIST
guide, through its cache, removes every candidate with ``cos_guide(a, c) >= g - |g| * (1 - guide_share)`` where
g = cos_guide(a, p) (for g > 0: at least ``guide_share`` of the positive's score). The first ``num_negatives`` survivors, in the
retriever's order, become ``negative_1 .. negative_k``. Rows left with fewer are dropped (a
negative column cannot have holes) and counted.

With ground truth (:func:`core.analysis.audit.dataset_relations`), the summary also says what the filter
removed: the share of removed and of kept candidates that are the same meaning as the row.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.analysis.neighbours import NeighbourSettings, Neighbours
from core.analysis.spill import embed_rows
from core.errors import GistlabError

Embed = Callable[[list[str]], torch.Tensor]
ENCODE_CHUNK = 65536  # texts per retriever call: the retriever's vectors go into one array (memory-mapped when large)


@dataclass(frozen=True)
class MiningSettings:
    """How many negatives, from how many retrieved candidates, the guide's share of the positive,
    and how candidates are searched (exact or an index)."""

    num_negatives: int = 3
    candidates: int = 30
    guide_share: float = 0.95
    neighbours: NeighbourSettings = NeighbourSettings()

    def __post_init__(self) -> None:
        if self.num_negatives < 1:
            raise GistlabError(f"--num-negatives must be at least 1, not {self.num_negatives}.")
        if self.candidates < self.num_negatives:
            raise GistlabError(f"--candidates ({self.candidates}) must be at least --num-negatives ({self.num_negatives}).")
        if not 0.0 < self.guide_share <= 1.0:
            raise GistlabError(f"--guide-share is a share of the positive's score: give (0, 1], not {self.guide_share}.")


def select_rows(ds, task: str | None = None, limit: int | None = None):
    """The rows to mine: ``task``'s (all when None), the first ``limit`` of them (all when None).
    A limit below 1 is an error, never "everything" (0) or "all but the last few" (negative)."""
    from core.corpus.data import task_pool

    if limit is not None and limit < 1:
        raise GistlabError(f"--limit {limit}: give at least 1 row, or leave --limit out to mine every row.")
    if task is None and limit is None:
        return ds
    return ds.select(task_pool(ds, task)[:limit].tolist())


@dataclass
class MiningResult:
    dataset: object  # datasets.Dataset: the kept rows with negative_1..k
    summary: dict


def retrieve(ds, retriever, settings: MiningSettings, how: dict | None = None) -> list[list[str]]:
    """Per row, the retriever's top ``settings.candidates`` distinct positives for its anchor, best
    first, none of them a positive of that anchor; ``how`` (a dict) receives the search used and,
    for an index, its recall@k against exact search."""
    anchors, positives = list(ds["anchor"]), list(ds["positive"])
    corpus = list(dict.fromkeys(positives))
    if len(corpus) <= settings.candidates:
        raise GistlabError(f"The data has {len(corpus)} distinct positives, too few to retrieve {settings.candidates} "
                           "candidates per row: lower --candidates or use more data.")
    position = {text: k for k, text in enumerate(corpus)}
    own: dict[str, set[int]] = {}
    for a, p in zip(anchors, positives):
        own.setdefault(a, set()).add(position[p])
    encode = lambda texts: retriever.encode(list(texts), batch_size=64, normalize_embeddings=True,  # noqa: E731
                                            convert_to_numpy=True, show_progress_bar=False)
    queries = list(own)
    reach = settings.candidates + max(len(o) for o in own.values())
    with tempfile.TemporaryDirectory(prefix="gistlab-mine-") as spill:
        index = Neighbours(embed_rows(corpus, encode, Path(spill) / "corpus.npy", ENCODE_CHUNK).numpy(),
                           settings.neighbours, lists_dir=Path(spill))
        query_vectors = embed_rows(queries, encode, Path(spill) / "queries.npy", ENCODE_CHUNK).numpy()
        _, ids, recall = index.search_measured(query_vectors, reach)
    found = {q: [corpus[j] for j in row if j >= 0 and j not in own[q]][:settings.candidates]
             for q, row in zip(queries, ids.tolist())}
    if how is not None:
        how["method"] = index.describe()
        if recall is not None:
            how["recall_at_k"] = recall
    return [found[a] for a in anchors]


def guide_filter(anchors: list[str], positives: list[str], candidates: list[list[str]], embed: Embed,
                 share: float) -> list[np.ndarray]:
    """Per row, a bool per candidate: True = kept (the guide scores it below ``share`` of the positive)."""
    texts = list(dict.fromkeys([*anchors, *positives, *(c for row in candidates for c in row)]))
    index = {t: k for k, t in enumerate(texts)}
    vectors = F.normalize(embed(texts).float(), dim=-1)
    a = vectors[[index[t] for t in anchors]]
    g = (a * vectors[[index[t] for t in positives]]).sum(dim=1)
    limit = g - g.abs() * (1.0 - share)
    kept = []
    for i, row in enumerate(candidates):
        scores = vectors[[index[c] for c in row]] @ a[i] if row else torch.zeros(0)
        kept.append((scores < limit[i]).numpy())
    return kept


def mine(ds, retriever, guide_embed: Embed, settings: MiningSettings = MiningSettings(),
         about: dict | None = None) -> MiningResult:
    """Mine ``settings.num_negatives`` guide-filtered hard negatives for every row of ``ds``."""
    from core.analysis.audit import dataset_relations

    started = time.perf_counter()
    if len(ds) < 2:
        raise GistlabError("Mining needs at least two rows: the negatives come from the other rows' positives.")
    anchors, positives = list(ds["anchor"]), list(ds["positive"])
    how: dict = {}
    candidates = retrieve(ds, retriever, settings, how)
    kept = guide_filter(anchors, positives, candidates, guide_embed, settings.guide_share)
    negatives = [[c for c, keep in zip(row, mask) if keep][:settings.num_negatives]
                 for row, mask in zip(candidates, kept)]
    full = np.array([len(n) == settings.num_negatives for n in negatives])
    rows = np.flatnonzero(full)
    out = ds.remove_columns([c for c in ds.column_names if c.startswith("negative")]).select(rows.tolist())
    for k in range(settings.num_negatives):
        out = out.add_column(f"negative_{k + 1}", [negatives[r][k] for r in rows])
    considered = sum(len(row) for row in candidates)
    removed = considered - sum(int(m.sum()) for m in kept)
    summary = {
        **(about or {}), "settings": asdict(settings), "rows_in": len(ds), "rows_out": int(full.sum()),
        "rows_without_enough_negatives": int((~full).sum()), "candidates_considered": considered,
        "removed_by_guide": removed, "removed_share": round(removed / max(considered, 1), 4),
        "search": how, "seconds": round(time.perf_counter() - started, 1),
    }
    relations = dataset_relations(ds)
    if relations is not None:
        summary["false_negative_share"] = _false_negative_shares(positives, candidates, kept, relations)
    return MiningResult(out, summary)


def _false_negative_shares(positives, candidates, kept, relations) -> dict[str, float | None]:
    """Share of removed and of kept candidates that the ground truth calls false negatives of the row
    (right answers by its task's relation, core.method.groundtruth)."""
    row_of = {}
    for r, p in enumerate(positives):
        row_of.setdefault(p, r)
    rows, others, keeps = [], [], []
    for r, (row, mask) in enumerate(zip(candidates, kept)):
        for c, keep in zip(row, mask):
            rows.append(r)
            others.append(row_of[c])
            keeps.append(bool(keep))
    same = relations(np.array(rows), np.array(others)) == "false-negative"
    keeps = np.array(keeps, dtype=bool)
    share = lambda hits: round(float(hits.mean()), 4) if len(hits) else None  # noqa: E731
    return {"removed": share(same[~keeps]), "kept": share(same[keeps])}
