"""core.training.results: the tidy table read back from mteb result JSON, for base models and runs."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from core.cli import main
from core.training.evaluate import evaluate
from core.training.results import (
    GIST_TRAINING_OVERLAP, display_name, labelled, main_metric, pairing_key, results_table, task_type,
    write_section,
)
from tests.test_evaluate import toy_sts_task


@pytest.fixture(scope="module")
def evaluated(tiny_model_dir, tmp_path_factory):
    """The tiny model evaluated once as a base model and once as a run (config.json + model/)."""
    root = tmp_path_factory.mktemp("results")
    base = evaluate(str(tiny_model_dir), [toy_sts_task()], out=root / "base")
    run = root / "gist-seed1"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "config.json").write_text(json.dumps({"loss": "gist", "seed": 1}))
    evaluate(str(run), [toy_sts_task()])
    return base, run


def test_table_rows_for_base_model_and_run(evaluated):
    base, run = evaluated
    table = results_table([base.folder.parents[2], run])
    assert list(table.columns[:8]) == ["model", "run", "loss", "seed", "task", "task_type", "split", "main_score"]
    assert len(table) == 2
    by_run = table.set_index(table["run"].fillna("-"))
    assert by_run.loc["gist-seed1", "model"] == "gistlab-run/gist-seed1"
    assert by_run.loc["gist-seed1", "loss"] == "gist" and by_run.loc["gist-seed1", "seed"] == 1
    assert by_run.loc["-", "model"] == "local/st" and pd.isna(by_run.loc["-", "loss"])
    assert set(table["task"]) == {"ToySTS"} and set(table["split"]) == {"test"}
    # same weights, same score, whichever folder holds them
    assert table["main_score"].nunique() == 1
    saved = json.loads(base.result_files[0].read_text())["scores"]["test"][0]["main_score"]
    assert table["main_score"].iloc[0] == pytest.approx(saved)


def test_a_run_without_its_weights_is_still_a_run(evaluated, tmp_path):
    """The demo copy ships a run's results and config but not its model/."""
    _, run = evaluated
    copy = tmp_path / "gist-seed1"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("model"))
    [row] = results_table(copy).to_dict("records")
    assert (row["run"], row["loss"], row["seed"]) == ("gist-seed1", "gist", 1)
    (copy / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))  # a model's config
    assert results_table(copy)["run"].isna().all()


def test_unreadable_file_is_listed_not_fatal(evaluated, tmp_path):
    base, _ = evaluated
    copy = tmp_path / "copy"
    shutil.copytree(base.folder.parents[2], copy)
    [file] = copy.glob("results/*/*/ToySTS.json")
    file.with_name("Broken.json").write_text("{not json")
    table = results_table(copy)
    assert len(table) == 1
    [line] = table.attrs["unreadable"]
    assert "Broken.json" in line


def test_empty_folder_gives_empty_table(tmp_path):
    table = results_table(tmp_path)
    assert table.empty and "main_score" in table.columns


def test_workspace_json_outside_results_is_not_read(evaluated, tmp_path):
    """A workspace's guide cache and derived models keep JSON at results' depth: not results."""
    base, _ = evaluated
    (tmp_path / "guide_cache" / "abc123").mkdir(parents=True)
    (tmp_path / "guide_cache" / "abc123" / "meta.json").write_text('{"rows": 3}')
    (tmp_path / "models" / "minilm-l3").mkdir(parents=True)
    (tmp_path / "models" / "minilm-l3" / "modules.json").write_text("[]")
    empty = results_table(tmp_path)
    assert empty.empty and empty.attrs["unreadable"] == []
    shutil.copytree(base.folder.parents[1], tmp_path / "results")
    for root in (tmp_path, tmp_path / "results"):
        table = results_table(root)
        assert len(table) == 1 and table.attrs["unreadable"] == []


def test_task_types_and_overlap():
    assert task_type("STSBenchmark") == "STS"
    assert task_type("Banking77Classification") == "Classification"
    assert task_type("NoSuchTask") == "unknown"
    assert "Banking77Classification" in GIST_TRAINING_OVERLAP
    assert "STSBenchmark" not in GIST_TRAINING_OVERLAP


def test_metric_names_and_model_names_a_person_reads():
    assert main_metric("WordNetRetrieval") == "nDCG@10"
    assert main_metric("WordNetSTS") == "Spearman (cosine)"
    assert main_metric("NoSuchTask") == "main score"
    assert display_name("gistlab/minilm-l3") == "bundled:minilm-l3"
    assert display_name("local/st") == "local/st"
    table = pd.DataFrame({"run": [None, "r1"], "model": ["gistlab/minilm-l3", "gistlab-run/r1"]})
    assert labelled(table)["label"].tolist() == ["bundled:minilm-l3", "r1"]


def test_runs_on_the_same_batches_share_a_pairing_key():
    settings = {"data": "bundled", "student": "s", "batch_size": 16, "steps": 50, "seed": 0, "lr": 2e-5}
    mnrl = pairing_key({**settings, "loss": "mnrl", "out": "a"})
    assert pairing_key({**settings, "loss": "gist", "guide": "g", "margin": 0.1, "out": "b", "seed": 1}) == mnrl
    assert pairing_key({**settings, "loss": "mnrl", "batch_size": 32}) != mnrl


def test_cli_eval_prints_table_and_writes_csv(tiny_model_dir, tmp_path, capsys):
    csv = tmp_path / "table.csv"
    code = main(["eval", "--model", str(tiny_model_dir), "--tasks", "STSBenchmark",
                 "--out", str(tmp_path), "--csv", str(csv)])
    err = capsys.readouterr().err
    assert code == 1  # the only task was skipped: nothing to show
    assert "skipped STSBenchmark:" in err and "Hugging Face cache" in err
    assert pd.read_csv(csv).empty


def test_cli_eval_partial_offline_still_succeeds(tiny_model_dir, tmp_path, capsys):
    code = main(["eval", "--model", str(tiny_model_dir), "--tasks", "WordNetSTS,STSBenchmark",
                 "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "WordNetSTS" in out and "STS" in out and "STSBenchmark" not in out
    assert "skipped STSBenchmark:" in err and "1 evaluated, 0 reused, 1 skipped" in err


def test_cli_eval_bad_input_is_one_line(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "missing"), "--tasks", "STSBenchmark"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gistlab: error:") and "\n" not in err
    assert main(["eval", "--model", "bundled:minilm-l6", "--tasks", "SciFactt"]) == 2
    err = capsys.readouterr().err.strip()
    assert "SciFact" in err and "\n" not in err


def test_write_section_appends_then_replaces_only_its_own_block(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_section(path, "ladder", "# Ladder\nfirst")
    assert path.read_text() == "<!-- ladder:begin -->\n# Ladder\nfirst\n<!-- ladder:end -->\n"
    write_section(path, "mining", "## Mining\n$1 \\1 stays literal")
    write_section(path, "ladder", "# Ladder\nsecond")
    text = path.read_text()
    assert "first" not in text and text.count("second") == 1
    assert text.index("<!-- ladder:begin -->") < text.index("<!-- mining:begin -->")
    assert "$1 \\1 stays literal" in text and text.count("<!-- mining:end -->") == 1


def test_write_section_keeps_text_outside_the_blocks(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("Intro by hand.\n")
    write_section(path, "mining", "m1")
    write_section(path, "mining", "m2")
    assert path.read_text() == "Intro by hand.\n\n<!-- mining:begin -->\nm2\n<!-- mining:end -->\n"
    assert not list(tmp_path.glob(".*.tmp"))
