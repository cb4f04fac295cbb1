"""core.analysis.experiment: the ladder's pure summaries on made-up scores, and the whole plumbing with the tiny model."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from core.analysis.experiment import ExperimentConfig, run_experiment
from core.analysis.experiment_plan import Arm
from core.analysis.experiment_report import masking_markdown, masking_summary, reading, scores_markdown, verdicts
from core.training.results import MEAN_TASK, arm_summary, paired_deltas


def squeezed(table: str) -> str:
    """A Markdown table with its cells' padding collapsed, so a test can look for one line by its cells."""
    return re.sub(r" {2,}", " ", table)


def fake_scores(seeds: int = 3) -> pd.DataFrame:
    """Two tasks: guide g ahead of MNRL on STS in every seed, behind on Ret in every seed; guide h noise."""
    rows = [("base", -1, "STS", "STS", 0.50), ("base", -1, "Ret", "Retrieval", 0.40)]
    table = [(0.60, 0.65, 0.50, 0.45, 0.61), (0.61, 0.64, 0.52, 0.46, 0.60), (0.62, 0.66, 0.51, 0.47, 0.63)]
    for seed, (m_sts, g_sts, m_ret, g_ret, h_sts) in enumerate(table[:seeds]):
        rows += [("none", seed, "STS", "STS", m_sts), ("g", seed, "STS", "STS", g_sts),
                 ("none", seed, "Ret", "Retrieval", m_ret), ("g", seed, "Ret", "Retrieval", g_ret),
                 ("h", seed, "STS", "STS", h_sts), ("h", seed, "Ret", "Retrieval", m_ret)]
    return pd.DataFrame(rows, columns=["arm", "seed", "task", "task_type", "main_score"])


def test_paired_deltas_seed_by_seed_with_sign_counts():
    deltas = paired_deltas(fake_scores(), []).set_index(["arm", "task"])
    sts, ret = deltas.loc[("g", "STS")], deltas.loc[("g", "Ret")]
    assert sts["delta"] == pytest.approx((0.05 + 0.03 + 0.04) / 3)
    assert sts["spread"] == pytest.approx(pd.Series([0.05, 0.03, 0.04]).std())  # sample std
    assert (sts["wins"], sts["seeds"]) == (3, 3)
    assert ret["wins"] == 0 and ret["delta"] < 0
    mean = deltas.loc[("g", MEAN_TASK)]  # each seed's mean over tasks first, then the difference
    assert mean["delta"] == pytest.approx(((0.05 - 0.05) + (0.03 - 0.06) + (0.04 - 0.04)) / 6)
    assert "none" not in deltas.index.get_level_values("arm")
    assert "base" not in deltas.index.get_level_values("arm")


def test_one_seed_has_no_spread_and_says_so():
    deltas = paired_deltas(fake_scores(seeds=1), [])
    assert deltas["spread"].isna().all() and (deltas["seeds"] == 1).all()
    summary = arm_summary(fake_scores(seeds=1), [])
    text = scores_markdown(summary, ["base", "none", "g"], {"STS": "STS", "Ret": "Retrieval"})
    assert "(1 seed)" in text and "±" not in text
    assert set(verdicts(deltas)["verdict"]) == {"1 seed"}


def test_arm_summary_means_and_sample_std():
    summary = arm_summary(fake_scores(), []).set_index(["arm", "task"])
    assert summary.loc[("none", "STS"), "mean"] == pytest.approx(0.61)
    assert summary.loc[("none", "STS"), "std"] == pytest.approx(0.01)
    assert summary.loc[("base", "STS"), "seeds"] == 1
    assert summary.loc[("none", MEAN_TASK), "mean"] == pytest.approx((0.61 + 0.51) / 2)


def test_verdicts_and_reading_name_help_hurt_and_noise():
    deltas = paired_deltas(fake_scores(), [])
    judged = verdicts(deltas).set_index(["arm", "task"])["verdict"]
    assert judged[("g", "STS")] == "helps" and judged[("g", "Ret")] == "hurts"
    assert judged[("h", "STS")] == "noise"  # +0.01, -0.01, +0.01: signs disagree
    text = reading(deltas, arm_summary(fake_scores(), []), pd.DataFrame(), "bundled:minilm-l3")
    assert "**GIST · g** vs MNRL, 3 seeds" in text
    assert "Helps on STS (+0.0400); hurts on Ret (-0.0500)" in text
    assert "**GIST · h** vs MNRL, 3 seeds: on the mean over tasks it is within the seed noise" in text


