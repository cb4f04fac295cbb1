"""Pairs datasets: every source loads to the same shape, every bad input fails in one clear line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.corpus.data import epoch_batches, load_pairs, negative_columns, raw_columns, sample_batch, task_rows
from core.errors import GistlabError

ROWS = [
    {"anchor": f"anchor {i}", "positive": f"positive {i}", "negative": f"negative {i}",
     "task": "even" if i % 2 == 0 else "odd", "extra": i}
    for i in range(10)
]


def write(path, rows=ROWS):
    """Write ``rows`` in the format the suffix names."""
    frame = pd.DataFrame(rows)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        frame.to_parquet(path)
    return path


def one_line_error(spec, **kwargs) -> str:
    with pytest.raises(GistlabError) as err:
        load_pairs(str(spec), **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_file_type_loads_the_same_pairs(tmp_path, suffix):
    ds = load_pairs(str(write(tmp_path / f"pairs{suffix}")))
    assert ds.column_names == ["anchor", "positive", "negative", "task"]  # 'extra' dropped
    assert ds[3] == {"anchor": "anchor 3", "positive": "positive 3", "negative": "negative 3", "task": "odd"}
    assert negative_columns(ds) == ["negative"]


def test_column_mapping_and_numbered_negatives(tmp_path):
    rows = [{"q": f"q{i}", "a": f"a{i}", "anchor": "ignored", "negative_2": "n2", "negative_1": "n1"}
            for i in range(4)]
    ds = load_pairs(str(write(tmp_path / "qa.csv", rows)), columns={"anchor": "q", "positive": "a"})
    assert ds.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert ds[1]["anchor"] == "q1" and ds[1]["positive"] == "a1"


def test_cells_stay_text_quoted_fields_may_span_lines(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text('anchor,positive,task\nNA,None,1\nnull,"two\nlines, one comma",2\n\n')
    ds = load_pairs(str(path))
    assert ds["anchor"] == ["NA", "null"] and ds["task"] == ["1", "2"]
    assert ds["positive"] == ["None", "two\nlines, one comma"]


def test_local_folder_split(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder / "train.csv")
    write(folder / "test.csv", ROWS[:3])
    assert len(load_pairs(str(folder), split="test")) == 3
    message = one_line_error(folder, split="validation")
    assert "no split 'validation'" in message and "train, test" in message


@pytest.mark.parametrize("name,content,needles", [
    ("empty.csv", "", ["empty.csv is empty"]),
    ("header.csv", "anchor,positive\n", ["header.csv", "no rows"]),
    ("empty.jsonl", "\n\n", ["empty.jsonl is empty"]),
    ("cols.csv", "question,answer\nq,a\n", ["no 'anchor' column", "found: question, answer", "--data-columns"]),
    ("blank.csv", "anchor,positive\na,b\nc,  \n", ["row 1", "empty 'positive'"]),
    ("null.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": null, "positive": "b"}\n', ["row 1", "empty 'anchor'"]),
    ("missing.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n', ["row 1", "empty 'positive'"]),
    ("number.jsonl", '{"anchor": "a", "positive": 3}\n', ["'positive'", "not text"]),
    ("mixed.jsonl", '{"anchor": "a", "positive": 3}\n{"anchor": "b", "positive": "p"}\n',
     ["'positive'", "record 2", "record 1"]),
    ("broken.jsonl", '{"anchor": "a", "positive": "b"}\n{"anchor": \n', ["line 2", "not valid JSON"]),
    ("fields.tsv", "anchor\tpositive\na\tb\tc\td\ne\tf\n", ["line 2", "4 fields", "header has 2"]),
    ("dup.csv", "anchor,anchor,positive\na,b,c\n", ["repeats a column name"]),
    ("notes.txt", "anchor,positive\na,b\n", ["unknown file type '.txt'", ".csv"]),
    ("gaps.csv", "anchor,positive,negative_1,negative_3\na,b,c,d\n", ["negative_1 .. negative_2"]),
    ("both.csv", "anchor,positive,negative,negative_1\na,b,c,d\n", ["both 'negative' and numbered"]),
])
def test_bad_files_name_the_problem(tmp_path, name, content, needles):
    path = tmp_path / name
    path.write_text(content)
    message = one_line_error(path)
    for needle in needles:
        assert needle in message


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("anchor,positive\na,b\ncaf\u00e9,c\n".encode("latin-1"))
    message = one_line_error(path)
    assert "latin1.csv is not UTF-8" in message and "line 3" in message and "0xe9" in message


def test_fewer_rows_than_batch(tmp_path):
    message = one_line_error(write(tmp_path / "p.csv"), batch_size=32)
    assert "10 rows" in message and "batch size 32" in message


def test_bad_mapping_and_missing_paths(tmp_path):
    path = write(tmp_path / "p.csv")
    assert "no column 'question' to use as 'anchor'" in one_line_error(path, columns={"anchor": "question"})
    assert "Unknown target column 'query'" in one_line_error(path, columns={"query": "anchor"})
    assert "No such file" in one_line_error(tmp_path / "nothere.jsonl")
    assert "neither a file" in one_line_error("not a/valid/spec")


def test_offline_hub_id_fails_fast_naming_it():
    message = one_line_error("someone/dataset-that-is-not-cached")
    assert "someone/dataset-that-is-not-cached" in message and "cannot be reached" in message


def test_sample_batch_is_seeded_distinct_and_task_restricted(tmp_path):
    ds = load_pairs(str(write(tmp_path / "p.csv")))
    first = sample_batch(ds, 4, seed=7)
    assert first == sample_batch(ds, 4, seed=7) and len(set(first)) == 4
    assert first != sample_batch(ds, 4, seed=8)
    odd = sample_batch(ds, 5, seed=0, task="odd")
    assert sorted(odd) == [1, 3, 5, 7, 9]  # global row ids, all of that task
    with pytest.raises(GistlabError, match="choose one of even, odd"):
        sample_batch(ds, 2, seed=0, task="nope")
    with pytest.raises(GistlabError, match="fewer than the batch size"):
        sample_batch(ds, 6, seed=0, task="odd")


def test_epoch_batches_mixed_and_homogeneous(tmp_path):
    ds = load_pairs(str(write(tmp_path / "p.csv")))
    mixed = epoch_batches(ds, 3, seed=0, epoch=0)
    assert len(mixed) == 3 and len({r for b in mixed for r in b}) == 9  # last partial batch dropped
    assert mixed == epoch_batches(ds, 3, seed=0, epoch=0)
    assert mixed != epoch_batches(ds, 3, seed=0, epoch=1)
    tasks = {r: t for t, rows in task_rows(ds).items() for r in rows}
    homogeneous = epoch_batches(ds, 2, seed=0, epoch=0, homogeneous=True)
    assert len(homogeneous) == 4
    assert all(len({tasks[r] for r in batch}) == 1 for batch in homogeneous)
    with pytest.raises(GistlabError, match="no 'task' column"):
        epoch_batches(ds.remove_columns("task"), 2, seed=0, epoch=0, homogeneous=True)


def test_task_rows_follow_a_shuffled_selection(tmp_path):
    """A selected or shuffled dataset keeps an indices mapping; task ids must follow it."""
    ds = load_pairs(str(write(tmp_path / "p.csv"))).select([9, 0, 4, 3, 8])
    assert {t: r.tolist() for t, r in task_rows(ds).items()} == {"odd": [0, 3], "even": [1, 2, 4]}


def test_jsonl_columns_are_the_union_of_all_records(tmp_path):
    """Row 0 lacking optional fields must not drop them for the other rows."""
    path = tmp_path / "late.jsonl"
    records = [{"anchor": "a0", "positive": "p0"}] + [
        {"anchor": f"a{i}", "positive": f"p{i}", "negative": f"n{i}", "task": "t"} for i in range(1, 20)]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    message = one_line_error(path)
    assert "line 1: row 0 has an empty 'negative'" in message  # not silently dropped
    path.write_text("\n".join(json.dumps(r) for r in records[1:] + records[:1]) + "\n")
    assert "line 20: row 19 has an empty 'negative'" in one_line_error(path)
    path.write_text("\n".join(json.dumps(r) for r in records[1:]) + "\n")
    ds = load_pairs(str(path))
    assert ds.column_names[:4] == ["anchor", "positive", "negative", "task"] and len(ds) == 19


def test_jsonl_row_without_a_required_field_is_named_by_line(tmp_path):
    path = tmp_path / "nopositive.jsonl"
    rows = [{"anchor": "a0"}] + [{"anchor": f"a{i}", "positive": f"p{i}"} for i in range(1, 16)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")  # row 0 lacks it, 15 rows have it
    message = one_line_error(path)
    assert "has no 'positive' column" not in message and "line 1: row 0 has an empty 'positive'" in message
    path.write_text("\n\n".join(json.dumps(r) for r in rows[::-1]) + "\n")  # blank lines between
    assert "line 31: row 15 has an empty 'positive'" in one_line_error(path)


def test_csv_cell_over_the_csv_modules_128_kib_limit_is_read(tmp_path):
    path = tmp_path / "long.csv"
    long_text = "word " * 60_000  # 300 KB in one cell
    path.write_text(f'anchor,positive\n"{long_text}",short\nb,c\n')
    ds = load_pairs(str(path))
    assert ds["anchor"][0] == long_text and ds["positive"] == ["short", "c"]


def _plain_epoch_batches(n_rows, tasks, batch_size, seed, epoch, homogeneous):
    """epoch_batches as it was before groups existed: data without a group column must batch alike."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    pools = [np.flatnonzero(np.array(tasks) == t) for t in dict.fromkeys(tasks)] if homogeneous else [np.arange(n_rows)]
    batches = []
    for rows in pools:
        rows = rng.permutation(rows)
        whole = len(rows) // batch_size * batch_size
        batches += [rows[i:i + batch_size].tolist() for i in range(0, whole, batch_size)]
    order = rng.permutation(len(batches)) if homogeneous else range(len(batches))
    return [batches[i] for i in order]


