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
- ``checksums.u64``: a 64-bit checksum of each row's embedding bound to its text digest
  (:func:`row_checksums`), same order, append-only.
- ``meta.json``: format, guide spec, fingerprint, dim, dtype, count and the digest of index.bin;
  rewritten atomically after every append, so it only ever vouches for complete rows.

On open, files longer than meta.json's count hold an append that did not finish (disk full, a
killed writer): they are cut back to the rows meta vouches for, with one warning, and those rows
kept. A cache whose files disagree otherwise (a file shorter than count, wrong dim, index digest,
duplicate rows, unreadable meta) is rebuilt from empty with a warning, never used. Then
every row's checksum is verified, and so are the rows of every lookup (a vectorised multiply-add,
microseconds per batch): rows that fail (junk or zeros written over the array) are dropped with
one warning line and re-encoded when next asked for, the rest is kept. The checksum is per row,
not per appended block, because a batch reads rows scattered over many appends. Embeddings are
stored as the guide returns them (not re-normalised); masking takes cosines anyway.

Storage is float32 on purpose: float16 changed 39 of 1,843,200 mask cells on 3,200 bundled
WordNet example->definition pairs with all-MiniLM-L6-v2 as guide (margins 0/0.05/0.1, both
strategies; scripts/bench_loss.py, docs/PERFORMANCE.md).

Writers take a thread lock and an exclusive ``flock`` on ``lock``, and reload first if another
process appended, so several threads and processes can fill one cache. Filling (encoding missing
texts) also holds ``fill.lock``, one chunk at a time: a second fill of the same texts waits for the
first's chunk and then finds it stored, so each text is encoded once. Shards built elsewhere
merge with :meth:`GuideCache.add`. A cache that cannot be written (a read-only workspace) is read
as it is; only a write it would need (new texts, a repair) is an error, of one line, as is a
write that fails (disk full), which leaves the rows stored before it intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from core.errors import GistlabError, GistlabWarning
from core.guides.cache_rows import (
    DIGEST_BYTES, DTYPE, FILES, FORMAT, SUM_DTYPE, digest_array, guide_fingerprint, prefix_hash, row_checksums,
    text_digest,
)
from core.fsio import locked, write_json_atomic
from core.workspace import workspace

VERIFY_CHUNK = 16384  # rows checksummed at a time when a whole cache is verified (~30 ms at dim 384;
# 65536 was no faster: 0.46 s against 0.17 s for 100k rows, the smaller chunk stays in the CPU cache)
FILL_CHUNK = 8192  # texts encoded and appended per step of a large fill


class CacheCorrupt(Exception):
    """The files on disk disagree with each other or with the guide (internal: triggers a rebuild)."""


