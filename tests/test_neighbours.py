"""Top-k neighbours: the exact reference against brute force, the FAISS index against it, recall, bad settings."""

from __future__ import annotations

import numpy as np
import pytest

import core.analysis.neighbours as neighbours
from core.analysis.neighbours import (NeighbourSettings, Neighbours, exact_top_k, lists, measure_recall, recall_at_k,
                                      recall_sample, search_line)
from core.errors import GistlabError


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_top_k_is_brute_force_best_first_in_chunks(monkeypatch):
    monkeypatch.setattr(neighbours, "CHUNK_CELLS", 7 * 300)  # 7 queries per chunk
    base, queries = unit(300, 16, 0), unit(40, 16, 1)
    scores, ids = exact_top_k(queries, base, 5)
    full = queries @ base.T
    assert (ids == np.argsort(-full, axis=1, kind="stable")[:, :5]).all()
    assert np.allclose(scores, np.take_along_axis(full, ids, axis=1), atol=1e-6)
    assert exact_top_k(queries, base[:3], 5)[1].shape == (40, 3)  # k above the base: all of it


def test_exact_top_k_reads_a_memory_map(tmp_path):
    base = unit(200, 8, 2)
    mapped = np.lib.format.open_memmap(tmp_path / "base.npy", mode="w+", dtype=np.float32, shape=base.shape)
    mapped[:] = base
    mapped.flush()
    readonly = np.load(tmp_path / "base.npy", mmap_mode="r")
    assert np.shares_memory(Neighbours(readonly, approximate=False).base, readonly)  # no copy
    assert (exact_top_k(base[:10], readonly, 3)[1] == exact_top_k(base[:10], base, 3)[1]).all()


def clustered(rows: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit rows around ``clusters`` random centres (as real embeddings lie), each at cosine ~1/sqrt(1+spread^2 d)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(clusters, size=rows)] + spread * rng.normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_index_finds_the_exact_neighbours_and_says_how_often():
    base = unit(4000, 32, 3)
    index = Neighbours(base, NeighbourSettings(method="index", index="HNSW64,Flat", params="efSearch=256",
                                               recall_queries=500, seed=4))
    assert index.approximate and index.describe().startswith("FAISS HNSW64") and not index.tuned
    scores, ids = index.search(base[:100], 10)
    assert (ids[:, 0] == np.arange(100)).all()  # every row is its own nearest
    assert np.allclose(scores, np.einsum("qd,qkd->qk", base[:100], base[ids]), atol=1e-5)  # exact scores of what it found
    measured = measure_recall(index, base, 10)
    sample = recall_sample(len(base), index.settings)
    found_scores, found = index.search(base[sample], 10)
    recomputed = recall_at_k(found, found_scores, exact_top_k(base[sample], base, 10)[0])
    assert measured == {"k": 10, "queries": 500, "recall": round(recomputed, 4)} and measured["recall"] >= 0.95


def test_inverted_lists_on_disk_answer_as_the_lists_in_memory_do(tmp_path, capfd):
    base = clustered(6000, 32, 150, 0.2, 8)
    settings = NeighbourSettings(method="index", params="nprobe=8")
    in_memory, on_disk = Neighbours(base, settings), Neighbours(base, settings, lists_dir=tmp_path)
    assert in_memory.lists_file is None and on_disk.lists_file == tmp_path / "inverted-lists.ivfdata"
    assert on_disk.lists_file.stat().st_size == 6000 * (32 * 4 + 8)  # each row's vector and id, sized once
    assert on_disk.index.ntotal == 6000 and "lists memory-mapped from disk" in on_disk.describe()
    for queries in (base[:500], clustered(300, 32, 150, 0.2, 9)):
        (s1, i1), (s2, i2) = in_memory.search(queries, 7), on_disk.search(queries, 7)
        assert (i1 == i2).all() and (s1 == s2).all()
    assert "resizing" not in capfd.readouterr().out  # FAISS's own print is kept off the user's output
    assert Neighbours(base, NeighbourSettings(method="index", index="IVF16,PQ8"), lists_dir=tmp_path / "x").lists_file \
        is None  # only a flat IVF index stores plain vectors there; others keep their lists in memory


