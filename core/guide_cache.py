"""Guide embeddings on disk: each (guide, text) pair is encoded once, then only looked up.

The guide is frozen and sees raw texts, so its embedding of a text is a pure function of
(guide, text). :class:`GuideCache` keeps those embeddings in the workspace and encodes only the
texts it has never seen, lazily, as training asks for them: a 20-step run on a large data set
encodes the ~20 batches it uses, and a second run or a margin sweep encodes nothing.

One folder per guide, ``<root>/<fingerprint>/``, where the fingerprint hashes the guide's weights
and everything else that shapes its output (modules and their configs, max_seq_length, prompts,
vocabulary). A cache written by another guide therefore lives in another folder and is never read.

- ``embeddings.f32``: rows [count, dim] of float32, append-only, memory-mapped for reads.
- ``index.bin``: the 16-byte blake2b digest of each row's text (UTF-8), same order, append-only.
- ``meta.json``: format, guide spec, fingerprint, dim, dtype, count and the digest of index.bin;
  rewritten atomically after every append, so it only ever vouches for complete rows.

On open, a cache whose files disagree (array or index length vs count, wrong dim, index digest,
duplicate rows, unreadable meta) is rebuilt from empty with a warning, never used. Embeddings are
stored as the guide returns them (not re-normalised); masking takes cosines anyway.

Storage is float32 on purpose: float16 changed 39 of 1,843,200 mask cells on 3,200 bundled
WordNet example->definition pairs with all-MiniLM-L6-v2 as guide (margins 0/0.05/0.1, both
strategies; scripts/bench_loss.py, docs/PERFORMANCE.md).

Writers take a thread lock and an exclusive ``flock`` on ``lock``, and reload first if another
process appended, so several threads and processes can fill one cache. Shards built elsewhere
merge with :meth:`GuideCache.add`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from core.errors import GistlabError
from core.workspace import subdir

FORMAT = 1
DTYPE = np.dtype("<f4")
DIGEST_BYTES = 16
FILL_CHUNK = 8192  # texts encoded and appended per step of a large fill


class CacheCorrupt(Exception):
    """The files on disk disagree with each other or with the guide (internal: triggers a rebuild)."""


def text_digest(text: str) -> bytes:
    """The 16-byte key of a text in the index."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


