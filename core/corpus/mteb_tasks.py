"""The WordNet mini benchmark: six mteb 2.x tasks over held-out synsets, offline.

Each task subclasses an mteb ``AbsTask*``, carries a ``TaskMetadata`` and overrides ``load_data``
to read its table from ``assets/benchmark/`` (built by scripts/build_assets.py) instead of the
Hub, so ``mteb.evaluate(model, bundled_tasks(), cache=...)`` runs mteb's own evaluators and
metrics with no network. One task per type, all on synsets held out of the training pairs:

- WordNetRetrieval: usage example -> its definition among all held-out definitions (ndcg_at_10)
- WordNetReranking: usage example -> the definitions of every sense of its word (map_at_1000)
- WordNetClassification: definition -> lexicographer category, logistic-regression probe (accuracy)
- WordNetClustering: definitions grouped by lexicographer category (v_measure)
- WordNetPairClassification: are two definitions co-hyponyms? (max_ap)
- WordNetSTS: definition pairs scored 0..5 by Wu-Palmer similarity (cosine_spearman)

The classification-style training triplets use the same categories (on other synsets): say so
when comparing GIST models on WordNetClassification/Clustering, as for MTEB classification.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow.compute as pc
from datasets import Dataset, DatasetDict
from mteb.abstasks import (
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskPairClassification,
    AbsTaskRetrieval,
    AbsTaskSTS,
)
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata
from threadpoolctl import threadpool_limits

from core.corpus.bundled import checked_names, manifest, read_table

WORDNET_CITATION = r"""
@article{miller1995wordnet,
  author = {Miller, George A.},
  journal = {Communications of the ACM},
  number = {11},
  pages = {39--41},
  title = {WordNet: A Lexical Database for English},
  volume = {38},
  year = {1995},
}
"""


def _metadata(name: str, type_: str, main_score: str, description: str, **extra: Any) -> TaskMetadata:
    """Metadata shared by the six tasks: the bundled files, WordNet's licence and citation."""
    fields: dict[str, Any] = dict(
        dataset={"path": "gistlab/assets/benchmark", "revision": manifest()["benchmark_revision"]},
        reference="https://wordnet.princeton.edu/",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        date=("2006-12-01", "2006-12-31"),
        domains=["Written"],
        task_subtypes=[],
        license="https://wordnet.princeton.edu/license-and-commercial-use",
        annotations_creators="expert-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation=WORDNET_CITATION,
    )
    fields.update(extra)
    return TaskMetadata(name=name, type=type_, main_score=main_score,
                        description=description + " Held-out synsets of Princeton WordNet 3.0, bundled with gistlab.",
                        **fields)


def _dataset(relative: str) -> Dataset:
    return Dataset(read_table(relative))


class _Bundled:
    """``load_data`` from the bundled tables: by default ``benchmark/<table>.parquet`` as the test
    split; tasks with other layouts override ``_load``."""

    table: str

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = {"default": self._load()}
        self.data_loaded = True

    def _load(self) -> Any:
        return DatasetDict({"test": _dataset(f"benchmark/{self.table}.parquet")})


class _BundledRetrieval(_Bundled, AbsTaskRetrieval):
    """Queries, corpus, qrels (and top-ranked candidates for reranking) from ``<table>_*.parquet``."""

    def _load(self) -> dict[str, RetrievalSplitData]:
        qrels: dict[str, dict[str, int]] = {}
        for row in read_table(f"benchmark/{self.table}_qrels.parquet").to_pylist():
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = row["score"]
        top_ranked = None
        if self.metadata.type == "Reranking":
            ranked = read_table(f"benchmark/{self.table}_top_ranked.parquet")
            top_ranked = dict(zip(ranked["query-id"].to_pylist(), ranked["corpus-ids"].to_pylist()))
        return {"test": RetrievalSplitData(
            queries=_dataset(f"benchmark/{self.table}_queries.parquet"),
            corpus=_dataset(f"benchmark/{self.table}_corpus.parquet"),
            relevant_docs=qrels,
            top_ranked=top_ranked,
        )}