def test_masking_table_says_no_ground_truth_instead_of_zero():
    masking = pd.DataFrame({"student": "s", "arm": ["g", "g", "self"], "seed": [0, 1, 0], "steps": 10,
                            "masked": [0.1, 0.2, 0.05], "fn_precision": [0.5, 0.7, float("nan")],
                            "fn_recall": [0.25, float("nan"), float("nan")], "weak_rows": [1.0, 2.0, 0.0]})
    text = squeezed(masking_markdown(masking_summary(masking)))
    assert "| GIST · g | 15.0% ± 7.1% | 60.0% ± 14.1% | 25.0% | 1.50 ± 0.71 | 2 |" in text
    assert "| GIST · self-guide | 5.0% | no ground truth | n/a | 0.00 | 1 |" in text


def test_plan_goes_seed_by_seed_and_names_runs_by_their_settings():
    config = ExperimentConfig(seeds=(0, 1))
    plan = config.plan()
    assert len(plan) == 2 * (4 + 2) and plan[0] == Arm("bundled:minilm-l3", "none", 0)
    assert {a.seed for a in plan[:6]} == {0}
    assert plan[4:6] == [Arm("bundled:minilm-l6", "none", 0), Arm("bundled:minilm-l6", "bundled:mpnet-base", 0)]
    name = config.run_name(Arm("bundled:minilm-l3", "bundled:mpnet-base", 1))
    assert name.startswith("exp-minilm-l3-mpnet-base-s1-50x16-")
    assert config.run_name(plan[0]).startswith("exp-minilm-l3-mnrl-s0-")
    other = ExperimentConfig(seeds=(0, 1), lr=1e-5).run_name(Arm("bundled:minilm-l3", "bundled:mpnet-base", 1))
    assert other != name  # other settings, other folder: never reused by mistake
    assert "--guides none,self,bundled:minilm-l6,bundled:mpnet-base" in config.command(None, None)
    # a false-negative rate is part of every arm's settings (another folder), and of the command;
    # rate 0 keeps the names runs had before the option existed
    rated = ExperimentConfig(seeds=(0, 1), rates=(0.0, 0.1), small_student=None)
    at = [a for a in rated.plan() if a.rate == 0.1]
    assert rated.train_settings(at[1])["false_negatives"] == 0.1
    assert "false_negatives" not in config.train_settings(plan[1])
    assert rated.run_name(plan[1]) == config.run_name(plan[1])  # rate 0: the name it had before rates
    assert rated.run_name(at[1]).startswith("exp-minilm-l3-self-r0.1-s0-")
    assert "--false-negatives 0,0.1" in rated.command(None, None)
    assert "--threads" not in rated.command(None, None)  # all cores: the default
    assert "--threads 1" in ExperimentConfig(threads=1).command(None, None)  # a rerun needs the same sums
    # seed-major: seed 0 at every rate and arm, then seed 1
    assert [(a.seed, a.rate) for a in rated.plan()[::4]] == [(0, 0.0), (0, 0.1), (1, 0.0), (1, 0.1)]


def test_help_lists_guides(capsys):
    from core.cli import main

    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert "--guides" in capsys.readouterr().out


