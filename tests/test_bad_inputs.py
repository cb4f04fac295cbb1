"""The corpus of bad inputs (tests/bad_inputs/) against every command that takes data.

Each bad file must end every data command (train, inspect, audit, cache) with exit 2 and one
``gistlab: error:`` line that names the problem, never a traceback; each bad model folder does the
same to ``eval``; bad arguments and output paths are refused before any work. A new file in the
corpus needs an entry in BAD_FILES (checked), so the corpus and its expectations stay together.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main

CORPUS = Path(__file__).parent / "bad_inputs"

BAD_FILES = {  # file -> what its one line must say
    "empty.csv": "empty.csv is empty",
    "header_only.csv": "has a header but no rows",
    "no_anchor_column.csv": "has no 'anchor' column (found: question, answer)",
    "blank_cell.csv": "line 3: row 1 has an empty 'positive'",
    "ragged.tsv": "line 2 has 4 fields but the header has 2",
    "latin1.csv": "is not UTF-8: byte 0xe9 on line 3",
    "unclosed_quote.csv": "line 2 is not valid CSV",
    "repeated_header.csv": "repeats a column name",
    "negative_gap.csv": "number them negative_1 .. negative_2",
    "one_row.csv": "1 row",
    "broken.jsonl": "line 2 is not valid JSON",
    "blank_lines.jsonl": "blank_lines.jsonl is empty",
    "not_objects.jsonl": "line 1 is not a JSON object",
    "first_record_lacks_positive.jsonl": "line 1: row 0 has an empty 'positive'",
    "first_record_lacks_negative.jsonl": "line 1: row 0 has an empty 'negative'",
    "mixed_types.jsonl": "column 'positive' is str in record 2 but int in record 1",
    "numbers.jsonl": "column 'positive' holds int64 values, not text",
    "not_parquet.parquet": "is not a readable Parquet file",
    "notes.txt": "unknown file type '.txt'",
    "repeated_key.jsonl": "line 1 repeats the key 'positive'",
    "cr_only.csv": "has a carriage return (\\r) outside quotes",
    "repeated_column.parquet": "repeats a column name (anchor)",
    "saved_missing_arrow": "data files are missing or damaged",  # save_to_disk folders
    "saved_damaged_arrow": "data files are missing or damaged",
}
FINE_FOR = {("cache", "one_row.csv")}  # one row is a batch for nobody, but a valid cache fill
BAD_MODELS = {  # folder under bad_inputs/models -> what eval's one line must say
    "not_a_model": "holds no saved model",
    "broken_json": "could not be loaded as a model",
    "run_without_model": "could not be loaded as a model",
}


def commands(data: str, model: str, tmp: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", "--data", data, "--student", model, "--guide", model, "--steps", "1",
                  "--batch-size", "2", "--out", str(tmp / "run")],
        "inspect": ["inspect", "--data", data, "--guide", model, "--batch-size", "2"],
        "audit": ["audit", "--data", data, "--guide", model, "--out", str(tmp / "audit")],
        "cache": ["cache", "--data", data, "--guide", model],
    }


def one_line_error(argv: list[str], capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one error line (progress lines aside) and return it."""
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.strip() and not line.startswith(("Loading weights", "Writing model"))]
    assert code == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("gistlab: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def test_every_corpus_file_has_an_expectation():
    assert sorted(p.name for p in CORPUS.iterdir() if p.name != "models") == sorted(BAD_FILES)
    assert sorted(p.name for p in (CORPUS / "models").iterdir()) == sorted(BAD_MODELS)


@pytest.mark.parametrize("command", ["train", "inspect", "audit", "cache"])
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_every_data_command_rejects_every_bad_file_in_one_line(command, name, tiny_model_dir, tmp_path, capsys):
    argv = commands(str(CORPUS / name), str(tiny_model_dir), tmp_path)[command]
    if (command, name) in FINE_FOR:
        assert main(argv) == 0
        return
    line = one_line_error(argv, capsys)
    assert BAD_FILES[name] in line or (name == "one_row.csv" and "row" in line), line
    assert not (tmp_path / "run").exists()  # refused before a run folder was claimed


@pytest.mark.parametrize("name", sorted(BAD_MODELS))
def test_eval_rejects_every_bad_model_folder_in_one_line(name, tmp_path, capsys):
    line = one_line_error(["eval", "--model", str(CORPUS / "models" / name), "--out", str(tmp_path)], capsys)
    assert BAD_MODELS[name] in line


def test_bad_arguments_and_outputs_are_refused_before_the_work(tiny_model_dir, tmp_path, capsys, monkeypatch):
    model = str(tiny_model_dir)
    good = tmp_path / "good.csv"
    good.write_text("anchor,positive\n" + "".join(f"anchor {i},positive {i}\n" for i in range(8)))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    cases = {
        ("train", "--out", str(a_file)): "is a file, not a folder",
        ("inspect", "--batch-size", "0"): "Batch size 0: give at least 2",
        ("inspect", "--batch-size", "-1"): "Batch size -1: give at least 2",
        ("inspect", "--csv", str(tmp_path)): "is a folder: give a file name",
        ("audit", "--out", str(a_file)): "is a file, not a folder",
        ("cache", "--batch-size", "0"): "--batch-size must be at least 1",
        ("eval", "--batch-size", "0"): "--batch-size must be at least 1",
        ("eval", "--csv", str(tmp_path)): "is a folder: give a file name",
        ("inspect", "--margin", "nan", "--batch-size", "4"): "--margin nan: give a finite number",
        ("audit", "--margin", "nan"): "--margin nan: give a finite number",
        ("inspect", "--margin", "inf", "--batch-size", "4"): "--margin inf: give a finite number",
        ("train", "--seed", "-1", "--out", str(tmp_path / "seeded")): "--seed -1: give a whole number from 0",
        ("inspect", "--seed", "-1", "--batch-size", "4"): "--seed -1: give a whole number from 0",
        ("audit", "--seed", "-1"): "--seed -1: give a whole number from 0",
        ("train", "--seed", str(2**32), "--out", str(tmp_path / "seeded")): f"--seed {2**32}: give",
    }
    with monkeypatch.context() as patched:
        patched.setattr("core.guides.models.load_model", never)
        patched.setattr("core.guides.models.load_guide", never)
        for (command, *extra), needle in cases.items():
            argv = {"train": ["train", "--data", str(good), "--student", model, "--batch-size", "2"],
                    "inspect": ["inspect", "--data", str(good), "--guide", model],
                    "audit": ["audit", "--data", str(good), "--guide", model, "--out", str(tmp_path / "a")],
                    "cache": ["cache", "--data", str(good), "--guide", model],
                    "eval": ["eval", "--model", model]}[command]
            assert needle in one_line_error(argv + extra, capsys), (command, extra)
    assert a_file.read_text() == "x"  # nothing was written over
    assert not (tmp_path / "seeded").exists()  # a refused seed left no failed run folder


def test_max_seq_length_above_the_models_positions_is_one_line(tiny_model_dir, tmp_path, capsys):
    """The tiny BERT has 128 positions: a longer limit on long texts was a tensor size mismatch."""
    long = tmp_path / "long.csv"
    long.write_text("anchor,positive\n" + "".join(f"{'word ' * 300}{i},positive {i}\n" for i in range(4)))
    line = one_line_error(["train", "--data", str(long), "--student", str(tiny_model_dir), "--loss", "mnrl",
                           "--steps", "1", "--batch-size", "2", "--max-seq-length", "1000",
                           "--out", str(tmp_path / "run")], capsys)
    assert "--max-seq-length 1000" in line and "end at 128 tokens" in line
