"""The committed assets/: training pairs API, split by synset (checked from the files), size,
licence, and that the build script reproduces them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.corpus.bundled import (
    TASK_DESCRIPTIONS, TRAIN_TASKS, assets_dir, bundled_pairs, manifest, read_table, task_counts,
)
from core.errors import GistlabError

ROOT = Path(__file__).resolve().parent.parent
WORDNET_DIR = Path("/usr/share/wordnet")


def test_bundled_pairs_has_every_task_and_a_negative_on_every_row():
    ds = bundled_pairs()
    assert ds.column_names[:4] == ["anchor", "positive", "negative", "task"]
    assert sorted(ds.column_names[4:]) == sorted(
        f"{role}_{kind}" for role in ("anchor", "positive", "negative")
        for kind in ("synset", "lemmas", "category"))
    counts = task_counts()
    assert list(counts) == list(TRAIN_TASKS) == list(TASK_DESCRIPTIONS)
    assert len(ds) == sum(counts.values()) and 3000 <= len(ds) <= 50000
    columns = ds[:]  # plain lists: iterating datasets' lazy columns reads row by row
    for task in TRAIN_TASKS:
        assert columns["task"].count(task) == counts[task] > 1000
    for anchor, positive, negative in zip(columns["anchor"], columns["positive"], columns["negative"]):
        assert anchor and positive and negative and len({anchor, positive, negative}) == 3


def test_every_text_records_its_synset_lemmas_and_category():
    """The provenance agrees with the texts: MEDI-style rows pair a synset with itself, words anchors
    are the synset's lemmas, category triplets keep the category for the positive only, and every
    definition text belongs to exactly one recorded synset."""
    rows = read_table("train/wordnet_pairs.parquet").to_pylist()
    definition_of: dict[str, set[str]] = {}
    for row in rows:
        for role in ("anchor", "positive", "negative"):
            assert row[f"{role}_synset"][0] in "nvar" and row[f"{role}_synset"][1:].isdigit()
            assert row[f"{role}_lemmas"] and "." in row[f"{role}_category"]
        definitions = ("positive", "negative") + (("anchor",) if row["task"] == "category_triplet" else ())
        for role in definitions:
            definition_of.setdefault(row[role], set()).add(row[f"{role}_synset"])
        if row["task"] == "category_triplet":
            assert row["anchor_synset"] != row["positive_synset"]
            assert row["anchor_category"] == row["positive_category"] != row["negative_category"]
        else:
            assert row["anchor_synset"] == row["positive_synset"] != row["negative_synset"]
        if row["task"] == "words_definition":  # the whole word list, or one word of a several-word synset
            words = [w.replace("_", " ") for w in row["anchor_lemmas"]]
            assert row["anchor"] == ", ".join(words) or (len(words) > 1 and row["anchor"] in words)
    shared = sum(len(s) > 1 for s in definition_of.values())  # WordNet repeats a few glosses (0.3%)
    assert shared < 0.01 * len(definition_of)


@pytest.mark.parametrize("task", ["example_definition", "words_definition"])
def test_definition_tasks_hold_several_rows_of_some_synsets(task):
    """Same-meaning rows by construction: up to 3 rows of a synset, each with its own anchor and the
    synset's definition as positive, so random batches hold false negatives (assets/README.md)."""
    table = read_table("train/wordnet_pairs.parquet")
    table = table.filter(pc.equal(table["task"], task))
    anchors: dict[str, list[str]] = {}
    for row in table.select(["anchor", "positive", "positive_synset"]).to_pylist():
        anchors.setdefault(row["positive_synset"], []).append(row["anchor"])
    sizes = [len(a) for a in anchors.values()]
    assert max(sizes) == 3 and sum(k > 1 for k in sizes) > 0.2 * len(sizes)
    assert all(len(set(a)) == len(a) for a in anchors.values())  # another example / word list each
    assert manifest()["train_tasks"][task] == table.num_rows == manifest()["config"]["per_train_task"]


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(), reason="WordNet 3.0 database not installed")
def test_provenance_matches_wordnet():
    from core.corpus.wordnet import read_wordnet

    wn = read_wordnet(WORDNET_DIR)
    for row in read_table("train/wordnet_pairs.parquet").to_pylist()[::40]:
        for role in ("anchor", "positive", "negative"):
            synset = wn.synsets[row[f"{role}_synset"]]
            assert row[f"{role}_lemmas"] == list(synset.lemmas)
            assert row[f"{role}_category"] == synset.lexname
        assert row["positive"] == wn.synsets[row["positive_synset"]].definition
        assert row["negative"] == wn.synsets[row["negative_synset"]].definition
        if row["task"] == "example_definition":
            assert row["anchor"] in wn.synsets[row["anchor_synset"]].examples


