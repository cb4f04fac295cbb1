"""2D maps of a batch's embeddings: PCA at once, UMAP on request, and the points and lines to draw.

PCA is a centred SVD in numpy (milliseconds). UMAP is imported only inside :func:`load_umap`:
``import umap`` and a first fit compile with numba (~20 s cold), so nothing that merely imports this
module, and no first paint, ever waits for it; callers cache its result keyed by the data (the app
keeps it per server, app.loaders.projected). :func:`map_points` and :func:`mask_segments` turn a projection and a mask into
tidy tables: one point per text (role, task), one segment from each row's text to every candidate
the guide masked for it, with the guide's score. A 2D map distorts distances, so
:func:`neighbours` answers "what is really close to this text" in the original embedding space
(guide or student), and :func:`selection_table` lists chosen texts with their own positive and
masked partners.
"""

from __future__ import annotations

import functools
import textwrap

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from core.errors import GistlabError
from core.analysis.inspect import Batch
from core.method.masking import BatchMask

METHODS = ("pca", "umap")
ROLE_COLOURS = {"anchor": "#1f77b4", "positive": "#2ca02c", "negative": "#d62728"}


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components of ``x`` [N, D] -> [N, 2] (signs fixed for stable plots).

    The SVD runs on one BLAS thread: at this size (hundreds of points) the thread pool's wake-ups
    cost more than they save on a busy 2-core machine (~0.7 s against ~0.13 s for 384 x 384;
    python -m benchmarks inspector).
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    with threadpool_limits(1):
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    coords = u[:, :2] * s[:2] * signs
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


@functools.cache
def load_umap():
    """The ``umap`` module, imported and compiled once per process: the import and numba's compiling of a
    first fit take ~20 s (measured: import 3 s, a first fit of 64 points 19 s, then 384 points 0.7 s), so a
    tiny seeded fit here pays for it and a caller can show that wait as a stage of its own."""
    import umap  # deliberately lazy: numba compiles on import

    warm_up = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    umap.UMAP(n_components=2, n_neighbors=15, metric="cosine", random_state=0, n_jobs=1).fit_transform(warm_up)
    return umap


def umap_loaded() -> bool:
    """Whether :func:`load_umap` has run in this process (a fit then takes its own time only)."""
    return load_umap.cache_info().currsize > 0


def umap_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """UMAP of ``x`` [N, D] -> [N, 2], cosine metric, seeded. Slow on first call: cache the result.

    One thread (``n_jobs=1``): a seed forces it anyway, and asking for more logs a warning per fit.
    """
    x = np.asarray(x, dtype=np.float32)
    if len(x) < 4:
        raise GistlabError(f"UMAP needs at least 4 points, got {len(x)}: draw a larger batch or use PCA.")
    reducer = load_umap().UMAP(
        n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), metric="cosine", random_state=seed, n_jobs=1
    )
    return reducer.fit_transform(x)