def test_the_default_ivf_index_tunes_nprobe_until_its_recall_reaches_the_target():
    base = clustered(8000, 48, 200, 0.15, 6)
    settings = NeighbourSettings(method="index", recall_queries=400, seed=7)
    index = Neighbours(base, settings)
    assert index.tuned and index.factory == f"IVF{lists(8000)},Flat" == "IVF200,Flat"
    queries = clustered(3000, 48, 200, 0.15, 6)[::-1].copy()
    scores, ids, recall = index.search_measured(queries, 10)
    tried = recall["tried"]
    assert recall["recall"] >= 0.95 and tried[-1] == [recall["nprobe"], recall["recall"]]
    assert all(r < 0.95 for _, r in tried[:-1]) and [n for n, _ in tried] == [2 ** k for k in range(len(tried))]
    assert 1 < recall["nprobe"] < 200  # neither exhaustive nor lucky: a few lists suffice
    assert index.ivf.nprobe == recall["nprobe"] and "nprobe tuned to recall 0.95" in index.describe()
    # the reported recall recomputes from the same seeded sample, and holds over all queries within noise
    sample = recall_sample(len(queries), settings)
    assert recall_at_k(ids[sample], scores[sample], exact_top_k(queries[sample], base, 10)[0]) == \
        pytest.approx(recall["recall"], abs=1e-4)
    assert recall_at_k(ids, scores, exact_top_k(queries, base, 10)[0]) >= recall["recall"] - 0.02
    assert "recall@10 " in search_line({"index": index.describe(), "recall_at_k": recall}) and \
        f"at nprobe {recall['nprobe']}" in search_line({"index": index.describe(), "recall_at_k": recall})


def test_a_target_of_one_probes_until_exact_and_small_sets_get_few_lists():
    assert lists(100) == 2 and lists(10) == 1 and lists(1_000_000) == 4000
    base = clustered(600, 16, 30, 0.3, 8)
    index = Neighbours(base, NeighbourSettings(method="index", target_recall=1.0))
    _, _, recall = index.search_measured(base, 5)
    assert recall["recall"] == 1.0 and recall["nprobe"] <= index.ivf.nlist == lists(600)
    assert Neighbours(base, approximate=False).search_measured(base, 5)[2] is None  # exact: nothing to measure
    with pytest.raises(GistlabError, match="target recall"):
        NeighbourSettings(target_recall=0)


def test_an_ivf_index_trains_on_a_sample():
    base = unit(3000, 16, 5)
    index = Neighbours(base, NeighbourSettings(method="index", index="IVF16,Flat", params="nprobe=16"))
    assert measure_recall(index, base, 5)["recall"] == 1.0  # every list probed: exhaustive


def test_auto_is_exact_below_the_threshold_and_settings_are_checked():
    assert not NeighbourSettings().approximate(49_999) and NeighbourSettings().approximate(50_000)
    assert NeighbourSettings(method="index").approximate(10) and not NeighbourSettings(method="exact").approximate(10**7)
    with pytest.raises(GistlabError):
        NeighbourSettings(method="fast")
    with pytest.raises(GistlabError, match="cannot be built"):
        Neighbours(unit(10, 4, 0), NeighbourSettings(index="NoSuchIndex"), approximate=True)


def test_recall_at_k_counts_what_reaches_the_exact_kth_score_ties_included():
    exact = np.array([[0.9, 0.8, 0.7], [0.9, 0.5, 0.5]])
    found = np.array([[1, 2, -1], [4, 5, 6]])
    scores = np.array([[0.9, 0.8, 0.9], [0.9, 0.5, 0.4]])  # row 0: a miss (-1); row 1: 0.4 below the 3rd
    assert recall_at_k(found, scores, exact) == 4 / 6
    assert recall_at_k(found[1:], np.array([[0.9, 0.5, 0.5]]), exact[1:]) == 1.0  # another of two equals: found


def test_data_without_near_neighbours_falls_back_to_exact_search_and_says_so():
    base = unit(3000, 64, 9)  # isotropic: no list holds a query's neighbours
    index = Neighbours(base, NeighbourSettings(method="index", recall_queries=200))
    scores, ids, recall = index.search_measured(base[:500], 5)
    assert recall["exact"] and recall["recall"] == 1.0 and "nprobe" not in recall
    assert recall["tried"][-1][0] == index.ivf.nlist // 4 and recall["tried"][-1][1] < 0.95
    assert (ids == exact_top_k(base[:500], base, 5)[1]).all()
    assert "(searched exactly: the index stayed below the target up to nprobe 18)" in \
        search_line({"index": index.describe(), "recall_at_k": recall})
