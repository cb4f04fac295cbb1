"""The guide cache's on-disk row format: what identifies a guide, a text and an embedding row.

A row of the cache is a text's 16-byte digest (``index.bin``), its float32 embedding
(``embeddings.f32``) and a 64-bit checksum binding the two (``checksums.u64``);
``meta.json`` names the guide by :func:`guide_fingerprint` (weights and output-shaping
settings). Pure functions over bytes and arrays, used by :class:`core.guides.guide_cache.GuideCache`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

FORMAT = 2  # 2: checksums.u64 added (a format-1 cache is rebuilt once)
DTYPE = np.dtype("<f4")
SUM_DTYPE = np.dtype("<u8")
DIGEST_BYTES = 16
FILES = ("embeddings.f32", "index.bin", "checksums.u64")


def text_digest(text: str) -> bytes:
    """The 16-byte key of a text in the index."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=DIGEST_BYTES).digest()


def row_checksums(values: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """A uint64 checksum of each embedding row [N, D] float32, bound to its text digest [N, 16] uint8.

    A sum of the row's 32-bit words times fixed odd constants (mod 2^64), so any change to one
    word changes it for certain and random junk matches with odds 2^-64; the first 8 bytes of the
    text digest are mixed in, so a row moved next to another text fails too.
    """
    words = np.ascontiguousarray(values, dtype=DTYPE).view("<u4").astype(np.uint64)
    sums = (words * _checksum_weights(words.shape[1])).sum(axis=1, dtype=np.uint64)
    sums ^= np.ascontiguousarray(digests[:, :8]).view("<u8").reshape(-1)
    sums ^= sums >> np.uint64(31)
    return sums * np.uint64(0x9E3779B97F4A7C15)


@functools.cache
def _checksum_weights(dim: int) -> np.ndarray:
    """Fixed odd 64-bit multipliers, one per word of a row (the same in every process)."""
    return np.random.default_rng(20240226).integers(1, 2**63, size=dim, dtype=np.uint64) | np.uint64(1)


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


def digest_array(digests: Sequence[bytes] | bytes) -> np.ndarray:
    """Text digests (a list, or index.bin bytes) as an [N, 16] uint8 array."""
    data = digests if isinstance(digests, bytes) else b"".join(digests)
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, DIGEST_BYTES)


def prefix_hash(index_file: Path, rows: int) -> str:
    """The index digest of the first ``rows`` rows (tells a catch-up from a rewrite)."""
    with open(index_file, "rb") as f:
        return hashlib.blake2b(f.read(rows * DIGEST_BYTES), digest_size=16).hexdigest()