def test_bundled_pairs_filters_tasks_and_rejects_unknown_ones():
    ds = bundled_pairs(["words_definition"])
    assert set(ds["task"][:]) == {"words_definition"} and len(ds) == task_counts()["words_definition"]
    with pytest.raises(GistlabError, match="Unknown bundled task.*'nope'.*choose from"):
        bundled_pairs(["words_definition", "nope"])
    with pytest.raises(GistlabError, match="none given"):
        bundled_pairs([])


def test_missing_assets_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GISTLAB_ASSETS", str(tmp_path))
    assert assets_dir() == tmp_path
    with pytest.raises(GistlabError, match="missing.*build_assets.py"):
        bundled_pairs()


def _eval_synsets():
    return read_table("benchmark/eval_synsets.parquet").to_pylist()


def test_no_evaluation_synset_reaches_the_training_file():
    held = _eval_synsets()
    eval_texts = {s["definition"] for s in held} | {e for s in held for e in s["examples"]}
    eval_lemmas = {lemma.replace("_", " ").lower() for s in held for lemma in s["lemmas"]}
    train = read_table("train/wordnet_pairs.parquet").to_pylist()
    train_texts = {row[c] for row in train for c in ("anchor", "positive", "negative")}
    assert not train_texts & eval_texts
    word_anchors = [row["anchor"] for row in train if row["task"] == "words_definition"]
    assert not {w.lower() for a in word_anchors for w in a.split(", ")} & eval_lemmas


def test_benchmark_texts_come_from_evaluation_synsets():
    held = _eval_synsets()
    definitions = {s["definition"] for s in held}
    examples = {e for s in held for e in s["examples"]}
    assert set(read_table("benchmark/retrieval_corpus.parquet")["text"].to_pylist()) == definitions
    for task in ("retrieval", "reranking"):
        assert set(read_table(f"benchmark/{task}_queries.parquet")["text"].to_pylist()) <= examples
    assert set(read_table("benchmark/classification.parquet")["text"].to_pylist()) <= definitions
    assert set(read_table("benchmark/clustering.parquet")["sentences"].to_pylist()) <= definitions
    for task in ("pair_classification", "sts"):
        table = read_table(f"benchmark/{task}.parquet")
        assert set(table["sentence1"].to_pylist()) | set(table["sentence2"].to_pylist()) <= definitions


def test_assets_are_small_licensed_and_documented():
    root = assets_dir()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 15 * 2**20
    licence = (root / "LICENSE-WordNet").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved." in licence
    assert "THIS SOFTWARE AND DATABASE IS PROVIDED \"AS IS\"" in licence
    readme = (root / "README.md").read_text()
    for name in manifest()["benchmark_rows"]:
        assert f"benchmark/{name}.parquet" in readme
    assert "build_assets.py --wordnet-dir" in readme and "LICENSE-WordNet" in readme


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(),
                    reason="WordNet 3.0 database not installed at /usr/share/wordnet (apt-get install wordnet-base)")
def test_build_script_reproduces_the_committed_assets(tmp_path):
    """A fresh build, in another process with another hash seed, gives the committed files."""
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_assets.py"), "--wordnet-dir", str(WORDNET_DIR),
         "--seed", str(manifest()["config"]["seed"]), "--out", str(tmp_path)],
        check=True, env=env, capture_output=True,
    )
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(built) > 10
    writer = [pq.ParquetFile(root / "train/wordnet_pairs.parquet").metadata.created_by
              for root in (tmp_path, assets_dir())]
    if writer[0] != writer[1]:  # another pyarrow: same rows; manifest and README hash the bytes
        for rel in (r for r in built if r.suffix == ".parquet"):
            assert pq.read_table(tmp_path / rel).equals(pq.read_table(assets_dir() / rel)), rel
        return
    for rel in built:
        fresh, committed = ((root / rel).read_bytes() for root in (tmp_path, assets_dir()))
        if rel.name == "README.md":  # the fn-rates table is scripts/fn_rates.py's, kept across rebuilds
            fresh, committed = (re.sub(rb"<!-- fn-rates:begin -->.*<!-- fn-rates:end -->", b"", t, flags=re.S)
                                for t in (fresh, committed))
        assert fresh == committed, rel
