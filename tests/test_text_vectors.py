"""core.guides.text_vectors: each text encoded once, returned in order, the store bounded."""

from __future__ import annotations

import torch

from core.guides.text_vectors import TextVectors


def test_text_vectors_encode_each_text_once_in_order_and_stay_bounded():
    asked = []

    def embed(texts):
        asked.append(list(texts))
        return torch.tensor([[float(len(t)), 1.0] for t in texts])

    vectors = TextVectors(embed, limit=3)
    assert vectors.missing(["a", "bb", "a"]) == ["a", "bb"]
    out = vectors.embed(["a", "bb", "a"])
    assert out.tolist() == [[1, 1], [2, 1], [1, 1]] and asked == [["a", "bb"]]
    assert vectors.embed(["bb", "ccc"]).tolist() == [[2, 1], [3, 1]] and asked[-1] == ["ccc"]
    assert vectors.missing(["a", "dddd"]) == ["dddd"]
    vectors.embed(["dddd"])  # over the limit: "a", the least recently used, is dropped
    assert vectors.missing(["a", "bb", "ccc", "dddd"]) == ["a"]
