"""core.analysis.experiment_summary: experiment.json round trip, and the paired figures derived from it."""

from __future__ import annotations

import pytest

from core.analysis.experiment_summary import (
    ExperimentSummary, RunRecord, cost_frame, curve, paired_runs, quality_frame, score_frame,
)
from core.errors import GistlabError

QUALITY = {"masked_share": 0.1, "fn_present": 10, "fn_caught": 4, "fn_precision": 0.4, "fn_recall": 0.4,
           "related_share": 0.2, "unrelated_share": 0.4, "steps": 5}


def made_up() -> ExperimentSummary:
    """MNRL and guide g at rates 0 and 0.2 over seeds 0-2 (g: +0.01, -0.01, +0.01 at 0; +0.03 .. +0.05 at 0.2),
    a third arm h at rate 0 only, seed 0 only (no MNRL partner missing: h has one)."""
    runs = []
    for rate, leads in ((0.0, (0.01, -0.01, 0.01)), (0.2, (0.03, 0.04, 0.05))):
        for seed, lead in enumerate(leads):
            runs.append(RunRecord(rate, "none", "MNRL (no guide)", "mnrl", seed, {"A": 0.5, "B": 0.3}, 0.4, None, 10.0))
            runs.append(RunRecord(rate, "g", "GIST · g", "gist", seed, {"A": 0.5 + lead, "B": 0.3 + lead}, 0.4 + lead,
                                  {**QUALITY, "fn_precision": None if seed else 0.4}, 15.0))
    runs.append(RunRecord(0.0, "h", "H", "gist", 0, {"A": 0.45, "B": 0.3}, 0.375, QUALITY, 20.0))
    return ExperimentSummary(setup={"steps": 5, "rates": [0.0, 0.2], "arms": ["none", "h", "g"]},
                             base={"scores": {"A": 0.4, "B": 0.2}, "mean": 0.3}, runs=runs)


def test_round_trip_and_a_one_line_error_for_anything_else(tmp_path):
    summary = made_up()
    assert ExperimentSummary.from_json(summary.to_json()) == summary
    for text in ("", "[]", '{"version": 1, "setup": {}, "base": {}, "runs": [{"rate": 0}]}'):
        with pytest.raises(GistlabError, match="Not an experiment summary"):
            ExperimentSummary.from_json(text)
    with pytest.raises(GistlabError, match="No experiment summary at"):
        ExperimentSummary.read(tmp_path / "experiment.json")


def test_paired_differences_are_taken_at_the_same_rate_and_seed():
    paired = paired_runs(made_up()).set_index(["arm", "rate", "seed"])["delta"]
    assert paired[("g", 0.2, 1)] == pytest.approx(0.04) and paired[("h", 0.0, 0)] == pytest.approx(-0.025)
    table = curve(made_up())
    assert table[["arm", "rate"]].values.tolist() == [["h", 0.0], ["g", 0.0], ["g", 0.2]]  # the experiment's order
    g0, g2 = table.iloc[1], table.iloc[2]
    assert g0["delta"] == pytest.approx(0.01 / 3) and (g0["wins"], g0["seeds"]) == (2, 3)
    assert g2["delta"] == pytest.approx(0.04) and g2["spread"] == pytest.approx(0.01) and g2["wins"] == 3
    assert table.iloc[0]["seeds"] == 1 and table.iloc[0]["spread"] != table.iloc[0]["spread"]  # NaN: 1 seed


def test_quality_averages_over_seeds_skipping_undefined_and_sums_the_counts():
    quality = quality_frame(made_up()).set_index(["arm", "rate"])
    g = quality.loc[("g", 0.0)]
    assert g["fn_precision"] == pytest.approx(0.4) and g["seeds"] == 3  # two seeds had no precision (None)
    assert (g["fn_present"], g["fn_caught"], g["steps"]) == (30, 12, 15)
    assert ("none", 0.0) not in quality.index


def test_cost_per_step_against_mnrl():
    cost = cost_frame(made_up()).set_index("arm")
    assert cost.loc["none", "per_step"] == pytest.approx(2.0) and cost.loc["g", "ratio"] == pytest.approx(1.5)
    assert cost.loc["h", "runs"] == 1 and cost.loc["h", "ratio"] == pytest.approx(2.0)


def test_scores_per_rate_and_arm_over_seeds():
    scores = score_frame(made_up()).set_index(["arm", "rate"])
    assert scores.loc[("g", 0.2), "mean"] == pytest.approx(0.44) and scores.loc[("g", 0.2), "std"] == pytest.approx(0.01)
    assert scores.loc[("none", 0.0), "seeds"] == 3 and scores.loc[("h", 0.0), "seeds"] == 1
