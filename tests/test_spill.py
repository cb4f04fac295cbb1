"""Embedding many texts into one array: in order, chunk by chunk, in memory or memory-mapped above the limit."""

from __future__ import annotations

import numpy as np
import torch

import core.analysis.spill as spill
from core.analysis.spill import embed_rows


def fake_embed(calls: list[int]):
    def embed(texts):
        calls.append(len(texts))
        return torch.tensor([[float(len(t)), float(t.count("a")), 1.0] for t in texts])
    return embed


def test_rows_come_in_order_chunk_by_chunk_with_progress(tmp_path):
    texts = [f"a{'a' * k}b{'b' * (k % 3)}" for k in range(11)]
    calls, heard = [], []
    vectors = embed_rows(texts, fake_embed(calls), tmp_path / "v.npy", 4, lambda done, total: heard.append((done, total)))
    assert calls == [4, 4, 3] and heard == [(4, 11), (8, 11), (11, 11)]
    assert torch.equal(vectors, fake_embed([])(texts)) and not (tmp_path / "v.npy").exists()  # small: in memory


def test_above_the_limit_the_array_is_a_memory_mapped_file_with_the_same_rows(tmp_path, monkeypatch):
    texts = [f"text {k} " + "a" * k for k in range(9)]
    in_memory = embed_rows(texts, fake_embed([]), tmp_path / "unused.npy", 4)
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    mapped = embed_rows(texts, fake_embed([]), tmp_path / "v.npy", 4)
    assert torch.equal(mapped, in_memory)
    on_disk = np.load(tmp_path / "v.npy", mmap_mode="r")  # the tensor's storage is that file
    assert np.array_equal(on_disk, in_memory.numpy())
    mapped[0, 0] = -7.0
    assert np.load(tmp_path / "v.npy", mmap_mode="r")[0, 0] == -7.0
