"""Guide-filtered hard negatives: the retriever's candidates, the guide's TopK-PercPos filter, the output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Dataset

from core.errors import GistlabError
from core.analysis.mining import MiningSettings, guide_filter, mine, retrieve

ANCHORS = [f"anchor {k}" for k in range(12)]
POSITIVES = [f"positive {k}" for k in range(12)]


def axis_embed(texts):
    """A guide where text k (of either role) points along axis k: 'anchor 3' is close only to 'positive 3',
    except that positive 5 also sits close to anchor 4 (a false negative for row 4)."""
    out = []
    for t in texts:
        k = int(t.split()[-1])
        v = np.eye(12)[k] + (0.9 * np.eye(12)[4] if t == "positive 5" else 0)
        out.append(v)
    return torch.tensor(np.array(out), dtype=torch.float32)


def test_settings_are_checked():
    for bad in (dict(num_negatives=0), dict(num_negatives=5, candidates=3), dict(guide_share=0.0)):
        with pytest.raises(GistlabError):
            MiningSettings(**bad)


def test_guide_filter_is_topk_percpos_with_the_guides_scores():
    kept = guide_filter(["anchor 4", "anchor 1"], ["positive 4", "positive 1"],
                        [["positive 5", "positive 6"], ["positive 2"]], axis_embed, 0.95)
    # cos(anchor 4, positive 5) = 0.9 / |(0,..,1,0.9)| = 0.67 < 0.95 * 1: kept at 0.95 ...
    assert kept[0].tolist() == [True, True] and kept[1].tolist() == [True]
    # ... and removed when the share is lower than that score
    strict = guide_filter(["anchor 4"], ["positive 4"], [["positive 5", "positive 6"]], axis_embed, 0.5)
    assert strict[0].tolist() == [False, True]


def test_mine_adds_negative_columns_and_counts_what_the_guide_removed(tiny_model):
    ds = Dataset.from_dict({"anchor": ANCHORS, "positive": POSITIVES, "negative": ["x"] * 12, "task": ["t"] * 12})
    settings = MiningSettings(num_negatives=2, candidates=10, guide_share=0.5)
    result = mine(ds, tiny_model, axis_embed, settings)
    out, summary = result.dataset, result.summary
    assert [c for c in out.column_names if c.startswith("negative")] == ["negative_1", "negative_2"]
    assert "task" in out.column_names and len(out) == summary["rows_out"] == 12
    assert summary["candidates_considered"] == 120 and summary["removed_by_guide"] == 1  # positive 5 for row 4
    row4 = out.to_pandas().set_index("anchor").loc["anchor 4"]
    assert "positive 5" not in (row4.negative_1, row4.negative_2)
    for row in out:  # never the row's own positive
        assert row["positive"] not in (row["negative_1"], row["negative_2"])
    candidates = retrieve(ds, tiny_model, settings)
    assert all(len(c) == 10 and POSITIVES[i] not in c for i, c in enumerate(candidates))


def test_too_little_data_is_one_line(tiny_model):
    ds = Dataset.from_dict({"anchor": ANCHORS[:3], "positive": POSITIVES[:3]})
    with pytest.raises(GistlabError, match="too few"):
        mine(ds, tiny_model, axis_embed, MiningSettings(num_negatives=1, candidates=5))
    with pytest.raises(GistlabError, match="at least two rows"):
        mine(ds.select([0]), tiny_model, axis_embed)


def test_cli_mine_writes_the_data_and_its_summary(tiny_model_dir, tmp_path, capsys):
    import pandas as pd

    from core.cli import main
    from core.corpus.data import load_pairs

    data = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": ANCHORS, "positive": POSITIVES}).to_csv(data, index=False)
    out = tmp_path / "mined.jsonl"
    code = main(["mine", "--data", str(data), "--retriever", str(tiny_model_dir), "--guide", str(tiny_model_dir),
                 "--num-negatives", "2", "--candidates", "6", "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "mined.jsonl.summary.json").read_text())
    assert code == 0 and f"{summary['rows_out']} of 12 rows with 2 negatives" in printed
    assert len(load_pairs(str(out))) == summary["rows_out"]
    assert main(["mine", "--data", str(data), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "Cannot write x.xlsx" in capsys.readouterr().err


def test_an_index_retrieves_what_exact_search_does_and_says_its_recall(tiny_model):
    from core.analysis.neighbours import NeighbourSettings

    anchors = [f"anchor {k}" for k in range(300)] + ["anchor 0"]  # anchor 0 has two positives: neither is its candidate
    positives = [f"positive {k} of {k % 7}" for k in range(300)] + ["another positive of 0"]
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    exact, indexed = {}, {}
    reference = retrieve(ds, tiny_model, MiningSettings(candidates=8), exact)
    found = retrieve(ds, tiny_model, MiningSettings(candidates=8, neighbours=NeighbourSettings(method="index")), indexed)
    assert exact == {"method": "exact"} and indexed["recall_at_k"]["recall"] >= 0.95
    assert indexed["recall_at_k"]["k"] == 10  # 8 candidates + anchor 0's two positives
    assert np.mean([len(set(f) & set(r)) / 8 for f, r in zip(found, reference)]) >= 0.95
    assert all(len(r) == 8 for r in reference)
    assert not {"positive 0 of 0", "another positive of 0"} & set(reference[0] + reference[300])


def test_large_retriever_vectors_are_memory_mapped_chunk_by_chunk_with_the_same_candidates(tiny_model, monkeypatch):
    import core.analysis.mining as mining
    import core.analysis.spill as spill

    ds = Dataset.from_dict({"anchor": [f"anchor {k}" for k in range(40)],
                            "positive": [f"positive {k} of {k % 5}" for k in range(40)]})
    settings = MiningSettings(candidates=5)
    reference = retrieve(ds, tiny_model, settings)
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)  # every array over a temporary file
    monkeypatch.setattr(mining, "ENCODE_CHUNK", 16)  # three retriever calls for 40 texts
    assert retrieve(ds, tiny_model, settings) == reference
