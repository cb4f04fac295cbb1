"""The Demo's story from an experiment summary: the verdict's choice and wording, a cheaper guide, the
mask's quality with its denominators, the two masked pairs the story shows, a missing or garbled file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.analysis.demo_story import (PUBLISHED, best_per_rate, cheaper_guide, headline_gain, paired_gains,
                                      per_rate_line, quality_line, read_summary, story_pairs, verdict)
from core.errors import GistlabError
from core.method.explain import split_counts

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"

TASKS = ("WordNetSTS", "WordNetRetrieval")
LABELS = {"none": "MNRL (no guide)", "self": "GIST · self-guide", "bundled:minilm-l6": "GIST · minilm-l6",
          "bundled:mpnet-base": "GIST · mpnet-base", "mnrl-hard": "MNRL · hardness weighting"}
WINNING = {  # (rate, arm): (d, e): the arm minus MNRL is d + (seed - 1) * e on every task, so mean d, std e
    (0.0, "self"): (-0.002, 0.001), (0.0, "bundled:minilm-l6"): (0.001, 0.002),
    (0.0, "bundled:mpnet-base"): (0.002, 0.001), (0.0, "mnrl-hard"): (-0.001, 0.001),
    (0.1, "self"): (0.004, 0.003), (0.1, "bundled:minilm-l6"): (0.011, 0.001),
    (0.1, "bundled:mpnet-base"): (0.012, 0.002), (0.1, "mnrl-hard"): (0.0, 0.001),
}
QUALITY = {"masked_share": 0.15, "fn_present": 120, "fn_caught": 80, "fn_precision": 0.4, "fn_recall": 0.6667,
           "related_share": 0.1, "unrelated_share": 0.5, "steps": 50}


def make_summary(seeds: int = 3, deltas: dict | None = None) -> dict:
    """An experiment.json (summary_schema.md, version 1) whose paired differences are known exactly."""
    deltas = WINNING if deltas is None else deltas
    runs = []
    for rate in sorted({r for r, _ in deltas}):
        for seed in range(seeds):
            mnrl = {"WordNetSTS": 0.60 + seed / 100, "WordNetRetrieval": 0.20 + seed / 100}
            arms = [("none", 0.0, 0.0), *((arm, d, e) for (r, arm), (d, e) in deltas.items() if r == rate)]
            for arm, d, e in arms:
                scores = {t: s + d + (seed - 1) * e for t, s in mnrl.items()}
                guided = arm not in ("none", "mnrl-hard")
                runs.append({"rate": rate, "arm": arm, "label": LABELS[arm], "seed": seed,
                             "loss": "mnrl" if arm == "none" else arm if arm == "mnrl-hard" else "gist",
                             "scores": scores, "mean": sum(scores.values()) / len(scores),
                             "quality": dict(QUALITY) if guided else None})
    return {"version": 1, "setup": {"student": "bundled:minilm-l3", "data": "bundled", "steps": 50,
                                    "batch_size": 16, "seeds": list(range(seeds)),
                                    "rates": sorted({r for r, _ in deltas}), "tasks": list(TASKS)},
            "base": {"scores": {"WordNetSTS": 0.5, "WordNetRetrieval": 0.1}, "mean": 0.3}, "runs": runs}


def test_verdict_names_student_arm_points_seeds_and_rate():
    summary = make_summary()
    gains = paired_gains(summary)
    best = headline_gain(gains)
    assert (best.rate, best.arm, best.seeds, best.wins) == (0.1, "bundled:mpnet-base", 3, 3)
    assert verdict(summary, gains) == (
        "**minilm-l3 trained with GIST · mpnet-base scored +1.20 ± 0.20 points above MNRL** on the bundled "
        "benchmark's mean over 2 tasks, higher in 3 of 3 seeds, at a false-negative rate of 10%.")
    assert [(g.rate, g.arm) for g in best_per_rate(gains)] == [(0.0, "bundled:mpnet-base"), (0.1, "bundled:mpnet-base")]
    assert per_rate_line(gains) == (
        "Best arm at each false-negative rate: 0%: GIST · mpnet-base +0.20 ± 0.10 points, higher in 3 of 3 seeds"
        " · 10%: GIST · mpnet-base +1.20 ± 0.20 points, higher in 3 of 3 seeds")


def test_a_gain_in_some_seeds_only_is_not_called_a_win():
    summary = make_summary(deltas={(0.2, "self"): (0.001, 0.002), (0.2, "bundled:mpnet-base"): (-0.003, 0.001)})
    text = verdict(summary, paired_gains(summary))
    assert text.startswith("**No arm beat MNRL in every seed.** The closest: GIST · self-guide at a false-negative "
                           "rate of 20%, +0.10 ± 0.20 points")
    assert "higher in 2 of 3 seeds (student minilm-l3)" in text


def test_nothing_beats_mnrl_is_said_plainly():
    summary = make_summary(deltas={(0.0, "self"): (-0.004, 0.001), (0.0, "bundled:mpnet-base"): (-0.002, 0.001)})
    text = verdict(summary, paired_gains(summary))
    assert text.startswith("**Nothing beat MNRL here.** The best arm, GIST · mpnet-base at a false-negative rate "
                           "of 0%, scored -0.20 ± 0.10 points against MNRL")
    assert "higher in 0 of 3 seeds" in text


def test_one_seed_has_no_spread_and_no_win():
    summary = make_summary(seeds=1)
    gains = paired_gains(summary)
    best = headline_gain(gains)
    assert not best.clear and best.points() == "+1.00 points (1 seed: no spread)"  # seed 0: d - e
    assert verdict(summary, gains).startswith("**No arm beat MNRL in every seed.**")
    assert cheaper_guide(gains, 0.1) is None  # no spread to be within


def test_cheaper_guide_within_the_strong_guides_spread():
    gains = paired_gains(make_summary())
    assert cheaper_guide(gains, 0.1) == (
        "A cheaper guide did as well: at 10%, GIST · minilm-l6 gained +1.10 ± 0.10 points, within the spread of "
        "GIST · mpnet-base's +1.20 ± 0.20 points, with a 22M-parameter guide instead of mpnet-base's 110M.")
    behind = {(0.0, "bundled:mpnet-base"): (0.010, 0.001), (0.0, "bundled:minilm-l6"): (0.002, 0.001)}
    assert cheaper_guide(paired_gains(make_summary(deltas=behind)), 0.0) is None  # clearly behind: nothing said
    gains = paired_gains(make_summary(deltas=behind | {(0.0, "self"): (0.020, 0.001)}))
    assert cheaper_guide(gains, 0.0).startswith("A cheaper guide did better: at 0%, GIST · self-guide gained "
                                                 "+2.00 ± 0.10 points, above the spread")


def test_quality_line_pools_counts_and_names_the_shares():
    summary = make_summary()
    assert quality_line(summary, 0.1, "bundled:mpnet-base") == (
        "GIST · mpnet-base's mask at 10%, over 3 seeds x 50 steps: it caught 240 of the 360 false negatives present "
        "(recall 67%); it masked 15% of the in-batch candidates, of which 40% were false negatives (precision: the "
        "catches), 10% related hard negatives and 50% unrelated (the costs); shares are means over seeds.")
    assert quality_line(summary, 0.1, "mnrl-hard") is None  # masks nothing
    for run in summary["runs"]:
        if run["quality"]:
            run["quality"] |= {"fn_present": 0, "fn_caught": 0, "fn_recall": None}
    assert "met no false negative (recall undefined)" in quality_line(summary, 0.0, "self")
    for run in summary["runs"]:
        if run["quality"]:
            run["quality"] = {"masked_share": 0.2}  # a recipe that records only what it masked
    assert quality_line(summary, 0.0, "self") == (
        "GIST · self-guide's mask at 0%, over 3 seeds: it did not record its false negatives; it masked 20% of the "
        "in-batch candidates, of which n/a were false negatives (precision: the catches), n/a related hard "
        "negatives and n/a unrelated (the costs); shares are means over seeds.")


def test_rates_in_words():
    from core.analysis.demo_story import rate_text

    assert [rate_text(r) for r in (0.0, 0.05, 0.1, 0.2, 0.125)] == ["0%", "5%", "10%", "20%", "12.5%"]


def test_story_pairs_picks_a_distinct_catch_and_a_related_cost():
    pairs = pd.DataFrame({
        "candidate": ["same text", "a right answer", "another right answer", "another sense", "far away"],
        "guide_score": [1.0, 0.7, 0.8, 0.9, 0.95],
        "identical_text": [True, False, False, False, False],
        "relation": ["false-negative", "same-meaning", "false-negative", "same-word", "unrelated"]})
    caught, cost = story_pairs(pairs)
    assert caught["candidate"] == "another right answer" and "_name" not in caught
    assert cost["candidate"] == "another sense"  # a related hard negative before a closer unrelated one
    caught, cost = story_pairs(pairs[pairs["relation"] == "unrelated"])
    assert caught is None and cost["candidate"] == "far away"
    assert story_pairs(pairs.drop(columns="relation")) == (None, None)
    assert story_pairs(None) == (None, None)


def test_read_summary_missing_or_garbled_says_what_to_do(tmp_path):
    """The Demo reads experiment.json through the experiment's one reader (ExperimentSummary)."""
    with pytest.raises(GistlabError, match="No experiment summary at .*run `gistlab experiment`"):
        read_summary(tmp_path / "experiment.json")
    for garbled in ("{not json", json.dumps({"version": 1}), json.dumps({"runs": [{"arm": "none", "seed": 0}]})):
        (tmp_path / "experiment.json").write_text(garbled)
        with pytest.raises(GistlabError, match="Not an experiment summary .*gistlab experiment --report-only"):
            read_summary(tmp_path / "experiment.json")
    (tmp_path / "experiment.json").write_text(json.dumps(make_summary()))
    read = read_summary(tmp_path / "experiment.json")
    assert [(r["rate"], r["arm"], r["seed"], r["scores"]) for r in read["runs"]] == [
        (r["rate"], r["arm"], r["seed"], r["scores"]) for r in make_summary()["runs"]]