class WordNetRetrieval(_BundledRetrieval):
    table = "retrieval"
    metadata = _metadata(
        "WordNetRetrieval", "Retrieval", "ndcg_at_10",
        "Find the definition of the sense a usage example illustrates, among every held-out definition.",
    )


class WordNetReranking(_BundledRetrieval):
    table = "reranking"
    metadata = _metadata(
        "WordNetReranking", "Reranking", "map_at_1000",
        "Rank the definitions of every sense of a word (same part of speech) for a usage example "
        "of one of them; some distractor definitions are training senses, the target never is.",
    )


class WordNetClassification(_Bundled, AbsTaskClassification):
    table = "classification"
    metadata = _metadata(
        "WordNetClassification", "Classification", "accuracy",
        "Predict a definition's lexicographer category (noun.animal, verb.motion, ...) with a "
        "logistic-regression probe trained on 8 held-out definitions per category.",
        category="t2c", task_subtypes=["Topic classification"],
    )

    def _calculate_scores(self, y_test, y_pred):
        # mteb hands sklearn the test labels as a lazy datasets Column, which sklearn re-reads row
        # by row for every metric (~25 s for 300 labels); the same labels as a list take ms.
        return super()._calculate_scores(list(y_test), y_pred)

    def _load(self) -> DatasetDict:
        rows = read_table(f"benchmark/{self.table}.parquet")
        return DatasetDict({
            split: Dataset(rows.filter(pc.equal(rows["split"], split)).select(["text", "label"]))
            for split in ("train", "test")
        })


class WordNetClustering(_Bundled, AbsTaskClustering):
    table = "clustering"
    metadata = _metadata(
        "WordNetClustering", "Clustering", "v_measure",
        "Cluster definitions by their lexicographer category.",
        category="t2c", task_subtypes=["Thematic clustering"],
    )
    max_fraction_of_documents_to_embed = None  # the table is already small: embed all of it
    max_documents_per_cluster = 500

    def _evaluate_subset(self, *args: Any, **kwargs: Any) -> Any:
        # k-means on 500 points gains nothing from OpenMP threads, and on cores shared with other
        # jobs their spin-waits cost ~20x (mteb's 10 runs: 46 s against 2.5 s at load 9). This
        # also runs the task's encoding on one thread, a second or two more on idle cores.
        with threadpool_limits(limits=1, user_api="openmp"):
            return super()._evaluate_subset(*args, **kwargs)


class WordNetPairClassification(_Bundled, AbsTaskPairClassification):
    table = "pair_classification"
    metadata = _metadata(
        "WordNetPairClassification", "PairClassification", "max_ap",
        "Tell whether two definitions belong to co-hyponyms (synsets sharing a direct hypernym); "
        "the negatives share the lexicographer category but no hypernym.",
        annotations_creators="derived",
    )


class WordNetSTS(_Bundled, AbsTaskSTS):
    table = "sts"
    metadata = _metadata(
        "WordNetSTS", "STS", "cosine_spearman",
        "Score the similarity of two noun definitions; gold = 5 x Wu-Palmer similarity of their "
        "synsets in the hypernym tree (a taxonomy proxy, not human similarity judgements).",
        annotations_creators="derived",
    )
    min_score = 0
    max_score = 5


TASKS = (WordNetRetrieval, WordNetReranking, WordNetClassification, WordNetClustering,
         WordNetPairClassification, WordNetSTS)
TASK_NAMES = tuple(t.metadata.name for t in TASKS)


def bundled_tasks(names: Iterable[str] | None = None) -> list:
    """Fresh instances of the bundled tasks (all six, or those named), in benchmark order."""
    wanted = TASK_NAMES if names is None else checked_names(names, TASK_NAMES)
    return [task() for task in TASKS if task.metadata.name in wanted]
