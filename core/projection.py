"""2D maps of a batch's embeddings: PCA at once, UMAP on request, and the points and lines to draw.

PCA is a centred SVD in numpy (milliseconds). UMAP is imported only inside :func:`umap_2d`:
``import umap`` compiles with numba (~20 s cold), so nothing that merely imports this module, and
no first paint, ever waits for it; callers cache its result keyed by the data (the page uses
``st.cache_data``). :func:`map_points` and :func:`mask_segments` turn a projection and a mask into
tidy tables: one point per text coloured by role, one segment from each row's text to every
candidate the guide masked for it.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from core.errors import GistlabError
from core.inspect import Batch
from core.masking import BatchMask

METHODS = ("pca", "umap")
ROLE_COLOURS = {"anchor": "#1f77b4", "positive": "#2ca02c", "negative": "#d62728"}


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components of ``x`` [N, D] -> [N, 2] (signs fixed for stable plots).

    The SVD runs on one BLAS thread: at this size (hundreds of points) the thread pool's wake-ups
    cost more than they save on a busy 2-core machine (~0.7 s against ~0.13 s for 384 x 384;
    scripts/bench_inspector.py).
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    with threadpool_limits(1):
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    coords = u[:, :2] * s[:2] * signs
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def umap_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """UMAP of ``x`` [N, D] -> [N, 2], cosine metric, seeded. Slow on first call: cache the result."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < 4:
        raise GistlabError(f"UMAP needs at least 4 points, got {len(x)}: draw a larger batch or use PCA.")
    import umap  # deliberately lazy: numba compiles on import

    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), metric="cosine", random_state=seed
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


def map_points(batch: Batch, coords: np.ndarray) -> pd.DataFrame:
    """One point per text, in :meth:`Batch.texts` order: x, y, role, batch row, dataset row, text, hover."""
    n = len(batch)
    roles = ["anchor"] * n + ["positive"] * n + ["negative"] * (n * len(batch.negatives))
    rows = list(range(n)) * (2 + len(batch.negatives))
    texts = batch.texts()
    points = pd.DataFrame({
        "x": coords[:, 0], "y": coords[:, 1], "role": roles, "row": rows,
        "dataset_row": [batch.rows[r] for r in rows], "text": texts,
    })
    points["hover"] = [_hover(r, d, t) for r, d, t in zip(roles, points["dataset_row"], texts)]
    return points


def _point_offsets(n: int) -> dict[str, tuple[int, int]]:
    """Per block: (offset of its row-side points, offset of its candidate points) in texts order."""
    return {"a-p": (0, n), "a-a": (0, 0), "p-p": (n, n), "a-n": (0, 2 * n)}


def mask_segments(batch: Batch, mask: BatchMask, points: pd.DataFrame) -> pd.DataFrame:
    """One segment per masked (row, candidate): from the row's text to the candidate's, with the block."""
    offsets = _point_offsets(len(batch))
    frames = []
    for block in mask.blocks:
        i, c = (t.numpy() for t in mask.masked_candidates(block).nonzero(as_tuple=True))
        start, end = i + offsets[block][0], c + offsets[block][1]
        frames.append(pd.DataFrame({
            "block": block, "source": start, "target": end,
            "x0": points["x"].to_numpy()[start], "y0": points["y"].to_numpy()[start],
            "x1": points["x"].to_numpy()[end], "y1": points["y"].to_numpy()[end],
        }))
    columns = ["block", "source", "target", "x0", "y0", "x1", "y1"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
