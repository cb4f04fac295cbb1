"""The six bundled mteb tasks: data in the shape mteb expects, and mteb.evaluate runs them offline."""

from __future__ import annotations

import math

import mteb
import pytest

from core.errors import GistlabError
from core.corpus.mteb_tasks import TASK_NAMES, bundled_tasks

TYPES = {
    "WordNetRetrieval": "Retrieval", "WordNetReranking": "Reranking",
    "WordNetClassification": "Classification", "WordNetClustering": "Clustering",
    "WordNetPairClassification": "PairClassification", "WordNetSTS": "STS",
}


def _evaluate(model, tasks, tmp_path) -> dict[str, float]:
    result = mteb.evaluate(model, tasks, cache=mteb.ResultCache(tmp_path), show_progress_bar=False)
    return {r.task_name: r.get_score() for r in result.task_results}


def test_one_task_per_type_with_honest_metadata():
    tasks = bundled_tasks()
    assert [t.metadata.name for t in tasks] == list(TASK_NAMES) == list(TYPES)
    for task in tasks:
        meta = task.metadata
        assert meta.type == TYPES[meta.name] and meta.eval_splits == ["test"]
        assert meta.dataset["path"] == "gistlab/assets/benchmark" and len(meta.revision) == 12
        assert "wordnet" in str(meta.license) and "WordNet" in meta.description


def test_bundled_tasks_selects_by_name_and_rejects_unknown_names():
    assert [t.metadata.name for t in bundled_tasks(["WordNetSTS", "WordNetRetrieval"])] == \
        ["WordNetRetrieval", "WordNetSTS"]
    with pytest.raises(GistlabError, match="Unknown bundled task.*'STS12'.*choose from WordNetRetrieval"):
        bundled_tasks(["STS12"])


def test_tasks_load_the_splits_and_columns_mteb_expects():
    tasks = {t.metadata.name: t for t in bundled_tasks()}
    for task in tasks.values():
        task.load_data()
        assert task.data_loaded and list(task.dataset) == ["default"]
    for name in ("WordNetRetrieval", "WordNetReranking"):
        split = tasks[name].dataset["default"]["test"]
        assert split["queries"].column_names == ["id", "text"]
        assert split["corpus"].column_names == ["id", "text"]
        corpus_ids = set(split["corpus"]["id"])
        assert set(split["relevant_docs"]) == set(split["queries"]["id"])
        assert all(set(docs) <= corpus_ids for docs in split["relevant_docs"].values())
    top_ranked = tasks["WordNetReranking"].dataset["default"]["test"]["top_ranked"]
    relevant = tasks["WordNetReranking"].dataset["default"]["test"]["relevant_docs"]
    assert all(len(top_ranked[q]) >= 2 and set(docs) <= set(top_ranked[q]) for q, docs in relevant.items())
    assert tasks["WordNetRetrieval"].dataset["default"]["test"]["top_ranked"] is None

    classification = tasks["WordNetClassification"].dataset["default"]
    assert set(classification) == {"train", "test"}
    assert classification["train"].column_names == ["text", "label"]
    labels = set(classification["train"]["label"])
    assert set(classification["test"]["label"]) <= labels and len(labels) >= 10
    assert all(classification["train"]["label"].count(label) >= 8 for label in labels)  # mteb samples 8

    clustering = tasks["WordNetClustering"].dataset["default"]["test"]
    assert clustering.column_names == ["sentences", "labels"] and len(set(clustering["labels"])) >= 10
    pairs = tasks["WordNetPairClassification"].dataset["default"]["test"]
    assert pairs.column_names == ["sentence1", "sentence2", "labels"]
    assert sum(pairs["labels"]) * 2 == len(pairs)  # balanced
    sts = tasks["WordNetSTS"].dataset["default"]["test"]
    assert sts.column_names == ["sentence1", "sentence2", "score"]
    scores = sts["score"]
    assert 0 <= min(scores) < 1.5 and 4.5 < max(scores) <= 5


def test_all_six_run_through_mteb_evaluate_offline(tiny_model, tmp_path):
    scores = _evaluate(tiny_model, bundled_tasks(), tmp_path)
    assert list(scores) == list(TASK_NAMES)
    for name, score in scores.items():
        assert not math.isnan(score)
        assert (-1.0 if name == "WordNetSTS" else 0.0) <= score <= 1.0, name
    assert list(tmp_path.rglob("WordNetSTS.json"))  # mteb's own result JSON in its cache layout


@pytest.mark.slow
def test_real_model_beats_the_random_one(minilm_l6, tiny_model, tmp_path):
    """Weights matter: all-MiniLM-L6-v2 is far above the tiny random BERT on two tasks."""
    names = ["WordNetRetrieval", "WordNetPairClassification"]
    real = _evaluate(minilm_l6, bundled_tasks(names), tmp_path / "real")
    random = _evaluate(tiny_model, bundled_tasks(names), tmp_path / "random")
    assert real["WordNetRetrieval"] > random["WordNetRetrieval"] + 0.2
    assert real["WordNetPairClassification"] > random["WordNetPairClassification"] + 0.1
