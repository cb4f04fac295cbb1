"""The whole-data-set audit against a brute-force reference, its duplicates, ground truth and bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset

import core.analysis.audit_search as audit_search
import core.analysis.spill as spill
from core.analysis.audit import AuditSettings, audit, dataset_relations, load_report, progress_writer, read_progress
from core.analysis.audit_search import DUPLICATE_K, audit_rows, duplicate_groups, normalise
from core.analysis.neighbours import NeighbourSettings, exact_top_k, lists, recall_at_k, recall_sample, search_line
from core.errors import GistlabError
from core.method.masking import MarginSettings


def table_embed(vectors: dict[str, np.ndarray]):
    """An Embed that looks texts up in a table (a guide whose verdicts the test chooses)."""
    return lambda texts: torch.tensor(np.stack([vectors[t] for t in texts]), dtype=torch.float32)


@pytest.fixture
def random_data():
    rng = np.random.default_rng(0)
    n, d = 60, 8
    anchors, positives = [f"a{k}" for k in range(n)], [f"p{k}" for k in range(n)]
    a = rng.normal(size=(n, d))
    p = a + rng.normal(scale=1.2, size=(n, d))  # positives near their anchors, some not
    vectors = dict(zip(anchors, a)) | dict(zip(positives, p))
    return Dataset.from_dict({"anchor": anchors, "positive": positives}), table_embed(vectors), a, p


def cosines(x, y):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_findings_match_a_brute_force_reference(random_data, monkeypatch, margin):
    monkeypatch.setattr(audit_search, "CHUNK_CELLS", 7 * 60)  # 7 rows per chunk: many chunks
    ds, embed, a, p = random_data
    settings = AuditSettings(MarginSettings(margin=margin), duplicate_threshold=0.99, max_above=3, weak_share=0.4)
    report = audit(ds, embed, settings)
    s = cosines(a, p)
    g = s.diagonal()
    above = (s > (g - margin)[:, None]) & ~np.eye(len(g), dtype=bool)
    counts = above.sum(1)
    expected_pairs = {tuple(sorted((i, j))) for i, j in zip(*np.nonzero(above)) if counts[i] <= 3}
    found = {tuple(sorted(x)) for x in zip(report.false_negatives.row, report.false_negatives.other_row)}
    assert found == expected_pairs and len(found) > 3
    assert report.false_negatives.above_by.is_monotonic_decreasing
    assert np.allclose(report.false_negatives.above_by,
                       [s[i, j] - g[i] for i, j in zip(report.false_negatives.row, report.false_negatives.other_row)],
                       atol=1e-5)
    weak = set(np.flatnonzero(counts >= 0.4 * (len(g) - 1)))
    assert set(report.suspects.row) == weak and len(weak) > 0
    assert report.suspects.positive_score.is_monotonic_increasing
    assert report.summary["counts"]["fn"] == len(found) and report.counts()["pos"] == len(weak)


@pytest.fixture(scope="module")
def large_data():
    """3,000 rows with every kind of finding: positives near their anchors, near-duplicate positives
    (every 50th row copies the one before), wrong positives (every 97th points away from its anchor)."""
    rng = np.random.default_rng(0)
    n, d = 3000, 32
    a = rng.normal(size=(n, d))
    p = a + rng.normal(scale=0.9, size=(n, d))
    p[1::50] = p[0::50] + rng.normal(scale=0.05, size=p[0::50].shape)
    p[7::97] = -a[7::97] + rng.normal(scale=0.1, size=p[7::97].shape)
    anchors, positives = [f"a{k}" for k in range(n)], [f"p{k}" for k in range(n)]
    vectors = dict(zip(anchors, a)) | dict(zip(positives, p))
    return Dataset.from_dict({"anchor": anchors, "positive": positives}), table_embed(vectors), p


def test_the_index_gives_the_exact_findings_and_reports_a_recall_that_recomputes(large_data, monkeypatch):
    ds, embed, p = large_data
    exact = audit(ds, embed, AuditSettings(weak_share=0.3, neighbours=NeighbourSettings(method="exact")))
    assert exact.summary["search"] == {"method": "exact"}
    assert audit(ds, embed, AuditSettings(weak_share=0.3)).summary["search"] == {"method": "exact"}  # auto: small
    monkeypatch.setattr(audit_search, "COUNT_SAMPLE", 2000)  # suspects counted on a sample of the positives
    settings = NeighbourSettings(method="index", recall_queries=500, seed=3)
    indexed = audit(ds, embed, AuditSettings(weak_share=0.3, neighbours=settings))
    how = indexed.summary["search"]
    assert how["method"] == "index" and how["above_counted_on"] == 2000
    assert all(how["recall_at_k"][side]["recall"] >= 0.95 for side in ("a-p", "p-p"))
    assert how["index"] == f"FAISS IVF{lists(3000)},Flat (nprobe tuned to recall 0.95, lists memory-mapped from disk)"
    for kind, top in (("fn", 20), ("dup", 20), ("pos", 10)):
        ours, reference = indexed.table(kind)["finding"], exact.table(kind)["finding"]
        assert len(reference) >= top
        assert ours.head(top).tolist() == reference.head(top).tolist(), kind
        shared = len(set(ours) & set(reference)) / len(set(reference))
        assert shared >= (0.95 if kind != "pos" else 0.9), kind  # pos: counted on a sample
    # Gaussian rows have no near neighbours (but their copies): a quarter of the lists missed the target,
    # so both searches fell back to exact search and said so
    assert all(how["recall_at_k"][side]["exact"] for side in ("a-p", "p-p"))
    assert {k: how["recall_at_k"]["p-p"][k] for k in ("k", "queries")} == {"k": DUPLICATE_K + 1, "queries": 500}


@pytest.fixture(scope="module")
def clustered_data():
    """4,000 rows around 40 topics (as guide embeddings cluster): anchors near a centre, positives near
    their anchor, every 20th anchor a paraphrase of the one before (false negatives), every 50th
    positive a near-copy of the one before (duplicates; its own pair then suspect)."""
    rng = np.random.default_rng(1)
    n, d = 4000, 32
    centres = rng.normal(size=(40, d))
    a = centres[rng.integers(40, size=n)] + rng.normal(scale=0.75, size=(n, d))
    a[1::20] = a[0::20] + rng.normal(scale=0.15, size=a[0::20].shape)
    p = a + rng.normal(scale=0.8, size=(n, d))
    p[1::50] = p[0::50] + rng.normal(scale=0.05, size=p[0::50].shape)
    anchors, positives = [f"a{k}" for k in range(n)], [f"p{k}" for k in range(n)]
    return Dataset.from_dict({"anchor": anchors, "positive": positives}), \
        table_embed(dict(zip(anchors, a)) | dict(zip(positives, p))), a, p


def test_on_clustered_data_the_tuned_index_gives_the_exact_findings_within_its_recall(clustered_data, monkeypatch):
    ds, embed, a, p = clustered_data
    exact = audit(ds, embed, AuditSettings(weak_share=0.3, neighbours=NeighbourSettings(method="exact")))
    monkeypatch.setattr(audit_search, "COUNT_SAMPLE", len(ds))  # suspects counted on every positive
    settings = NeighbourSettings(method="index", recall_queries=500, seed=3)
    indexed = audit(ds, embed, AuditSettings(weak_share=0.3, neighbours=settings))
    recall = indexed.summary["search"]["recall_at_k"]
    assert all(1 <= recall[side]["nprobe"] < lists(len(ds)) // 4 and recall[side]["recall"] >= 0.95
               for side in ("a-p", "p-p"))
    worst = min(r["recall"] for r in recall.values())
    for kind in ("fn", "dup", "pos"):
        ours, reference = set(indexed.table(kind)["finding"]), set(exact.table(kind)["finding"])
        assert len(reference) >= 20, kind
        assert len(ours & reference) / len(reference) >= worst - 0.05, kind  # missed no more than the recall says
        assert len(ours - reference) / len(reference) <= 1 - worst + 0.05, kind
    for kind in ("fn", "pos"):  # the findings both found are ranked alike: a miss only drops one
        ours, reference = indexed.table(kind)["finding"].tolist(), exact.table(kind)["finding"].tolist()
        assert [f for f in ours if f in set(reference)] == [f for f in reference if f in set(ours)], kind
    # each recall in the summary is that of the same search on the same seeded sample
    from core.analysis.neighbours import Neighbours

    a, p = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, p))
    a, p = a.astype(np.float32), p.astype(np.float32)
    index = Neighbours(p, settings, approximate=True)
    for side, queries, k in (("a-p", a, 5), ("p-p", p, DUPLICATE_K + 1)):
        sample = recall_sample(len(queries), settings)
        index.ivf.nprobe = recall[side]["nprobe"]
        found_scores, found = index.search(queries[sample], k)
        recomputed = recall_at_k(found, found_scores, exact_top_k(queries[sample], p, k)[0])
        assert recall[side]["recall"] == round(recomputed, 4) and recall[side]["k"] == k


def test_rows_a_missed_neighbour_made_findings_are_searched_again_and_dropped(monkeypatch):
    """A missed neighbour can only lower a row's count of others above its threshold: a row that then has
    fewer than max_above + 1 would give findings exact search does not, so it is searched again, deeper."""
    from core.analysis.neighbours import Neighbours

    rng = np.random.default_rng(5)
    d, vectors, anchors, positives = 64, {}, [], []

    def unit(x):
        return x / np.linalg.norm(x)

    def at(a, cos):  # a unit vector at cosine ``cos`` from ``a``
        u = unit(rng.normal(size=d) - (rng.normal(size=d) @ a) * a)
        u = unit(u - (u @ a) * a)
        return cos * a + np.sqrt(1 - cos ** 2) * u

    for group in range(30):  # three rows share an anchor; positives at 0.80, 0.85, 0.90 from it
        a = unit(rng.normal(size=d))
        for k, cos in enumerate((0.80, 0.85, 0.90)):
            anchors.append(f"g{group}a{k}"), positives.append(f"g{group}p{k}")
            vectors[anchors[-1]], vectors[positives[-1]] = a, at(a, cos)
    for k in range(300):  # rows with no neighbour
        a = unit(rng.normal(size=d))
        anchors.append(f"x{k}a"), positives.append(f"x{k}p")
        vectors[anchors[-1]], vectors[positives[-1]] = a, at(a, 0.8)
    ds, embed = Dataset.from_dict({"anchor": anchors, "positive": positives}), table_embed(vectors)
    every_list = NeighbourSettings(method="index", params=f"nprobe={lists(len(ds))}")  # the index finds all
    settings = AuditSettings(max_above=1, neighbours=every_list)
    exact = audit(ds, embed, AuditSettings(max_above=1, neighbours=NeighbourSettings(method="exact")))
    # row 0 of a group has two others above (a 0.85 and a 0.90 positive): beaten by too many to be a finding;
    # row 1 has one (0.90): a finding; row 2 none
    assert len(exact.table("fn")) == 30 and set(exact.table("fn")["row"] % 3) == {1}
    measured = Neighbours.search_measured

    def second_missed(self, queries, k, progress=None):  # the anchors' search loses every row's second result
        scores, ids, recall = measured(self, queries, k, progress)
        if k == settings.max_above + 2:
            ids = ids.copy()
            ids[:, 1] = -1
        return scores, ids, recall

    monkeypatch.setattr(Neighbours, "search_measured", second_missed)
    indexed = audit(ds, embed, settings)
    recheck = indexed.summary["search"]["recheck"]
    assert recheck == {"rows": 60, "nprobe": lists(len(ds)), "dropped": 30}  # rows 0 and 1 of each group asked again
    ours, reference = (r.table("fn").set_index("finding") for r in (indexed, exact))
    assert set(ours.index) == set(reference.index)  # the exact findings: all near-equal above_by, so order aside
    assert np.allclose(ours["above_by"], reference.loc[ours.index, "above_by"], atol=1e-6)
    assert "60 rows with a few others above their threshold searched again" in search_line(indexed.summary["search"])


def test_under_a_positive_margin_copies_of_a_rows_positive_do_not_crowd_out_its_findings():
    """Copies of row 0's positive score exactly g, above t = g - margin, and rank before two real hits
    at 0.87 and 0.86: the index path asks for room for them and finds what exact search finds."""
    rng = np.random.default_rng(6)
    d = 64

    def unit(x):
        return x / np.linalg.norm(x)

    def at(a, cos):
        u = unit(rng.normal(size=d))
        u = unit(u - (u @ a) * a)
        return cos * a + np.sqrt(1 - cos ** 2) * u

    a = unit(rng.normal(size=d))
    own = at(a, 0.90)
    anchors, positives = ["a0"], ["own"]
    vectors = {"a0": a, "own": own, "hit 1": at(a, 0.87), "hit 2": at(a, 0.86)}
    for k in range(4):  # four more rows whose positive is row 0's text, their anchors elsewhere
        anchors.append(f"c{k}"), positives.append("own")
        vectors[f"c{k}"] = at(own, 0.9)
    for k, text in enumerate(["hit 1", "hit 2"]):
        anchors.append(f"h{k}"), positives.append(text)
        vectors[f"h{k}"] = at(vectors[text], 0.9)
    for k in range(200):
        anchors.append(f"x{k}"), positives.append(f"xp{k}")
        vectors[f"x{k}"] = unit(rng.normal(size=d))
        vectors[f"xp{k}"] = at(vectors[f"x{k}"], 0.8)
    ds, embed = Dataset.from_dict({"anchor": anchors, "positive": positives}), table_embed(vectors)
    margin = MarginSettings(margin=0.05)
    exact = audit(ds, embed, AuditSettings(margin=margin, neighbours=NeighbourSettings(method="exact")))
    indexed = audit(ds, embed, AuditSettings(margin=margin, neighbours=NeighbourSettings(
        method="index", params=f"nprobe={lists(len(ds))}")))
    assert indexed.summary["search"]["recall_at_k"]["a-p"]["k"] == 4 + 5  # max_above + 1, own and 4 copies
    pairs = {frozenset(x) for x in zip(exact.table("fn")["row"], exact.table("fn")["other_row"])}
    assert {frozenset({0, 5}), frozenset({0, 6})} <= pairs  # row 0's two real hits
    assert pairs == {frozenset(x) for x in zip(indexed.table("fn")["row"], indexed.table("fn")["other_row"])}


def test_duplicates_group_copies_and_near_copies_and_suggest_the_most_believed_keeper():
    positives = ["A cat.", "a  cat", "a dog", "a hound", "a fish", "a bird"]
    anchors = ["kitten", "cat", "dog", "hound", "trout", "robin"]
    vec = {"A cat.": [1, 0, 0, 0], "a  cat": [1, 0.3, 0, 0], "a dog": [0, 1, 0, 0], "a hound": [0, 1, 0.05, 0],
           "a fish": [0, 0, 1, 0], "a bird": [0, 0, 0, 1],
           "kitten": [1, 0.1, 0, 0], "cat": [1, 0.3, 0, 0], "dog": [0, 1, 0, 0], "hound": [0, 1, 0.3, 0],
           "trout": [0, 0, 1, 0], "robin": [0, 0, 0.2, 1]}
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    report = audit(ds, table_embed({k: np.array(v, float) for k, v in vec.items()}),
                   AuditSettings(duplicate_threshold=0.99))
    dup = report.duplicates
    assert report.counts()["dup"] == 2 and set(dup.row) == {0, 1, 2, 3}
    cats = dup[dup.finding == "dup:0"]
    assert set(cats.kind) == {"keeper", "same positive"}  # equal once case, spaces and the full stop are off
    assert cats[cats.keeper].row.item() == 1  # "cat" -> "a  cat" scores 1.0, the kitten row less
    dogs = dup[dup.finding == "dup:2"]
    assert set(dogs.kind) == {"keeper", "near-duplicate"} and (dogs.similarity > 0.99).all()
    # rows of one duplicate group are not also reported as false negatives of each other
    pairs = set(zip(report.false_negatives.row, report.false_negatives.other_row))
    assert not pairs & {(0, 1), (1, 0), (2, 3), (3, 2)}


def test_normalise_and_groups_without_guide_help():
    assert normalise("  The  Cat!  ") == normalise("the cat") == "the cat"
    far = torch.eye(3)
    assert duplicate_groups(["x", "X.", "y"], far, 0.99).tolist() == [0, 0, -1]


def test_limit_audits_a_seeded_sample(random_data):
    ds, embed, _, _ = random_data
    rows = audit_rows(ds, AuditSettings(limit=20, seed=3))
    assert len(rows) == 20 and (np.diff(rows) > 0).all()
    assert rows.tolist() == audit_rows(ds, AuditSettings(limit=20, seed=3)).tolist()
    report = audit(ds, embed, AuditSettings(limit=20, seed=3))
    assert set(report.false_negatives.row) <= set(rows.tolist())
    assert report.summary["audited_rows"] == 20 and report.summary["rows"] == 60


def test_bad_inputs_are_one_line(random_data):
    ds, embed, _, _ = random_data
    with pytest.raises(GistlabError, match="no rows"):
        audit(ds.select([]), embed)
    with pytest.raises(GistlabError, match="give at least two"):
        audit(ds.select([0]), embed)
    with pytest.raises(GistlabError, match="no 'positive' column"):
        audit(ds.remove_columns("positive"), embed)
    for bad in (dict(limit=1), dict(max_above=0), dict(weak_share=0.0), dict(duplicate_threshold=2.0)):
        with pytest.raises(GistlabError):
            AuditSettings(**bad)


def test_ground_truth_relations_and_precision():
    # rows 0 and 1 share a group (true positives of each other); row 2 is on its own
    ds = Dataset.from_dict({"anchor": ["cat", "kitty", "car"], "positive": ["feline", "a cat", "vehicle"],
                            "group": ["g1", "g1", None]})
    relations = dataset_relations(ds)
    codes = relations(np.array([0, 0, 2]), np.array([1, 2, 2]))
    assert codes.tolist() == ["false-negative", "unrelated", "false-negative"]
    vec = {"cat": [1, 0, 0], "feline": [0.8, 0.6, 0], "kitty": [0.9, 0.1, 0], "a cat": [1, 0.05, 0],
           "car": [0, 0, 1], "vehicle": [0, 0.2, 1]}
    report = audit(ds, table_embed({k: np.array(v, float) for k, v in vec.items()}), relations=relations)
    fn = report.false_negatives
    assert len(fn) >= 1 and set(fn.relation) == {"false-negative"}
    assert report.summary["precision"]["fn"] == 1.0 and report.summary["ground_truth"]
    assert dataset_relations(ds.remove_columns("group")) is None


def test_bundled_ground_truth_reads_wordnet_provenance():
    from core.corpus.data import load_pairs

    ds = load_pairs("bundled")
    relations = dataset_relations(ds)
    # row 0's own pair is one synset; a row of another task is (almost surely) another meaning
    own, other = relations(np.array([0, 0]), np.array([0, 16000]))
    assert own == "false-negative" and other != "false-negative"
    # the task decides: two rows of one category are right answers for a category triplet, a related
    # hard negative (same category, another synset) for a definition task
    frame = ds.select_columns(["task", "positive_category", "positive_synset"]).to_pandas()
    for task, expect in (("category_triplet", "false-negative"), ("example_definition", "same-category")):
        rows = frame[frame.task == task]
        first = rows.iloc[0]
        same = rows[(rows.positive_category == first.positive_category)
                    & (rows.positive_synset != first.positive_synset)].index[0]
        [got] = relations(np.array([rows.index[0]]), np.array([same]))
        assert got in ((expect,) if expect == "false-negative" else (expect, "same-word")), (task, got)


def test_save_load_and_progress(random_data, tmp_path):
    ds, embed, _, _ = random_data
    seen = []
    report = audit(ds, embed, AuditSettings(limit=30), progress=lambda *x: seen.append(x), about={"guide": "t"})
    assert seen[-1] == ("searching", 60, 60) and seen[0][0] == "embedding"
    back = load_report(report.save(tmp_path / "r"))
    assert back.counts() == report.counts() and back.summary["guide"] == "t"
    assert back.false_negatives.finding.tolist() == report.false_negatives.finding.tolist()
    with pytest.raises(GistlabError, match="no finished audit"):
        load_report(tmp_path / "empty")
    write = progress_writer(tmp_path / "job")
    write("searching", 5, 10)
    state = read_progress(tmp_path / "job")
    assert state["done"] == 5 and state["total"] == 10 and state["eta_s"] is not None


@pytest.fixture
def pairs_csv(tmp_path):
    rows = [("a cat", "a small feline", "x"), ("a kitten", "a small feline", "y"), ("a car", "a vehicle", "z"),
            ("a boat", "a vessel", "w"), ("the sun", "a star", "v"), ("a tree", "a plant", "u")]
    path = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=["anchor", "positive", "negative"]).to_csv(path, index=False)
    return path


def test_cli_audit_prints_counts_writes_the_report_and_exports(tiny_model_dir, pairs_csv, tmp_path, capsys):
    import json

    from core.cli import main

    out = tmp_path / "report"
    code = main(["audit", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--out", str(out),
                 "--duplicate-threshold", "1"])  # a random guide finds everything alike: exact copies only
    printed = capsys.readouterr().out
    assert code == 0 and "audited 6 of 6 rows" in printed
    assert "no ground truth in this data" in printed and "search: exact\n" in printed
    assert "duplicate groups: 1 (2 rows)" in printed  # the two rows whose positive is "a small feline"
    report = load_report(out)
    for name in ("suspected false negatives", "suspect positives"):
        assert f"{name}: {report.counts()['fn' if 'false' in name else 'pos']}" in printed
    assert (out / "progress.json").is_file()
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps({"decisions": {"dup:0": "drop"}}))
    code = main(["audit", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--out", str(out),
                 "--duplicate-threshold", "1", "--apply", str(decisions), "--export", str(tmp_path / "clean.parquet")])
    assert code == 0 and "cleaned data: 5 of 6 rows" in capsys.readouterr().out
    assert json.loads((tmp_path / "clean.parquet.report.json").read_text())["dropped"] == 1
    code = main(["audit", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--out", str(tmp_path / "indexed"),
                 "--duplicate-threshold", "1", "--search", "index", "--recall", "0.9"])
    printed = capsys.readouterr().out
    assert code == 0 and "search: FAISS IVF1,Flat (nprobe tuned to recall 0.9, lists memory-mapped from disk), recall@6 1.0000 at nprobe 1 (a-p); " \
        "recall@6 1.0000 at nprobe 1 (p-p) against exact search on 6 seeded queries" in printed
    # 6 rows: one list; a-p asks for max_above 3 + 1, and room for "a small feline"'s 2 rows
    assert load_report(tmp_path / "indexed").counts() == load_report(out).counts()


@pytest.mark.parametrize("argv, needle", [
    (["--limit", "1"], "at least 2 rows"),
    (["--apply", "d.json"], "together"),
    (["--weak-share", "0"], "share of the rows"),
    (["--recall", "1.5"], "target recall is a share"),
])
def test_cli_audit_bad_input_is_one_line(tiny_model_dir, pairs_csv, tmp_path, capsys, argv, needle):
    from core.cli import main

    code = main(["audit", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_cli_audit_one_row_and_empty_data(tiny_model_dir, tmp_path, capsys):
    from core.cli import main

    one = tmp_path / "one.csv"
    one.write_text("anchor,positive\na,b\n")
    assert main(["audit", "--data", str(one), "--guide", str(tiny_model_dir), "--out", str(tmp_path / "r")]) == 2
    assert "give at least two" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("anchor,positive\n")
    assert main(["audit", "--data", str(empty), "--out", str(tmp_path / "r")]) == 2
    assert "no rows" in capsys.readouterr().err


def test_audit_command_hands_its_settings_over_as_a_config_file(tmp_path, monkeypatch):
    """The audit job's argv holds only --config; the CLI reads the file back into equal AuditSettings."""
    import json

    from core.analysis.audit import audit_command
    from core.cli import build_parser, read_config
    from core.cli.options import settings_from_args

    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "home"))
    settings = AuditSettings(MarginSettings("relative", 0.1, positive_floor=0.3), 0.9, 2, 0.4, 50, 7, "nouns")
    argv = audit_command("bundled", "bundled:minilm-l6", settings, tmp_path / "out")
    assert argv[3:5] == ["audit", "--config"] and len(argv) == 6
    assert json.loads(open(argv[5]).read())["out"] == str(tmp_path / "out")
    args = build_parser(read_config(argv[3:])).parse_args(argv[3:])
    back = AuditSettings(settings_from_args(args), args.duplicate_threshold, args.max_above, args.weak_share, args.limit, args.seed,
                         args.task)
    assert back == settings and (args.data, args.guide, args.show) == ("bundled", "bundled:minilm-l6", 0)


