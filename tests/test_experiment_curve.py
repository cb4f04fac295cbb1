"""The false-negative-rate experiment end to end (tiny random BERT, 2 steps, 1 seed, 2 rates, arms none, a
guide and mined): run layout, identical batches across arms at a rate, experiment.json, the curve sections."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.analysis.experiment import ExperimentConfig, run_experiment
from core.analysis.experiment_curve import recipe_sentences
from core.analysis.experiment_plan import Arm
from core.analysis.experiment_summary import ExperimentSummary, curve, quality_frame
from core.errors import GistlabError


def grouped_pairs(path, groups: int = 20, per_group: int = 2) -> str:
    """A small CSV with a ``group`` column (ground truth) and a negative: rows of a group mean the same."""
    rows = [{"anchor": f"question {g} asked way {k}", "positive": f"answer {g} written form {k}",
             "negative": f"unrelated text number {g * per_group + k}", "group": g}
            for g in range(groups) for k in range(per_group)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.mark.slow  # trains six 2-step runs of the tiny model, mines 40 rows and evaluates seven models
def test_rates_times_arms_on_identical_batches_with_summary_and_curve(tiny_model_dir, tmp_path):
    tiny = str(tiny_model_dir)
    out = tmp_path / "exp"
    config = ExperimentConfig(student=tiny, guides=("none", tiny, "mined"), small_student=None, steps=2, batch_size=8,
                              seeds=(0,), rates=(0.0, 0.25), tasks="WordNetSTS", homogeneous=False,
                              data=grouped_pairs(tmp_path / "pairs.csv"), out=str(out))
    report, demo = tmp_path / "RESULTS.md", tmp_path / "demo"
    result = run_experiment(config, report=report, demo_dir=demo)
    assert not result.skipped, result.skipped
    assert set(result.runs) == {Arm(tiny, arm, 0, rate) for arm in ("none", tiny, "mined") for rate in (0.0, 0.25)}
    names = sorted(run.name for run in result.runs.values())
    assert sum("-r0.25-" in n for n in names) == 3 and all(n.startswith("exp-") for n in names)

    def batches(arm: Arm) -> list:
        lines = (result.runs[arm] / "batches.jsonl").read_text().splitlines()
        return [json.loads(line)["rows"] for line in lines]

    for rate in (0.0, 0.25):  # every arm at a (rate, seed) trains on the same rows in the same order
        assert batches(Arm(tiny, "none", 0, rate)) == batches(Arm(tiny, tiny, 0, rate)) == batches(Arm(tiny, "mined", 0, rate))
    assert batches(Arm(tiny, "none", 0, 0.0)) != batches(Arm(tiny, "none", 0, 0.25))

    [mined] = (out / "mined").glob("*.parquet")  # mined once, every row kept with its ground truth
    data = pd.read_parquet(mined)
    assert len(data) == 40 and {"group", "negative_1", "negative_3"} <= set(data.columns) and "negative" not in data
    record = json.loads((result.runs[Arm(tiny, "mined", 0, 0.25)] / "mined.json").read_text())
    assert record["rows_in"] + record["rows_not_used"] == 40 and record["removed_by_guide"] >= 0
    assert json.loads((result.runs[Arm(tiny, "mined", 0, 0.0)] / "config.json").read_text())["data"] == str(mined)

    summary = ExperimentSummary.read(out / "experiment.json")
    assert ExperimentSummary.from_json(summary.to_json()) == summary
    assert (demo / "experiment.json").read_text() == (out / "experiment.json").read_text()
    assert set(pd.read_csv(demo / "ladder_scores.csv")["rate"]) == {0.0}  # the demo's ladder: rate 0; the rest in the json
    assert summary.setup["rates"] == [0.0, 0.25] and len(summary.runs) == 6
    quality = {(r.arm, r.rate): r.quality for r in summary.runs}
    assert quality[("none", 0.0)] is None and quality[("mined", 0.25)] is None
    guided = quality[(tiny, 0.25)]
    assert guided["steps"] == 2 and guided["fn_present"] > 0  # the rate put right answers in the batches
    assert set(curve(summary)["arm"]) == {tiny, "mined"} and set(quality_frame(summary)["rate"]) == {0.0, 0.25}

    text = report.read_text()
    assert "## When does the guide matter: the false-negative-rate curve" in text
    assert "## Which recipe for which data" in text and "rate 0.25: score; arm − MNRL" in text
    assert "FN present per step" in text


def test_mining_that_fails_is_tried_once_and_skips_every_mined_arm(tiny_model_dir, tmp_path):
    config = ExperimentConfig(student=str(tiny_model_dir), guides=("mined",), small_student=None, steps=2, batch_size=8,
                              seeds=(0, 1), tasks="WordNetSTS", homogeneous=False, out=str(tmp_path / "exp"),
                              data=grouped_pairs(tmp_path / "pairs.csv", groups=10))  # 20 positives: too few to mine
    lines: list[str] = []
    result = run_experiment(config, log=lines.append)
    assert not result.runs and len(result.skipped) == 2
    assert all(reason.startswith("mining failed: ") and "too few" in reason for reason in result.skipped.values())
    assert sum(line.startswith("mining negatives") for line in lines) == 1


def test_summary_reader_refuses_missing_and_garbled_files(tmp_path):
    with pytest.raises(GistlabError, match="No experiment summary"):
        ExperimentSummary.read(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"version": 1}')
    with pytest.raises(GistlabError, match="Not an experiment summary"):
        ExperimentSummary.read(tmp_path / "bad.json")


def test_recipe_sentences_say_plainly_when_nothing_beats_mnrl():
    from core.analysis.experiment_report import verdicts

    judged = verdicts(pd.DataFrame({
        "rate": [0.0, 0.0, 0.2, 0.2], "arm": ["g", "h", "g", "h"], "label": ["G", "H", "G", "H"],
        "delta": [0.001, -0.02, 0.03, 0.0], "spread": [0.01, 0.005, 0.005, 0.01], "seeds": [3] * 4,
        "wins": [2, 0, 3, 1]}))
    text = recipe_sentences(judged, [0.0, 0.2])
    assert "Rate 0: nothing beats MNRL beyond the seed noise; the highest, G, is +0.0010 ± 0.0100 (higher in 2/3)." in text
    assert "Trailing MNRL: H (-0.0200)." in text
    assert ("Rate 0.2: G is highest, +0.0300 ± 0.0050 over MNRL (higher in 3/3). It leads every other arm by more "
            "than the seed spread.") in text
    assert "Across the rates (0 → 0.2), each arm's difference against MNRL: G +0.0010 → +0.0300; H -0.0200 → +0.0000." in text


def test_recipe_sentences_call_a_lead_within_the_seed_spread_a_tie():
    from core.analysis.experiment_report import verdicts

    judged = verdicts(pd.DataFrame({
        "rate": [0.1] * 3, "arm": ["k", "g", "h"], "label": ["K", "G", "H"], "delta": [0.0100, 0.0168, 0.0161],
        "spread": [0.0010, 0.0011, 0.0010], "seeds": [3] * 3, "wins": [3, 3, 3]}))  # not in score order
    text = recipe_sentences(judged, [0.1])
    assert "Rate 0.1: G is highest, +0.0168 ± 0.0011 over MNRL (higher in 3/3); also helping: H (+0.0161), K (+0.0100)." in text
    assert "Within the seed spread of it, so tied at this scale: H (0.0007 behind)." in text
    assert "K (" not in text.split("tied at this scale")[1]


def test_cli_takes_several_rates_and_refuses_bad_ones():
    from core.cli.training import _rates

    assert _rates("0,0.1,0.2") == (0.0, 0.1, 0.2) and _rates("0.1") == (0.1,)
    with pytest.raises(GistlabError, match="comma-separated rates"):
        _rates("0,x")
    with pytest.raises(GistlabError, match="between 0 and"):
        _rates("0,0.9")
