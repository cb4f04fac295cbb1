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

from core.bundled import manifest, read_table
from core.errors import GistlabError

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
    """``load_data`` from the bundled tables; subclasses say how in ``_load``."""

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = {"default": self._load()}
        self.data_loaded = True

    def _load(self) -> Any:
        raise NotImplementedError


class _BundledRetrieval(_Bundled, AbsTaskRetrieval):
    """Queries, corpus, qrels (and top-ranked candidates for reranking) from ``<prefix>_*.parquet``."""

    prefix: str

    def _load(self) -> dict[str, RetrievalSplitData]:
        qrels: dict[str, dict[str, int]] = {}
        for row in read_table(f"benchmark/{self.prefix}_qrels.parquet").to_pylist():
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = row["score"]
        top_ranked = None
        if self.metadata.type == "Reranking":
            table = read_table(f"benchmark/{self.prefix}_top_ranked.parquet")
            top_ranked = dict(zip(table["query-id"].to_pylist(), table["corpus-ids"].to_pylist()))
        return {"test": RetrievalSplitData(
            queries=_dataset(f"benchmark/{self.prefix}_queries.parquet"),
            corpus=_dataset(f"benchmark/{self.prefix}_corpus.parquet"),
            relevant_docs=qrels,
            top_ranked=top_ranked,
        )}


class WordNetRetrieval(_BundledRetrieval):
    prefix = "retrieval"
    metadata = _metadata(
        "WordNetRetrieval", "Retrieval", "ndcg_at_10",
        "Find the definition of the sense a usage example illustrates, among every held-out definition.",
    )


class WordNetReranking(_BundledRetrieval):
    prefix = "reranking"
    metadata = _metadata(
        "WordNetReranking", "Reranking", "map_at_1000",
        "Rank the definitions of every sense of a word (same part of speech) for a usage example "
        "of one of them; some distractor definitions are training senses, the target never is.",
    )


class WordNetClassification(_Bundled, AbsTaskClassification):
    metadata = _metadata(
        "WordNetClassification", "Classification", "accuracy",
        "Predict a definition's lexicographer category (noun.animal, verb.motion, ...) with a "
        "logistic-regression probe trained on 8 held-out definitions per category.",
        category="t2c", task_subtypes=["Topic classification"],
    )

    def _load(self) -> DatasetDict:
        table = _dataset("benchmark/classification.parquet")
        return DatasetDict({
            split: table.filter(lambda row, s=split: row["split"] == s).select_columns(["text", "label"])
            for split in ("train", "test")
        })


class WordNetClustering(_Bundled, AbsTaskClustering):
    metadata = _metadata(
        "WordNetClustering", "Clustering", "v_measure",
        "Cluster definitions by their lexicographer category.",
        category="t2c", task_subtypes=["Thematic clustering"],
    )
    max_fraction_of_documents_to_embed = None  # the table is already small: embed all of it
    max_documents_per_cluster = 500

    def _load(self) -> DatasetDict:
        return DatasetDict({"test": _dataset("benchmark/clustering.parquet")})


class WordNetPairClassification(_Bundled, AbsTaskPairClassification):
    metadata = _metadata(
        "WordNetPairClassification", "PairClassification", "max_ap",
        "Tell whether two definitions belong to co-hyponyms (synsets sharing a direct hypernym); "
        "the negatives share the lexicographer category but no hypernym.",
        annotations_creators="derived",
    )

    def _load(self) -> DatasetDict:
        return DatasetDict({"test": _dataset("benchmark/pair_classification.parquet")})


class WordNetSTS(_Bundled, AbsTaskSTS):
    metadata = _metadata(
        "WordNetSTS", "STS", "cosine_spearman",
        "Score the similarity of two noun definitions; gold = 5 x Wu-Palmer similarity of their "
        "synsets in the hypernym tree (a taxonomy proxy, not human similarity judgements).",
        annotations_creators="derived",
    )
    min_score = 0
    max_score = 5

    def _load(self) -> DatasetDict:
        return DatasetDict({"test": _dataset("benchmark/sts.parquet")})


TASKS = (WordNetRetrieval, WordNetReranking, WordNetClassification, WordNetClustering,
         WordNetPairClassification, WordNetSTS)
TASK_NAMES = tuple(t.metadata.name for t in TASKS)


def bundled_tasks(names: Iterable[str] | None = None) -> list:
    """Fresh instances of the bundled tasks (all six, or those named), in benchmark order."""
    if names is None:
        return [task() for task in TASKS]
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in TASK_NAMES]
    if unknown or not wanted:
        raise GistlabError(
            f"Unknown bundled task(s) {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"choose from {', '.join(TASK_NAMES)}."
        )
    return [task() for task in TASKS if task.metadata.name in wanted]