def test_the_index_path_scores_a_copy_of_the_own_positive_as_its_own(large_data, monkeypatch):
    """Rows whose positives are copies: the copy scores exactly g (not above the threshold) in both
    paths, whatever rounding the index's own scores carry (here: all nudged up by 1e-6)."""
    from core.analysis.neighbours import Neighbours

    search = Neighbours.search
    monkeypatch.setattr(Neighbours, "search", lambda self, q, k, progress=None: (
        lambda found: (found[0] + 1e-6, found[1]))(search(self, q, k, progress)))
    ds, embed, _ = large_data
    copies = ds.select(list(range(400)) + list(range(0, 400, 3)))  # every third row twice
    reports = [audit(copies, embed, AuditSettings(max_above=2, neighbours=NeighbourSettings(method=m, target_recall=1.0)))
               for m in ("exact", "index")]  # recall 1: a missed neighbour cannot add a finding here
    exact, indexed = (r.false_negatives.set_index("finding") for r in reports)
    assert set(exact.index) == set(indexed.index) and len(exact) > 10
    assert np.allclose(exact.loc[indexed.index, "above_by"], indexed["above_by"], atol=1e-6)


def test_large_embeddings_are_memory_mapped_from_a_temporary_file_with_the_same_findings(large_data, monkeypatch):
    ds, embed, _ = large_data
    ds = ds.select(range(600))
    in_memory = audit(ds, embed, AuditSettings(weak_share=0.3))
    mapped = []
    array = spill.empty
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    monkeypatch.setattr(spill, "empty", lambda rows, dim, path: mapped.append(path) or array(rows, dim, path))
    spilled = audit(ds, embed, AuditSettings(weak_share=0.3))
    assert len(mapped) == 1 and not mapped[0].exists()  # the file was written, and removed after the search
    for kind in ("fn", "dup", "pos"):
        pd.testing.assert_frame_equal(spilled.table(kind), in_memory.table(kind))
