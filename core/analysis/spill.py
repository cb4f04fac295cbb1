"""Embeddings of many texts in one array that need not fit in memory.

A whole-data-set search (the audit's, mining's retrieval) embeds every text once into one float32
array, a chunk of texts at a time so that progress moves, never concatenated from parts: in memory
up to ``SPILL_BYTES``, above that over a ``.npy`` file in a directory the caller owns (a temporary
one), mapped into memory, so a million rows' embeddings (3 GB at D = 384) are pages the kernel can
drop and read back rather than memory the process must hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

SPILL_BYTES = 1 << 30  # above 1 GB (~350k rows at D = 384) an array is memory-mapped from a file


def embed_rows(texts: Sequence[str], embed: Callable[[Sequence[str]], torch.Tensor | np.ndarray], path: Path,
               chunk: int, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``embed`` of every text, ``chunk`` texts per call, written in order into one float32
    [len(texts), D] tensor: in memory, or over a memory-mapped file at ``path`` above ``SPILL_BYTES``.
    ``progress`` hears (texts embedded, texts) after each chunk."""
    vectors = None
    for start in range(0, len(texts), chunk):
        part = torch.as_tensor(embed(texts[start:start + chunk])).float()
        if vectors is None:
            vectors = empty(len(texts), part.shape[1], path)
        vectors[start:start + len(part)] = part
        if progress is not None:
            progress(min(start + chunk, len(texts)), len(texts))
    return vectors


def empty(rows: int, dim: int, path: Path) -> torch.Tensor:
    """An uninitialised float32 [rows, dim] tensor: in memory up to ``SPILL_BYTES``, else over a new
    memory-mapped ``.npy`` file at ``path``."""
    if rows * dim * 4 <= SPILL_BYTES:
        return torch.empty(rows, dim)
    return torch.from_numpy(np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim)))
