"""`gistlab train` end to end through core.cli.main, with the tiny model as student and guide."""

from __future__ import annotations

import pandas as pd
import pytest

from core.training import runs
from core.cli import main


@pytest.fixture
def qa_csv(tmp_path):
    """Question/answer pairs under other column names, mapped with --data-columns."""
    path = tmp_path / "qa.csv"
    pd.DataFrame({"question": [f"question {i}" for i in range(12)],
                  "answer": [f"answer {i}" for i in range(12)]}).to_csv(path, index=False)
    return path


def test_train_end_to_end(qa_csv, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "cli-run"
    code = main(["train", "--data", str(qa_csv), "--data-columns", "anchor=question,positive=answer",
                 "--student", str(tiny_model_dir), "--guide", str(tiny_model_dir), "--loss", "gist",
                 "--steps", "2", "--batch-size", "4", "--seed", "3", "--margin", "0.05",
                 "--no-contrast-positives", "--out", str(out)])
    assert code == 0
    assert "completed after 2 of 2 steps" in capsys.readouterr().out
    config = runs.read_config(out)
    assert config["data_columns"] == {"anchor": "question", "positive": "answer"}
    assert (config["seed"], config["margin"], config["contrast_positives"]) == (3, 0.05, False)
    assert config["contrast_anchors"] is True and config["lr"] == 2e-5  # defaults filled in
    metrics = runs.read_metrics(out)
    assert list(metrics["step"]) == [1, 2] and "masked_p-p" not in metrics.columns
    assert (out / "model" / "modules.json").is_file()

    code = main(["train", "--data", str(qa_csv), "--data-columns", "anchor=question,positive=answer",
                 "--student", str(tiny_model_dir), "--loss", "mnrl", "--steps", "1", "--batch-size", "4",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "already holds a completed run" in err and err.count("\n") == 1


def test_bad_input_is_one_line_and_exit_2(qa_csv, tmp_path, capsys):
    code = main(["train", "--data", str(qa_csv), "--loss", "mnrl", "--steps", "1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gistlab: error: qa.csv has no 'anchor' column") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["train", "--data-columns", "anchor:question"])
    assert "target=source" in capsys.readouterr().err


def test_several_losses_train_in_one_command(qa_csv, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "pair-{loss}"
    code = main(["train", "--data", str(qa_csv), "--data-columns", "anchor=question,positive=answer",
                 "--student", str(tiny_model_dir), "--guide", str(tiny_model_dir), "--loss", "mnrl,gist",
                 "--steps", "2", "--batch-size", "4", "--out", str(out)])
    printed = [line for line in capsys.readouterr().out.splitlines() if " after " in line]  # not the trainer's logs
    assert code == 0
    assert [line.split(" after ")[0] for line in printed] == ["mnrl: completed", "gist: completed"]
    for arm in ("mnrl", "gist"):
        run = tmp_path / f"pair-{arm}"
        assert runs.read_config(run)["loss"] == arm and list(runs.read_metrics(run)["step"]) == [1, 2]
    assert runs.read_batch(tmp_path / "pair-mnrl", 2) == runs.read_batch(tmp_path / "pair-gist", 2)


def test_several_losses_need_loss_in_out_and_each_loss_once(qa_csv, tmp_path, capsys):
    code = main(["train", "--data", str(qa_csv), "--loss", "gist,mnrl", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "put {loss} in --out" in err and err.count("\n") == 1
    for bad, needle in (("gist,gist", "repeats a loss"), ("gist,triplet", "unknown loss 'triplet'")):
        with pytest.raises(SystemExit):
            main(["train", "--loss", bad])
        assert needle in capsys.readouterr().err


def test_settings_come_from_a_config_file_and_flags_override_it(qa_csv, tiny_model_dir, tmp_path, capsys):
    """What a background job does: the settings cross as a JSON file, checked like typed options."""
    import json

    out = tmp_path / "from-config"
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"data": str(qa_csv), "data_columns": {"anchor": "question", "positive": "answer"},
                                  "student": str(tiny_model_dir), "loss": ["mnrl"], "steps": 3, "batch_size": 4,
                                  "seed": 5, "out": str(out)}))
    assert main(["train", "--config", str(config), "--steps", "1"]) == 0
    saved = runs.read_config(out)
    assert (saved["loss"], saved["steps"], saved["seed"], saved["batch_size"]) == ("mnrl", 1, 5, 4)  # --steps won
    capsys.readouterr()
    config.write_text(json.dumps({"steps": 2, "batch_sise": 4}))
    assert main(["train", "--config", str(config)]) == 2
    assert capsys.readouterr().err == f"gistlab: error: Unknown train settings in {config}: batch_sise; remove them.\n"
    config.write_text(json.dumps({"steps": 0, "loss": "mnrl"}))  # a string is parsed as typed: --loss mnrl
    assert main(["train", "--config", str(config)]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err
    config.write_text("{")
    assert main(["train", "--config", str(config)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_an_eval_config_supplies_the_required_model(tmp_path, capsys):
    import json

    config = tmp_path / "eval.json"
    config.write_text(json.dumps({"model": str(tmp_path / "missing"), "tasks": "bundled"}))
    assert main(["eval", "--config", str(config)]) == 2  # --model came from the file: the model is checked
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize("arm", ["gist", "mnrl"])
def test_a_shipped_run_config_is_a_train_config_file(arm, tmp_path):
    """assets/demo's config.json (flat margin keys) loads as before and reads back as `--config`."""
    from pathlib import Path

    from core.cli import build_parser, read_config
    from core.training.config import TrainConfig

    path = Path(__file__).resolve().parents[1] / "assets" / "demo" / arm / "config.json"
    argv = ["train", "--config", str(path), "--out", str(tmp_path / "again")]
    args = build_parser(read_config(argv)).parse_args(argv)
    shipped = TrainConfig.load(path)
    assert args.loss == [shipped.loss] and args.out == str(tmp_path / "again")
    settings = {k: v for k, v in vars(args).items() if k not in ("command", "run", "overwrite", "log", "loss", "config")}
    assert TrainConfig.from_dict({**settings, "loss": shipped.loss, "out": shipped.out}) == shipped


def test_the_later_recipes_train_beside_mnrl_with_their_options(qa_csv, tiny_model_dir, tmp_path, capsys):
    """--loss takes self-judge and mnrl-hard beside mnrl (no guide given: none is needed); their
    options reach config.json, and all three train on the same batches."""
    out = tmp_path / "arm-{loss}"
    code = main(["train", "--data", str(qa_csv), "--data-columns", "anchor=question,positive=answer",
                 "--student", str(tiny_model_dir), "--loss", "mnrl,self-judge,mnrl-hard", "--judge-margin", "0.05",
                 "--hardness-mode", "all_negatives", "--hardness-strength", "3", "--steps", "2", "--batch-size", "4",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    configs = {arm: runs.read_config(tmp_path / f"arm-{arm}") for arm in ("mnrl", "self-judge", "mnrl-hard")}
    assert configs["self-judge"]["judge_margin"] == 0.05
    assert (configs["mnrl-hard"]["hardness_mode"], configs["mnrl-hard"]["hardness_strength"]) == ("all_negatives", 3.0)
    batches = {arm: runs.read_batch(tmp_path / f"arm-{arm}", 2) for arm in configs}
    assert batches["mnrl"] == batches["self-judge"] == batches["mnrl-hard"]
    with pytest.raises(SystemExit):
        main(["train", "--hardness-mode", "hardest"])
    assert "invalid choice" in capsys.readouterr().err
