"""core.experiment: the pure summaries on made-up scores, and the whole plumbing with the tiny model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.experiment import ExperimentConfig, arm_scores, reading, run_experiment, summarise


def fake_scores() -> pd.DataFrame:
    """Two tasks, three seeds: GIST ahead on STS in every seed, behind on Retrieval in every seed."""
    rows = [("base", -1, "STS", "STS", 0.50), ("base", -1, "Ret", "Retrieval", 0.40)]
    for seed, (m_sts, g_sts, m_ret, g_ret) in enumerate([(0.60, 0.65, 0.50, 0.45),
                                                        (0.61, 0.64, 0.52, 0.46),
                                                        (0.62, 0.66, 0.51, 0.47)]):
        rows += [("mnrl", seed, "STS", "STS", m_sts), ("gist", seed, "STS", "STS", g_sts),
                 ("mnrl", seed, "Ret", "Retrieval", m_ret), ("gist", seed, "Ret", "Retrieval", g_ret)]
    return pd.DataFrame(rows, columns=["arm", "seed", "task", "task_type", "main_score"])


def test_summarise_means_stds_and_paired_wins():
    summary = summarise(fake_scores(), "task")
    sts, ret = summary.loc["STS"], summary.loc["Ret"]
    assert sts["base_mean"] == pytest.approx(0.50) and sts["base_std"] == 0
    assert sts["mnrl_mean"] == pytest.approx(0.61)
    assert sts["mnrl_std"] == pytest.approx(pd.Series([0.60, 0.61, 0.62]).std(ddof=0))
    assert sts["diff_mean"] == pytest.approx((0.05 + 0.03 + 0.04) / 3)
    assert (sts["gist_wins"], sts["seeds"]) == (3, 3)
    assert ret["gist_wins"] == 0 and ret["diff_mean"] < 0


def test_summarise_by_type_averages_tasks_within_a_seed():
    scores = fake_scores()
    scores.loc[scores["task"] == "Ret", "task_type"] = "STS"  # both tasks one type
    summary = summarise(scores, "task_type")
    assert list(summary.index) == ["STS"]
    assert summary.loc["STS", "mnrl_mean"] == pytest.approx((0.61 + 0.51) / 2)


def test_reading_names_wins_and_losses():
    text = reading(summarise(fake_scores(), "task"), pd.DataFrame())
    assert "on 1 of 2 tasks: STS (+0.0400)" in text
    assert "behind MNRL in every seed, by more than the spread, on 1: Ret (-0.0500)" in text


def test_arm_scores_from_results_table():
    table = pd.DataFrame({
        "loss": [None, "gist", "gist"], "seed": [None, 0, 0], "task": ["T", "T", "T"],
        "task_type": ["STS"] * 3, "split": ["test", "test", "dev"], "main_score": [0.1, 0.2, 0.4],
    })
    scores = arm_scores(table).set_index("arm")
    assert scores.loc["base", "seed"] == -1 and scores.loc["gist", "main_score"] == pytest.approx(0.3)


@pytest.mark.slow  # trains two runs and evaluates three models, tiny as they are
def test_experiment_plumbing_tiny_model(tiny_model_dir, tmp_path):
    config = ExperimentConfig(student=str(tiny_model_dir), guide=str(tiny_model_dir), steps=2,
                              batch_size=8, seeds=(0,), tasks="WordNetSTS", out=str(tmp_path / "exp"))
    report, demo = tmp_path / "RESULTS.md", tmp_path / "demo"
    result = run_experiment(config, report=report, demo_dir=demo)

    assert set(result.runs) == {("mnrl", 0), ("gist", 0)}
    assert all(run.parent == tmp_path / "exp" / "runs" for run in result.runs.values())
    assert set(result.scores["arm"]) == {"base", "mnrl", "gist"}
    assert set(result.scores["task"]) == {"WordNetSTS"}
    assert result.masked["steps"].tolist() == [2]

    text = report.read_text()
    assert "| WordNetSTS (STS) |" in text and "## Per task type" in text
    assert "| all tasks (mean) |" in text
    assert "gistlab experiment --steps 2 --batch-size 8 --seeds 0" in text
    assert "Wall time:" in text and "masked" in text

    assert sorted(p.name for p in demo.iterdir()) == [
        "gist", "mnrl", "results.csv", "sample_batch.parquet"]
    for arm in ("gist", "mnrl"):
        assert json.loads((demo / arm / "config.json").read_text())["loss"] == arm
        assert (demo / arm / "metrics.jsonl").is_file()
        assert list((demo / arm).glob("results/*/*/WordNetSTS.json"))
        assert not (demo / arm / "model").exists()
    assert set(pd.read_csv(demo / "results.csv")["loss"].fillna("base")) == {"base", "mnrl", "gist"}
    sample = pd.read_parquet(demo / "sample_batch.parquet")
    assert len(sample) and sample["step"].nunique() == 1 and sample["step"].iloc[0] in {1, 2}
    assert sum(f.stat().st_size for f in demo.rglob("*") if f.is_file()) < 1_000_000