def test_without_mnrl_there_is_no_verdict():
    summary = make_summary()
    summary["runs"] = [r for r in summary["runs"] if r["arm"] != "none"]
    gains = paired_gains(summary)
    assert gains.empty and headline_gain(gains) is None
    assert verdict(summary, gains).startswith("**No verdict yet:**")


def test_published_figure_is_labelled_as_published():
    text = PUBLISHED.sentence()
    assert text.startswith("Published, not measured here: on MTEB STSBenchmark")
    assert text.endswith("84.40 against all-MiniLM-L6-v2's 82.03 (+2.37 points).")
    assert PUBLISHED.source.startswith("Source: the MTEB results published with the models")


def test_the_shipped_batch_agrees_with_its_runs_recorded_masks():
    """The Demo's card and caption come from assets/demo/sample_batch.*: a step of the demo's GIST run whose
    recorded masks (kept in the copy), judged by core.analysis.run_quality, split exactly as the caption says."""
    from core.analysis.run_quality import run_quality

    sample = json.loads((DEMO / "sample_batch.json").read_text())
    pairs = pd.read_parquet(DEMO / "sample_batch.parquet")
    split = split_counts(pairs)
    recorded = run_quality(DEMO / "gist").set_index("step").loc[sample["step"]]
    masked = len(pairs)
    assert masked == sample["masked"]
    assert split["false negative"] == recorded["fn_caught"]
    assert split["related hard negative"] == round(recorded["related_share"] * masked)
    assert split["unrelated"] == round(recorded["unrelated_share"] * masked)
    if "false_negatives" in sample:
        assert sample["false_negatives"] == recorded["fn_present"]