def project(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``x`` [N, D] -> [N, 2] by ``method`` (``pca`` or ``umap``)."""
    if method == "pca":
        return pca_2d(x)
    if method == "umap":
        return umap_2d(x, seed=seed)
    raise GistlabError(f"Unknown projection {method!r}: choose one of {', '.join(METHODS)}.")


def _hover(role: str, dataset_row: int, text: str) -> str:
    return f"<b>{role}</b> · row {dataset_row}<br>" + "<br>".join(textwrap.wrap(text, 60)[:6])


NO_TASK = "(no task)"


def map_points(batch: Batch, coords: np.ndarray) -> pd.DataFrame:
    """One point per text, in :meth:`Batch.texts` order: x, y, role, batch row, dataset row, task, text, hover."""
    n = len(batch)
    roles = ["anchor"] * n + ["positive"] * n + ["negative"] * (n * len(batch.negatives))
    rows = list(range(n)) * (2 + len(batch.negatives))
    texts = batch.texts()
    tasks = batch.tasks or [NO_TASK] * n
    points = pd.DataFrame({
        "x": coords[:, 0], "y": coords[:, 1], "role": roles, "row": rows,
        "dataset_row": [batch.rows[r] for r in rows], "task": [tasks[r] for r in rows], "text": texts,
    })
    points["hover"] = [_hover(r, d, t) for r, d, t in zip(roles, points["dataset_row"], texts)]
    return points


def _point_offsets(n: int) -> dict[str, tuple[int, int]]:
    """Per block: (offset of its row-side points, offset of its candidate points) in texts order."""
    return {"a-p": (0, n), "a-a": (0, 0), "p-p": (n, n), "a-n": (0, 2 * n)}


def mask_segments(batch: Batch, mask: BatchMask, points: pd.DataFrame) -> pd.DataFrame:
    """One segment per masked (row, candidate): from the row's text to the candidate's, with the block
    and the guide's score of the pair (``source``/``target`` are point ids, :func:`map_points` order)."""
    offsets = _point_offsets(len(batch))
    frames = []
    for block in mask.blocks:
        i, c = mask.masked_candidates(block).nonzero(as_tuple=True)
        start, end = i.numpy() + offsets[block][0], c.numpy() + offsets[block][1]
        frames.append(pd.DataFrame({
            "block": block, "source": start, "target": end,
            "x0": points["x"].to_numpy()[start], "y0": points["y"].to_numpy()[start],
            "x1": points["x"].to_numpy()[end], "y1": points["y"].to_numpy()[end],
            "guide_score": mask.guide_scores[block][i, c].numpy(),
        }))
    columns = ["block", "source", "target", "x0", "y0", "x1", "y1", "guide_score"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def own_positive(points: pd.DataFrame, point: int) -> int:
    """The point id of the positive of ``point``'s batch row (a positive is its own)."""
    return int(points.index[(points.role == "positive") & (points.row == points.row[point])][0])


def masked_partners(segments: pd.DataFrame, point: int) -> pd.Series:
    """Point ids the guide masks together with ``point`` (as its candidate, or it as theirs) -> blocks."""
    out = segments[segments.source == point].assign(partner=lambda f: f.target)
    into = segments[segments.target == point].assign(partner=lambda f: f.source)
    both = pd.concat([out, into])
    return both.groupby("partner")["block"].agg(lambda b: ", ".join(sorted(set(b))))


def neighbours(vectors: np.ndarray, points: pd.DataFrame, segments: pd.DataFrame, point: int,
               k: int = 10) -> pd.DataFrame:
    """The ``k`` texts closest to ``point`` by cosine in the original space of ``vectors`` [N, D].

    Columns: rank, cosine, guide (what the guide does with the pair: ``masked (a-p, ...)``, ``its
    positive`` or ``kept``), role, row, text. Identical texts (cosine 1) are listed too.
    """
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit[point]
    cosine[point] = -np.inf
    order = np.argsort(-cosine, kind="stable")[:k]
    partners, positive = masked_partners(segments, point), own_positive(points, point)
    verdict = ["its positive" if q == positive and points.role[point] == "anchor"
               else f"masked ({partners[q]})" if q in partners.index else "kept" for q in order]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "cosine": cosine[order], "guide": verdict,
                         "role": points.role.to_numpy()[order], "row": points.row.to_numpy()[order],
                         "text": points.text.to_numpy()[order]})


def selection_table(points: pd.DataFrame, segments: pd.DataFrame, chosen: list[int], shown: int = 3) -> pd.DataFrame:
    """Chosen points with their row's own positive and the texts the guide masks with them."""
    records = []
    for point in chosen:
        partners = masked_partners(segments, point)
        texts = points.text.to_numpy()[partners.index.to_numpy(dtype=int)]
        records.append({
            "role": points.role[point], "row": points.row[point], "task": points.task[point],
            "text": points.text[point], "positive": points.text[own_positive(points, point)],
            "masked_partners": len(partners),
            "masked_examples": " | ".join(texts[:shown]) + (" | …" if len(texts) > shown else ""),
        })
    columns = ["role", "row", "task", "text", "positive", "masked_partners", "masked_examples"]
    return pd.DataFrame.from_records(records, columns=columns)