def _grouped(n=40, group_of=lambda i: f"g{i // 4}" if i < 24 else None):
    from datasets import Dataset

    return Dataset.from_dict({"anchor": [f"a{i}" for i in range(n)], "positive": [f"p{i}" for i in range(n)],
                              "task": ["x" if i % 2 else "y" for i in range(n)],
                              "group": [group_of(i) for i in range(n)]})


@pytest.mark.parametrize("homogeneous", [False, True])
def test_without_groups_batches_are_unchanged(homogeneous):
    ds = _grouped().remove_columns("group")
    for seed in (0, 7):
        assert epoch_batches(ds, 6, seed, 1, homogeneous) == _plain_epoch_batches(
            len(ds), ds["task"], 6, seed, 1, homogeneous)
    # a group column where no two rows share a group changes nothing either
    distinct = _grouped(group_of=lambda i: f"g{i}")
    assert epoch_batches(distinct, 6, 3, 0) == epoch_batches(ds, 6, 3, 0)
    assert sample_batch(distinct, 6, 3) == sample_batch(ds, 6, 3)


@pytest.mark.parametrize("homogeneous", [False, True])
def test_no_batch_holds_two_rows_of_one_group(homogeneous):
    ds = _grouped()
    groups = ds["group"]
    batches = epoch_batches(ds, 5, 0, 0, homogeneous)
    assert batches == epoch_batches(ds, 5, 0, 0, homogeneous)  # deterministic
    assert batches and all(len(b) == 5 for b in batches)
    for batch in batches:
        labels = [groups[r] for r in batch if groups[r] is not None]
        assert len(labels) == len(set(labels)), batch
        if homogeneous:
            assert len({ds["task"][r] for r in batch}) == 1
    used = sum(len(b) for b in batches)
    assert used >= 30  # few rows lost to the constraint (40 rows, 6 groups of 4)
    # plain batching of the same rows does put group members together: the constraint is real
    plain = epoch_batches(ds.remove_columns("group"), 5, 0, 0, homogeneous)
    assert any(len({groups[r] for r in b if groups[r]}) < len([r for r in b if groups[r]]) for b in plain)


def test_sample_batch_takes_one_row_per_group():
    ds = _grouped(n=12, group_of=lambda i: f"g{i // 3}")  # 4 groups of 3
    rows = sample_batch(ds, 4, 0)
    assert len({ds["group"][r] for r in rows}) == 4 and rows == sample_batch(ds, 4, 0)
    with pytest.raises(GistlabError, match="distinct groups"):
        sample_batch(ds, 5, 0)


def test_raw_columns_are_the_files_own_names_before_mapping(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer,wrong\nq,a,w\n")
    assert raw_columns(str(path)) == ["question", "answer", "wrong"]
    mapped = load_pairs(str(path), columns={"anchor": "question", "positive": "answer", "negative": "wrong"})
    assert mapped.column_names == ["anchor", "positive", "negative"]
