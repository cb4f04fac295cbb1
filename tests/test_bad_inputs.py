"""The corpus of bad inputs (tests/bad_inputs/) against every command that takes data.

Each bad file must end every data command (train, inspect, audit, cache) with exit 2 and one
``gistlab: error:`` line that names the problem, never a traceback; each bad model folder does the
same to ``eval``; bad arguments and output paths are refused before any work. A new file in the
corpus needs an entry in BAD_FILES (checked), so the corpus and its expectations stay together.
"""

from __future__ import annotations

import json
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

    from datasets import Dataset

    saved = tmp_path / "saved"
    Dataset.from_dict({"anchor": [f"a {i}" for i in range(8)], "positive": [f"p {i}" for i in range(8)]}).save_to_disk(saved)
    (tmp_path / "a_dir.parquet").mkdir()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    decisions = {}
    for name, content in {"ok": {"dup:1": "drop"}, "malformed": {"fn:3": "drop"}, "past": {"pos:99": "drop"}}.items():
        decisions[name] = tmp_path / f"{name}.json"
        decisions[name].write_text(json.dumps({"decisions": content}))
    export = ("--export", str(tmp_path / "clean.parquet"))
    capsys.readouterr()  # save_to_disk's progress bar

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
        ("mine", "--limit", "0"): "--limit 0: give at least 1 row",
        ("mine", "--limit", "-5"): "--limit -5: give at least 1 row",
        ("mine", "--out", str(tmp_path / "a_dir.parquet")): "is a folder: give a file name",
        ("mine", "--out", str(tmp_path / "busy")): "is a folder of other files",
        ("mine", "--data", str(saved), "--out", str(saved)): "is the data being read",
        ("mine", "--out", str(good)): "is the data being read",
        ("audit", "--apply", str(tmp_path / "no_such.json"), *export): "no_such.json: no such file",
        ("audit", "--apply", str(decisions["malformed"]), *export): "finding id 'fn:3' is malformed",
        ("audit", "--apply", str(decisions["past"]), *export): "names a row past the data's 8 rows",
        ("audit", "--apply", str(decisions["ok"]), "--export", str(tmp_path / "a_dir.parquet")): "is a folder: give",
        ("audit", "--apply", str(decisions["ok"]), "--export", str(tmp_path / "busy")): "is a folder of other files",
        ("audit", "--batch-size", "0"): "--batch-size must be at least 1",
    }
    with monkeypatch.context() as patched:
        patched.setattr("core.guides.models.load_model", never)
        patched.setattr("core.guides.models.load_guide", never)
        for (command, *extra), needle in cases.items():
            argv = {"train": ["train", "--data", str(good), "--student", model, "--batch-size", "2"],
                    "inspect": ["inspect", "--data", str(good), "--guide", model],
                    "audit": ["audit", "--data", str(good), "--guide", model, "--out", str(tmp_path / "a")],
                    "cache": ["cache", "--data", str(good), "--guide", model],
                    "mine": ["mine", "--data", str(good), "--retriever", model, "--guide", model,
                             "--out", str(tmp_path / "mined.parquet")],
                    "eval": ["eval", "--model", model]}[command]
            assert needle in one_line_error(argv + extra, capsys), (command, extra)
    assert a_file.read_text() == "x"  # nothing was written over
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine" and len(list((tmp_path / "busy").iterdir())) == 1
    assert not (tmp_path / "seeded").exists()  # a refused seed left no failed run folder


def test_max_seq_length_above_the_models_positions_is_one_line(tiny_model_dir, tmp_path, capsys):
    """The tiny BERT has 128 positions: a longer limit on long texts was a tensor size mismatch."""
    long = tmp_path / "long.csv"
    long.write_text("anchor,positive\n" + "".join(f"{'word ' * 300}{i},positive {i}\n" for i in range(4)))
    line = one_line_error(["train", "--data", str(long), "--student", str(tiny_model_dir), "--loss", "mnrl",
                           "--steps", "1", "--batch-size", "2", "--max-seq-length", "1000",
                           "--out", str(tmp_path / "run")], capsys)
    assert "--max-seq-length 1000" in line and "end at 128 tokens" in line


def pairs_file(tmp_path: Path, rows: int = 8) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text("anchor,positive\n" + "".join(f"anchor {i},positive {i}\n" for i in range(rows)))
    return path


def test_audit_batch_size_is_the_guides_encoding_batch(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """audit --batch-size was accepted and ignored; it is now the guide's encoding batch, as for cache."""
    from core.guides.guide_cache import GuideCache

    used = []
    real_encode = GuideCache.encode
    monkeypatch.setattr(GuideCache, "encode", lambda self, texts: used.append(self.batch_size) or real_encode(self, texts))
    argv = ["audit", "--data", str(pairs_file(tmp_path)), "--guide", str(tiny_model_dir), "--out", str(tmp_path / "a"),
            "--batch-size", "3"]
    assert main(argv) == 0
    assert used and set(used) == {3}


def test_a_guide_that_mnrl_ignores_is_said(tiny_model_dir, tmp_path):
    import warnings

    from core.errors import GistlabWarning

    argv = ["train", "--data", str(pairs_file(tmp_path)), "--student", str(tiny_model_dir), "--guide", "self",
            "--loss", "mnrl", "--steps", "1", "--batch-size", "2", "--out", str(tmp_path / "run")]
    with pytest.warns(GistlabWarning) as caught:
        assert main(argv) == 0
    said = [warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught
            if issubclass(w.category, GistlabWarning)]
    assert said == ["gistlab: warning: --guide self is not used: mnrl trains without a guide (give --loss "
                    "gist,mnrl to compare with one).\n"]


def test_report_only_on_a_folder_without_runs_evaluates_nothing(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """Its help says it trains and evaluates nothing; on an empty folder it evaluated both base models (97 s)."""
    def never(*args, **kwargs):
        raise AssertionError("--report-only evaluated a model")

    monkeypatch.setattr("core.training.evaluate.evaluate", never)
    line = one_line_error(["experiment", "--report-only", "--out", str(tmp_path / "empty"), "--student",
                           str(tiny_model_dir), "--small-student", "none", "--guides", "none,self"], capsys)
    assert "no finished run of this experiment" in line and "without --report-only" in line
