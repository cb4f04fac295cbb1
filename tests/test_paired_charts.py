"""app.paired_charts: paired differences drawn with their intervals in words, on a symmetric, shareable scale."""

from __future__ import annotations

import pandas as pd

from app.paired_charts import delta_hover, delta_reach, paired_delta_figure
from core.training.results import MEAN_TASK


def deltas(seeds: int = 3) -> pd.DataFrame:
    return pd.DataFrame({
        "arm": ["bundled:minilm-l6"] * 2 + ["self"] * 2, "task": ["WordNetSTS", MEAN_TASK] * 2,
        "delta": [0.0114, 0.005, -0.002, -0.001], "spread": [0.0009, 0.001, 0.003, 0.002] if seeds > 1 else [None] * 4,
        "seeds": [seeds] * 4, "wins": [seeds, seeds, 0, 1 if seeds > 1 else 0]})


def test_hover_says_it_in_words():
    assert delta_hover("GIST · minilm-l6", "WordNetSTS", 0.0114, 0.0009, 3, 3) == (
        "GIST · minilm-l6 − MNRL on WordNetSTS: +0.0114 ± 0.0009 (3 seeds, higher in 3/3)")
    assert delta_hover("GIST · self-guide", "WordNetSTS", -1.2, float("nan"), 1, 0, " points") == (
        "GIST · self-guide − MNRL on WordNetSTS: -1.20 points (1 seed, higher in 0/1)")


def test_axis_names_the_interval_zero_is_marked_and_the_scale_is_symmetric():
    fig = paired_delta_figure(deltas(), {"WordNetSTS": "Spearman (cosine)"}, "title").to_dict()
    layout = fig["layout"]
    assert layout["xaxis"]["title"]["text"] == ("Score difference against MNRL (same seed, same batches): "
                                                "mean ± std over seeds")
    low, high = layout["xaxis"]["range"]
    assert low == -high and high > 0.0114 + 0.0009
    assert any(s["x0"] == 0 == s["x1"] for s in layout["shapes"])
    assert layout["annotations"][0]["text"] == "MNRL"
    hover = [text for trace in fig["data"] for text in trace["hovertext"]]
    assert "GIST · minilm-l6 − MNRL on WordNetSTS: +0.0114 ± 0.0009 (3 seeds, higher in 3/3)" in hover
    assert all(list(trace["error_x"]["array"]) for trace in fig["data"])
    assert "WordNetSTS · Spearman (cosine)" in fig["data"][0]["y"]


def test_points_and_a_shared_reach():
    wide = deltas().assign(delta=lambda f: f["delta"] * 3)
    reach = delta_reach(pd.concat([deltas(), wide]), 100)
    fig = paired_delta_figure(deltas(), {}, "t", scale=100, unit=" points", reach=reach).to_dict()
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("Score difference against MNRL, points")
    assert fig["layout"]["xaxis"]["range"][1] > 100 * (3 * 0.0114 + 0.0009)  # the wider figure's scale, not its own
    assert [round(x, 6) for x in fig["data"][0]["x"]] == [1.14, 0.5]


def test_one_seed_draws_no_whisker_and_says_so():
    fig = paired_delta_figure(deltas(seeds=1), {}, "t").to_dict()
    assert not any(trace.get("error_x", {}).get("array") is not None for trace in fig["data"])
    assert [trace["name"] for trace in fig["data"]] == ["GIST · minilm-l6 (1 seed)", "GIST · self-guide (1 seed)"]
    assert fig["data"][0]["hovertext"][0] == "GIST · minilm-l6 − MNRL on WordNetSTS: +0.0114 (1 seed, higher in 1/1)"