class GuideCache:
    """Guide embeddings of texts, computed once per (guide, text) and kept on disk.

    Args:
        guide: the frozen guide model. It is only ever run through ``encode`` (eval mode,
            inference mode, raw texts, its own tokenizer and prompts).
        guide_spec: how the user named the guide (recorded in meta.json, for people).
        root: folder holding one sub-folder per guide; default ``<workspace>/guide_cache``.
        batch_size: the guide's encode batch size.
        progress: hears (rows checked, rows) after each chunk while opening verifies the stored
            rows' checksums (0.2-4 s per 100k rows, by dimension and disk), e.g. for a bar.

    ``texts_encoded`` and ``forward_passes`` count the guide's work since this object was made.
    """

    def __init__(
        self,
        guide: SentenceTransformer,
        guide_spec: str,
        root: Path | None = None,
        batch_size: int = 64,
        progress: Callable[[int, int], None] | None = None,
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
        self.path = Path(root or workspace() / "guide_cache") / self.fingerprint
        self.texts_encoded = 0
        self.forward_passes = 0
        self._thread_lock = threading.Lock()
        self._fill_thread_lock = threading.Lock()
        with self._writing("create"):
            self.path.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._open(progress)

    # --- public -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, text: str) -> bool:
        return text_digest(text) in self._rows

    def embed(
        self, texts: Sequence[str], device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Guide embeddings [N, D] of ``texts`` in order; encodes only the texts not cached yet,
        each once even if repeated. Float32 on the CPU, as stored, unless ``device`` / ``dtype``
        say where the caller computes (one copy for the whole batch, e.g. the student's GPU)."""
        digests = [text_digest(t) for t in texts]
        for _ in range(2):  # a row that fails its checksum is dropped, re-encoded and read again
            self._fill(texts, digests)
            rows = np.fromiter((self._rows[d] for d in digests), dtype=np.int64, count=len(digests))
            values = np.asarray(self._array[rows])
            bad = row_checksums(values, digest_array(digests)) != self._sums[rows]
            if not bad.any():
                return torch.from_numpy(values).to(device=device, dtype=dtype)
            self._discard(np.unique(rows[bad]))
        raise GistlabError(
            f"Guide cache {self.path} fails its checksums again right after a rewrite (disk "
            "problem?): delete that folder, check the disk, and run again."
        )

    def fill(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> int:
        """Encode and store every text not yet cached; returns how many were encoded. ``progress`` hears
        (distinct texts stored, distinct texts) at the start and after each chunk of ``FILL_CHUNK``
        appended: a fill stopped or killed keeps every chunk appended before, and a second fill of the
        same texts encodes only the rest (see :class:`GuideCache`)."""
        return self._fill(texts, [text_digest(t) for t in texts], progress)

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

    def _fill(self, texts: Sequence[str], digests: list[bytes],
              progress: Callable[[int, int], None] | None = None) -> int:
        """Encode and append the texts not stored, a chunk at a time under ``fill.lock``: after
        waiting for another filler, catch up with its rows and encode only what is still missing."""
        pending = list({d: t for t, d in zip(texts, digests) if d not in self._rows}.items())
        distinct = len(set(digests)) if progress is not None else 0
        added, cursor = 0, 0
        if progress is not None:
            progress(distinct - len(pending), distinct)
        while cursor < len(pending):
            with self._filling():
                if not self._meta_is_current():
                    with self._locked():
                        self._open()  # another filler appended meanwhile
                chunk = []
                while cursor < len(pending) and len(chunk) < FILL_CHUNK:
                    if pending[cursor][0] not in self._rows:
                        chunk.append(pending[cursor])
                    cursor += 1
                if chunk:
                    added += self._append([d for d, _ in chunk], self.encode([t for _, t in chunk]))
            if progress is not None:
                progress(distinct - len(pending) + cursor, distinct)
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
            new_values = np.ascontiguousarray(values[keep], dtype=DTYPE)
            start = len(self._rows)
            data = {"embeddings.f32": new_values.tobytes(), "index.bin": new_index,
                    "checksums.u64": row_checksums(new_values, digest_array(new_index)).astype(SUM_DTYPE).tobytes()}
            try:
                with self._writing("add to"):
                    for name, chunk in data.items():  # after the vouched rows, over any torn tail
                        with open(self._file(name), "r+b") as f:
                            f.truncate(start * self._row_bytes(name))
                            f.seek(0, os.SEEK_END)
                            f.write(chunk)
                    hash_after = self._index_hash.copy()
                    hash_after.update(new_index)
                    self._write_meta(count=start + len(keep), index_hash=hash_after)
            except GistlabError:
                self._cut_torn_tail()  # best effort: meta still vouches for the rows before
                raise
            self._rows.update((digests[i], start + n) for n, i in enumerate(keep))
            self._index_hash = hash_after
            self._map_array()
            return len(keep)

    # --- files --------------------------------------------------------------------------------

    def _file(self, name: str) -> Path:
        return self.path / name

    def _row_bytes(self, name: str) -> int:
        return {"embeddings.f32": self.dim * DTYPE.itemsize, "index.bin": DIGEST_BYTES,
                "checksums.u64": SUM_DTYPE.itemsize}[name]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive access to the folder: against other threads (the app shares one cache) and
        other processes (a training job)."""
        with self._thread_lock, locked(self._file("lock")):
            yield

    @contextmanager
    def _filling(self) -> Iterator[None]:
        """One filler at a time (``fill.lock``), so two fills of the same texts do not both encode them."""
        with self._fill_thread_lock, locked(self._file("fill.lock")):
            yield

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A failed write (disk full, read-only workspace) as one line; the rows stored before stay."""
        try:
            yield
        except OSError as exc:
            raise GistlabError(
                f"Could not {what} the guide cache {self.path} ({exc.strerror or exc}): free disk space or "
                "make the workspace writable (GISTLAB_HOME), then run again; the rows stored before are kept."
            ) from None

    def _cut_torn_tail(self) -> None:
        """Cut each file back to the rows meta.json vouches for (a write that stopped part-way)."""
        for name in FILES:
            try:
                os.truncate(self._file(name), len(self._rows) * self._row_bytes(name))
            except OSError:
                pass  # the next open cuts it

    def _open(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Load the cache, or start it empty; an inconsistent one is rebuilt with a warning, and
        rows whose checksum fails are dropped (and later re-encoded) with a warning. ``progress``
        hears the rows checked (see :class:`GuideCache`)."""
        verified = len(getattr(self, "_rows", ()))
        previous = getattr(self, "_index_hash", None)
        try:
            self._load()
        except CacheCorrupt as exc:
            warnings.warn(
                f"Guide cache {self.path} is inconsistent ({exc}); rebuilding it from empty.",
                GistlabWarning, stacklevel=3,
            )
            self._reset()
            return
        if previous is None or verified > len(self._rows) or prefix_hash(
                self._file("index.bin"), verified) != previous.hexdigest():
            verified = 0  # not a catch-up after another process's appends: check every row
        bad = self._failing_rows(verified, progress)
        if bad.size:
            self._drop(bad)

    def _failing_rows(self, start: int = 0, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Positions from ``start`` on whose embedding does not match its checksum; ``progress``
        hears (rows checked, rows to check) after each chunk."""
        index = np.fromfile(self._file("index.bin"), dtype=np.uint8).reshape(-1, DIGEST_BYTES)
        bad = [np.empty(0, dtype=np.int64)]
        for lo in range(start, len(self._rows), VERIFY_CHUNK):
            hi = min(lo + VERIFY_CHUNK, len(self._rows))
            failed = row_checksums(self._array[lo:hi], index[lo:hi]) != self._sums[lo:hi]
            bad.append(lo + np.flatnonzero(failed))
            if progress is not None:
                progress(hi - start, len(self._rows) - start)
        return np.concatenate(bad)

    def _discard(self, rows: np.ndarray) -> None:
        """Drop rows a read found corrupt (or catch up first if the files changed meanwhile)."""
        with self._locked():
            if not self._meta_is_current():
                self._open()  # reloading verifies (and drops) whatever is bad now
            else:
                self._drop(rows)

    def _drop(self, bad: np.ndarray) -> None:
        """Rewrite the cache without the rows at positions ``bad`` (they will be re-encoded when
        next asked for) and say so in one line. New files replace the old ones, as in _reset."""
        count = len(self._rows)
        keep = np.setdiff1d(np.arange(count), bad)
        index = np.fromfile(self._file("index.bin"), dtype=np.uint8).reshape(-1, DIGEST_BYTES)[keep]
        with self._writing("repair"):
            with open(self._file("embeddings.f32.tmp"), "wb") as f:
                for lo in range(0, len(keep), VERIFY_CHUNK):
                    f.write(np.ascontiguousarray(self._array[keep[lo : lo + VERIFY_CHUNK]]).tobytes())
            self._file("index.bin.tmp").write_bytes(index.tobytes())
            self._file("checksums.u64.tmp").write_bytes(np.asarray(self._sums[keep], dtype=SUM_DTYPE).tobytes())
            for name in FILES:
                os.replace(self._file(name + ".tmp"), self._file(name))
            self._rows = {bytes(d): n for n, d in enumerate(index)}
            self._index_hash = hashlib.blake2b(index.tobytes(), digest_size=16)
            self._write_meta()
        self._map_array()
        warnings.warn(
            f"Guide cache {self.path}: {len(bad)} of {count} stored embeddings failed their checksum "
            "(overwritten on disk?); dropped them, they are re-encoded when next needed.",
            GistlabWarning, stacklevel=4,
        )

    def _load(self) -> None:
        meta_path = self._file("meta.json")
        if not meta_path.exists():
            leftovers = [n for n in FILES if self._file(n).exists()]
            if leftovers:
                raise CacheCorrupt(f"meta.json is missing next to {', '.join(leftovers)}")
            self._reset()
            return
        try:
            meta = json.loads(meta_path.read_text())
            count = int(meta["count"])
            index = self._file("index.bin").read_bytes()
            array_bytes = self._file("embeddings.f32").stat().st_size
            sums_bytes = self._file("checksums.u64").stat().st_size
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CacheCorrupt(f"unreadable files: {exc}") from None
        expected = {"format": FORMAT, "fingerprint": self.fingerprint, "dim": self.dim,
                    "dtype": DTYPE.name}
        for key, value in expected.items():
            if meta.get(key) != value:
                raise CacheCorrupt(f"meta.json has {key}={meta.get(key)!r}, expected {value!r}")
        sizes = {"index.bin": len(index), "embeddings.f32": array_bytes, "checksums.u64": sums_bytes}
        for name, size in sizes.items():  # shorter than meta says: rows it vouches for are gone
            if size < count * self._row_bytes(name):
                raise CacheCorrupt(f"{name} holds {size / self._row_bytes(name):g} rows, meta says {count}")
        index = index[: count * DIGEST_BYTES]  # longer: an append that did not finish, cut below
        index_hash = hashlib.blake2b(index, digest_size=16)
        if index_hash.hexdigest() != meta.get("index_hash"):
            raise CacheCorrupt("index.bin does not match the digest recorded in meta.json")
        rows = {index[i : i + DIGEST_BYTES]: n for n, i in enumerate(range(0, len(index), DIGEST_BYTES))}
        if len(rows) != count:
            raise CacheCorrupt("index.bin lists a text twice")
        self._rows, self._index_hash = rows, index_hash
        torn = {n: size / self._row_bytes(n) for n, size in sizes.items() if size > count * self._row_bytes(n)}
        if torn:
            self._cut_torn_tail()
            warnings.warn(
                f"Guide cache {self.path}: an append did not finish ({', '.join(f'{n} holds {r:g} rows' for n, r in torn.items())}, "
                f"meta vouches for {count}); cut back to those {count} rows, the rest is re-encoded when needed.",
                GistlabWarning, stacklevel=4,
            )
        self._map_array()

    def _reset(self) -> None:
        """Start the cache empty (new folder, or a rebuild of an inconsistent one).

        New files replace the old ones rather than truncating them, so another process that still
        maps the old array keeps reading valid memory until it notices and reloads.
        """
        with self._writing("start"):
            for name in FILES:
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

    def _write_meta(self, **vouched) -> None:
        """Replace meta.json atomically; ``count`` / ``index_hash`` given: rows just written, not yet held."""
        meta = self._meta() | {k: v.hexdigest() if k == "index_hash" else v for k, v in vouched.items()}
        write_json_atomic(self._file("meta.json"), meta, indent=1)

    def _map_array(self) -> None:
        count = len(self._rows)
        if count == 0:
            self._array = np.empty((0, self.dim), dtype=DTYPE)
            self._sums = np.empty(0, dtype=SUM_DTYPE)
        else:
            self._array = np.memmap(self._file("embeddings.f32"), dtype=DTYPE, mode="r",
                                    shape=(count, self.dim))
            self._sums = np.memmap(self._file("checksums.u64"), dtype=SUM_DTYPE, mode="r", shape=(count,))
