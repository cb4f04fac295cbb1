"""Decisions persist and apply: drops, merges and duplicate sets become a cleaned data set with groups."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset

from core.analysis.audit import AuditSettings, audit
from core.analysis.cleaning import decide, export, plan, read_decisions
from core.corpus.data import epoch_batches, load_pairs
from core.errors import GistlabError


@pytest.fixture
def audited():
    """Six rows: 0/1 share a positive (a duplicate set), 2's positive beats 3's own (a false negative),
    4's positive is far from its anchor (a suspect positive)."""
    vec = {"kitten": [1, 0, 0, 0], "cat": [1, 0.1, 0, 0], "a cat": [1, 0.05, 0, 0],
           "dog": [0, 1, 0, 0], "a dog": [0, 1, 0.2, 0], "hound": [0, 1, 0.6, 0], "a hound": [0, 0.6, 1, 0],
           "tree": [0, 0, 0, 1], "a fish": [0.2, 0.1, 0.2, -1], "sun": [0.3, 0.3, 0.3, 0.3], "a star": [0.3, 0.3, 0.3, 0.31]}
    ds = Dataset.from_dict({"anchor": ["kitten", "cat", "dog", "hound", "tree", "sun"],
                            "positive": ["a cat", "a cat", "a dog", "a hound", "a fish", "a star"]})
    embed = lambda texts: torch.tensor([vec[t] for t in texts], dtype=torch.float32)  # noqa: E731
    report = audit(ds, embed, AuditSettings(max_above=2, weak_share=0.5), about={"guide": "table"})
    return ds, report


def test_the_fixture_has_one_finding_of_each_kind(audited):
    _, report = audited
    assert report.counts() == {"fn": 1, "dup": 1, "pos": 1}
    assert report.false_negatives.finding.tolist() == ["fn:3:2"]
    assert report.suspects.finding.tolist() == ["pos:4"]


def test_decisions_persist_and_are_checked(tmp_path):
    path = tmp_path / "decisions.json"
    assert read_decisions(path) == {}
    decide(path, "fn:3:2", "merge")
    decide(path, "pos:4", "drop")
    decide(path, "pos:4", None)  # forgotten again
    assert read_decisions(path) == {"fn:3:2": "merge"}  # what a second tab or a reload reads
    with pytest.raises(GistlabError, match="not one of keep, drop"):
        decide(path, "pos:4", "merge")
    with pytest.raises(GistlabError, match="Unknown finding"):
        decide(path, "xx:1", "keep")
    path.write_text("{broken")
    with pytest.raises(GistlabError, match="not valid JSON"):
        read_decisions(path)


def test_plan_undecided_duplicates_are_grouped_and_keep_leaves_them(audited):
    ds, report = audited
    undecided = plan(report, {}, len(ds))
    assert undecided.groups[0] == undecided.groups[1] == "g0" and undecided.summary["dropped"] == 0
    kept = plan(report, {"dup:0": "keep"}, len(ds))
    assert kept.groups == [None] * 6 and kept.summary["groups"] == 0
    dropped = plan(report, {"dup:0": "drop", "fn:3:2": "merge", "pos:4": "drop"}, len(ds))
    keeper = int(report.duplicates.query("keeper").row.item())
    assert dropped.dropped.tolist() == sorted({1 - keeper, 4})
    assert dropped.groups[2] == dropped.groups[3] == "g2" and dropped.groups[keeper] is None
    assert dropped.summary["decisions"]["fn"] == {"keep": 0, "drop": 0, "merge": 1, "undecided": 0}
    with pytest.raises(GistlabError, match="does not have"):
        plan(report, {"fn:9:9": "keep"}, len(ds))


@pytest.mark.parametrize("name", ["clean.parquet", "clean.csv", "clean.jsonl", "clean_dir"])
def test_export_formats_load_back_with_groups_and_fewer_rows(audited, tmp_path, name):
    ds, report = audited
    decisions = {"fn:3:2": "merge", "pos:4": "drop"}
    written = export(ds, report, decisions, tmp_path / name)
    back = load_pairs(str(written.path))
    assert len(back) == 5 and "tree" not in back["anchor"]
    groups = dict(zip(back["anchor"], back["group"]))
    assert groups["dog"] == groups["hound"] and groups["kitten"] == groups["cat"] != groups["dog"]
    assert groups["sun"] is None
    summary = json.loads(written.report_path.read_text())
    assert summary["rows_in"] == 6 and summary["rows_out"] == 5 and summary["groups"] == 2
    assert summary["guide"] == "table" and summary["thresholds"]["duplicate_threshold"] == 0.95
    assert summary["decisions"]["pos"]["drop"] == 1


def test_existing_groups_are_kept_and_joined(audited, tmp_path):
    ds, report = audited
    ds = ds.add_column("group", ["x", None, None, None, None, "x"])  # the user says 0 and 5 belong together
    written = export(ds, report, {}, tmp_path / "c.parquet")
    back = pd.read_parquet(written.path)
    assert back.group[0] == back.group[1] == back.group[5]  # duplicate set joined with the user's group


def test_export_refuses_other_data_and_bad_suffix(audited, tmp_path):
    ds, report = audited
    with pytest.raises(GistlabError, match="use .parquet"):
        export(ds, report, {}, tmp_path / "x.xlsx")
    with pytest.raises(GistlabError, match="audit covered data of 6 rows"):
        export(ds.select(range(5)), report, {}, tmp_path / "x.parquet")


def test_training_batches_of_the_export_keep_groups_apart(audited, tmp_path):
    ds, report = audited
    big = Dataset.from_dict({c: list(ds[c]) * 4 for c in ds.column_names})  # 24 rows: four copies of each
    vocab = {t: k for k, t in enumerate(sorted(set(big["anchor"]) | set(big["positive"])))}
    one_hot = lambda texts: torch.tensor(np.eye(len(vocab))[[vocab[t] for t in texts]], dtype=torch.float32)  # noqa: E731
    copies = audit(big, one_hot, AuditSettings(duplicate_threshold=0.99))  # exact copies only
    written = export(big, copies, {}, tmp_path / "copies.parquet")
    back = load_pairs(str(written.path))
    assert back["group"].count(None) == 0  # every row has copies
    for batch in epoch_batches(back, 4, 0, 0):
        assert len({back["group"][r] for r in batch}) == 4