def guide_fingerprint(guide: SentenceTransformer) -> str:
    """A hex id of the guide's weights and output-shaping settings (32 hex characters)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(guide.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    tokenizer = getattr(guide, "tokenizer", None)
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else None
    settings = {
        "modules": [[type(m).__name__, _module_settings(m)] for m in guide],
        "max_seq_length": guide.max_seq_length,
        "prompts": guide.prompts,
        "default_prompt_name": guide.default_prompt_name,
        "truncate_dim": guide.truncate_dim,
        "tokenizer": [
            type(tokenizer).__name__,
            getattr(tokenizer, "do_lower_case", None),
            sorted(vocab.items()) if vocab else None,
        ],
    }
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _module_settings(module) -> dict:
    """A module's own config plus, for a transformer, its architecture config (minus paths and
    version stamps, so the same weights loaded from another folder get the same fingerprint)."""
    settings = {"config": module.get_config_dict() if hasattr(module, "get_config_dict") else None}
    config = getattr(getattr(module, "auto_model", None), "config", None)
    if config is not None:
        settings["architecture"] = {
            k: v for k, v in config.to_dict().items()
            if not k.startswith("_") and k != "transformers_version"
        }
    return settings


class GuideCache:
    """Guide embeddings of texts, computed once per (guide, text) and kept on disk.

    Args:
        guide: the frozen guide model. It is only ever run through ``encode`` (eval mode,
            inference mode, raw texts, its own tokenizer and prompts).
        guide_spec: how the user named the guide (recorded in meta.json, for people).
        root: folder holding one sub-folder per guide; default ``<workspace>/guide_cache``.
        batch_size: the guide's encode batch size.

    ``texts_encoded`` and ``forward_passes`` count the guide's work since this object was made.
    """

    def __init__(
        self,
        guide: SentenceTransformer,
        guide_spec: str,
        root: Path | None = None,
        batch_size: int = 64,
    ) -> None:
        dim = guide.get_embedding_dimension()
        if not dim:
            raise GistlabError(
                f"Guide {guide_spec!r} does not report an embedding dimension: use a model that "
                "ends in a pooling layer."
            )
        self.guide = guide.eval().requires_grad_(False)  # frozen here, whoever loaded it
        self.guide_spec = guide_spec
        self.batch_size = batch_size
        self.dim = int(dim)
        self.fingerprint = guide_fingerprint(guide)
        self.path = Path(root or subdir("guide_cache")) / self.fingerprint
        self.texts_encoded = 0
        self.forward_passes = 0
        self._thread_lock = threading.Lock()
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._open()

    # --- public -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, text: str) -> bool:
        return text_digest(text) in self._rows

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Guide embeddings [N, D] float32 (on the CPU) of ``texts`` in order; encodes only the
        texts not cached yet, each once even if repeated."""
        digests = [text_digest(t) for t in texts]
        self._fill(texts, digests)
        rows = np.fromiter((self._rows[d] for d in digests), dtype=np.int64, count=len(digests))
        return torch.from_numpy(np.asarray(self._array[rows]))

    def fill(self, texts: Sequence[str]) -> int:
        """Encode and store every text not yet cached; returns how many were encoded."""
        return self._fill(texts, [text_digest(t) for t in texts])

    def add(self, texts: Sequence[str], embeddings: np.ndarray | torch.Tensor) -> int:
        """Store precomputed guide embeddings [N, D] of ``texts`` (e.g. a shard from another
        process); texts already cached are skipped. Returns how many rows were appended."""
        values = np.asarray(
            embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
            dtype=DTYPE,
        )
        if values.shape != (len(texts), self.dim):
            raise ValueError(
                f"expected embeddings of shape ({len(texts)}, {self.dim}), got {values.shape}"
            )
        return self._append([text_digest(t) for t in texts], values)

    # --- filling ------------------------------------------------------------------------------

    def _fill(self, texts: Sequence[str], digests: list[bytes]) -> int:
        missing = {d: t for t, d in zip(texts, digests) if d not in self._rows}
        pending = list(missing.items())
        added = 0
        for start in range(0, len(pending), FILL_CHUNK):
            chunk = pending[start : start + FILL_CHUNK]
            embeddings = self.encode([t for _, t in chunk])
            added += self._append([d for d, _ in chunk], embeddings)
        return added

    def encode(self, texts: list[str]) -> np.ndarray:
        """Run the guide on raw texts and return their embeddings [N, D] without storing them
        (e.g. one process's shard, merged later with :meth:`add`); counts the forward passes."""

        def count(*_):
            self.forward_passes += 1

        hook = self.guide.register_forward_hook(count)
        try:
            embeddings = self.guide.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        finally:
            hook.remove()
        self.texts_encoded += len(texts)
        return np.asarray(embeddings, dtype=DTYPE)

    def _append(self, digests: list[bytes], values: np.ndarray) -> int:
        """Append the rows whose digest is new, then vouch for them in meta.json."""
        with self._locked():
            if not self._meta_is_current():
                self._open()  # another process appended or rebuilt: catch up first
            keep, seen = [], set()
            for i, d in enumerate(digests):
                if d not in self._rows and d not in seen:
                    keep.append(i)
                    seen.add(d)
            if not keep:
                return 0
            new_index = b"".join(digests[i] for i in keep)
            with open(self._file("embeddings.f32"), "ab") as f:
                f.write(np.ascontiguousarray(values[keep], dtype=DTYPE).tobytes())
            with open(self._file("index.bin"), "ab") as f:
                f.write(new_index)
            start = len(self._rows)
            self._rows.update((digests[i], start + n) for n, i in enumerate(keep))
            self._index_hash.update(new_index)
            self._write_meta()
            self._map_array()
            return len(keep)

    # --- files --------------------------------------------------------------------------------

    def _file(self, name: str) -> Path:
        return self.path / name

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive access to the folder: against other threads (the app shares one cache) and
        other processes (a training job)."""
        with self._thread_lock, open(self._file("lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _open(self) -> None:
        """Load the cache, or start it empty; an inconsistent one is rebuilt with a warning."""
        try:
            self._load()
        except CacheCorrupt as exc:
            warnings.warn(
                f"Guide cache {self.path} is inconsistent ({exc}); rebuilding it from empty.",
                stacklevel=3,
            )
            self._reset()

    def _load(self) -> None:
        meta_path = self._file("meta.json")
        if not meta_path.exists():
            leftovers = [n for n in ("embeddings.f32", "index.bin") if self._file(n).exists()]
            if leftovers:
                raise CacheCorrupt(f"meta.json is missing next to {', '.join(leftovers)}")
            self._reset()
            return
        try:
            meta = json.loads(meta_path.read_text())
            count = int(meta["count"])
            index = self._file("index.bin").read_bytes()
            array_bytes = self._file("embeddings.f32").stat().st_size
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CacheCorrupt(f"unreadable files: {exc}") from None
        expected = {"format": FORMAT, "fingerprint": self.fingerprint, "dim": self.dim,
                    "dtype": DTYPE.name}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise CacheCorrupt(f"meta.json has {key}={meta.get(key)!r}, expected {value!r}")
        if len(index) != count * DIGEST_BYTES:
            raise CacheCorrupt(f"index.bin holds {len(index) / DIGEST_BYTES:g} rows, meta says {count}")
        if array_bytes != count * self.dim * DTYPE.itemsize:
            rows = array_bytes / (self.dim * DTYPE.itemsize)
            raise CacheCorrupt(f"embeddings.f32 holds {rows:g} rows of dim {self.dim}, meta says {count}")
        index_hash = hashlib.blake2b(index, digest_size=16)
        if index_hash.hexdigest() != meta.get("index_hash"):
            raise CacheCorrupt("index.bin does not match the digest recorded in meta.json")
        rows = {index[i : i + DIGEST_BYTES]: n for n, i in enumerate(range(0, len(index), DIGEST_BYTES))}
        if len(rows) != count:
            raise CacheCorrupt("index.bin lists a text twice")
        self._rows, self._index_hash = rows, index_hash
        self._map_array()

    def _reset(self) -> None:
        """Start the cache empty (new folder, or a rebuild of an inconsistent one).

        New files replace the old ones rather than truncating them, so another process that still
        maps the old array keeps reading valid memory until it notices and reloads.
        """
        for name in ("embeddings.f32", "index.bin"):
            tmp = self._file(name + ".tmp")
            tmp.write_bytes(b"")
            os.replace(tmp, self._file(name))
        self._rows = {}
        self._index_hash = hashlib.blake2b(digest_size=16)
        self._write_meta()
        self._map_array()

    def _meta(self) -> dict:
        return {
            "format": FORMAT,
            "guide_spec": self.guide_spec,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "dtype": DTYPE.name,
            "count": len(self._rows),
            "index_hash": self._index_hash.hexdigest(),
        }

    def _meta_is_current(self) -> bool:
        """Whether meta.json still describes exactly the rows this object holds."""
        try:
            meta = json.loads(self._file("meta.json").read_text())
        except (OSError, ValueError):
            return False
        mine = self._meta()
        return all(meta.get(k) == mine[k] for k in ("count", "index_hash"))

    def _write_meta(self) -> None:
        tmp = self._file("meta.json.tmp")
        tmp.write_text(json.dumps(self._meta(), indent=1))
        os.replace(tmp, self._file("meta.json"))

    def _map_array(self) -> None:
        count = len(self._rows)
        if count == 0:
            self._array = np.empty((0, self.dim), dtype=DTYPE)
        else:
            self._array = np.memmap(self._file("embeddings.f32"), dtype=DTYPE, mode="r",
                                    shape=(count, self.dim))
