"""A model's embeddings by text, in memory: the student's counterpart of the guide's disk cache.

The student changes (another checkpoint, another run), so its embeddings are not worth a disk
cache like :class:`core.guides.guide_cache.GuideCache`; but a page that shows the student's view of
a batch must not encode the same texts on every visit, and must be able to encode the missing ones
in counted chunks (a progress bar) before the batch's report is built. Bounded: least recently
used texts are dropped past ``limit``. Thread-safe: the app serves several sessions at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch


class TextVectors:
    """A model's embeddings by text, kept in memory, at most ``limit`` texts (least recently used
    dropped): the student has no disk cache like the guide's, and a batch must be encoded in counted
    chunks before its report is built. Texts asked for again are not encoded again."""

    def __init__(self, embed: Callable[[list[str]], torch.Tensor], limit: int = 20_000) -> None:
        self._embed = embed
        self.limit = limit
        self._vectors: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts not kept, in order."""
        with self._lock:
            return [t for t in dict.fromkeys(texts) if t not in self._vectors]

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings [N, D] of ``texts`` in order, encoding only the ones not kept (an Embed)."""
        import torch

        with self._lock:
            found = {t: self._vectors[t] for t in dict.fromkeys(texts) if t in self._vectors}
            for text in found:
                self._vectors.move_to_end(text)
        new = [t for t in dict.fromkeys(texts) if t not in found]
        if new:
            found.update(zip(new, (v.clone() for v in self._embed(new).float().cpu())))
            with self._lock:
                self._vectors.update((t, found[t]) for t in new)
                while len(self._vectors) > self.limit:
                    self._vectors.popitem(last=False)
        return torch.stack([found[t] for t in texts])