@pytest.mark.slow  # trains two runs and evaluates three models, tiny as they are
def test_experiment_plumbing_resume_and_skipped_arm(tiny_model_dir, tmp_path):
    config = ExperimentConfig(student=str(tiny_model_dir), guides=("none", str(tiny_model_dir), "bundled:nope"),
                              small_student=None, steps=2, batch_size=8, seeds=(0,), tasks="WordNetSTS",
                              out=str(tmp_path / "exp"))
    report, demo = tmp_path / "RESULTS.md", tmp_path / "demo"
    report.write_text("<!-- mining:begin -->\nmined\n<!-- mining:end -->\n")
    lines: list[str] = []
    result = run_experiment(config, report=report, demo_dir=demo, log=lines.append)

    guide = str(tiny_model_dir)
    assert set(result.runs) == {Arm(guide, "none", 0), Arm(guide, guide, 0)}
    assert "Unknown bundled model 'bundled:nope'" in result.skipped[Arm(guide, "bundled:nope", 0)]
    assert all(run.parent == tmp_path / "exp" / "runs" for run in result.runs.values())
    assert set(result.scores["arm"]) == {"base", "none", guide}
    assert result.masking["steps"].tolist() == [2]
    ledger = json.loads((result.runs[Arm(guide, guide, 0)] / "experiment.json").read_text())
    assert ledger["train_s"] >= 0 and ledger["eval_s"] > 0  # train_s comes from status times, whole seconds: a tiny run can take 0

    text = squeezed(report.read_text())
    assert "mined" in text and text.count("<!-- ladder:begin -->") == 1  # the other section survives
    assert "| WordNetSTS (STS) |" in text and f"| {MEAN_TASK} |" in text
    assert "(higher in 0/1)" in text or "(higher in 1/1)" in text
    assert "2 of 3 runs finished" in text and "Not in this report" in text
    assert "gistlab experiment --guides none," in text

    assert sorted(p.name for p in demo.iterdir()) == [
        "experiment.json", "gist", "ladder_masking.csv", "ladder_scores.csv", "mnrl", "results.csv", "sample_batch.json",
        "sample_batch.parquet"]
    sample = json.loads((demo / "sample_batch.json").read_text())
    assert sample["rows"] == 8 and 0 < sample["masked"] <= sample["candidates"]
    assert "weak_row" in pd.read_parquet(demo / "sample_batch.parquet")
    assert json.loads((demo / "gist" / "config.json").read_text())["loss"] == "gist"
    assert not (demo / "gist" / "model").exists()
    assert set(pd.read_csv(demo / "results.csv")["loss"].fillna("base")) == {"base", "mnrl", "gist"}
    assert sum(f.stat().st_size for f in demo.rglob("*") if f.is_file()) < 1_000_000

    status = [(run / "status.json").stat().st_mtime_ns for run in result.runs.values()]
    again = run_experiment(config, report=report, log=lines.append)  # resumes: nothing retrained
    assert [(run / "status.json").stat().st_mtime_ns for run in again.runs.values()] == status
    assert sum(line.startswith("reusing") for line in lines) == 2
    pd.testing.assert_frame_equal(again.scores, result.scores)

    more = ExperimentConfig(**{**config.__dict__, "seeds": (0, 1), "report_only": True})
    reported = run_experiment(more, report=report, log=lines.append)  # trains nothing
    assert set(reported.runs) == set(result.runs)
    assert reported.skipped[Arm(guide, "none", 1)] == "not finished yet (report only: nothing trained)"
    assert not [p for p in (tmp_path / "exp" / "runs").iterdir() if "-s1-" in p.name]


def test_guide_free_recipes_are_arms_of_the_same_seeds():
    """self-judge and mnrl-hard in --guides: trained as their own loss with no guide, on the seed's
    batches, named by the loss; only self-judge records masks; the report names them in words."""
    from core.analysis.experiment_report import arms_text, run_settings
    from core.training.results import arm_label, arm_of

    config = ExperimentConfig(guides=("none", "self-judge", "bundled:minilm-l6", "mnrl-hard"), small_student=None)
    plan = config.plan()
    losses = {arm.guide: arm.loss for arm in plan if arm.seed == 0}
    assert losses == {"none": "mnrl", "self-judge": "self-judge", "bundled:minilm-l6": "gist", "mnrl-hard": "mnrl-hard"}
    judge = Arm("bundled:minilm-l3", "self-judge", 0)
    settings = config.train_settings(judge)
    assert settings["loss"] == "self-judge" and "guide" not in settings
    assert config.train_settings(Arm("bundled:minilm-l3", "mnrl-hard", 0))["loss"] == "mnrl-hard"
    assert config.run_name(judge).startswith("exp-minilm-l3-self-judge-s0-")
    assert judge.masks and not Arm("bundled:minilm-l3", "mnrl-hard", 0).masks
    assert run_settings(config).guide == "bundled:minilm-l6"  # the stated margin is the guided arm's
    text = arms_text(config, run_settings(config))
    assert "`self-judge` = the student masks" in text and "+ 0.1" in text and "strength 9" in text
    assert arm_of("self-judge", "bundled:minilm-l6") == "self-judge" and arm_of("mnrl-hard", None) == "mnrl-hard"
    assert arm_of("gist-hard", "self") == "self (hardness)"
    assert arm_label("self-judge") == "Self-judge (the student masks)"
