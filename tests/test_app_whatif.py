"""Margin what-if page: per-block shares on separate axes per strategy, the current setting marked, precision per
task (or "no ground truth"), the positive floor side by side, progress per batch, CSV, bad inputs as errors."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest
from test_app_embedding_map import values
from test_app_inspect import errors, tiny_models  # noqa: F401 (a fixture)
from test_app_inspect import open_page as open_app

import core.analysis.whatif


@pytest.fixture
def sweeps(monkeypatch):
    """Record each sweep the page asks core.analysis.whatif for, and the progress it reports. The
    page keeps finished sweeps per server (st.cache_resource): cleared first, so a sweep another test
    of this worker ran with the same settings cannot hide this test's (an order-dependent failure)."""
    import streamlit as st

    st.cache_resource.clear()
    calls = []
    real = core.analysis.whatif.margin_sweep

    def counted(batches, *args, progress=None, **kwargs):
        ticks = []
        calls.append(ticks)
        return real(batches, *args, progress=lambda done, total: ticks.append((done, total)) or progress(done, total),
                    **kwargs)

    monkeypatch.setattr(core.analysis.whatif, "margin_sweep", counted)
    return calls


def open_page() -> AppTest:
    at = open_app("views/whatif.py")
    at.sidebar.slider(key="whatif_batches").set_value(2)
    return at.run()


def figure(at: AppTest, k: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[k].proto.spec)


def test_sweep_chart_separate_axes_and_current_setting(tiny_models, sweeps):
    at = open_page()
    assert errors(at) == ""
    names = {t.get("name") for t in figure(at)["data"]}
    assert {"a-p", "a-a", "p-p", "a-n", "all", "current setting"} <= names
    layout = figure(at)["layout"]
    assert layout["xaxis"]["title"]["text"].startswith("absolute margin")
    assert layout["xaxis2"]["title"]["text"].startswith("relative margin") and not layout["xaxis2"].get("matches")
    assert "At the current setting (absolute, margin +0.00)" in " ".join(c.value for c in at.caption)
    assert sweeps[-1] == [(1, 2), (2, 2)]  # progress after each batch
    at.sidebar.slider(key="margin").set_value(0.2).run()
    assert "margin +0.20" in " ".join(c.value for c in at.caption)
    assert len(sweeps) == 2  # one sweep for the page's first run (1 batch) and one for 2 batches; none for the margin
    at.sidebar.slider(key="whatif_range").set_value((0.3, 0.6)).run()
    assert "outside the swept range" in at.info[0].value
    relative = [t for t in figure(at)["data"] if t.get("xaxis") == "x2" and t.get("name") == "all"][0]
    assert max(values(relative["x"])) == 1.0  # the relative range is its own (default -0.2 .. 1.0)


def test_precision_per_task_and_the_positive_floor(tiny_models):
    at = open_page()
    quality = figure(at, 1)
    assert quality["layout"]["title"]["text"].startswith("Precision: false negatives among the masked")
    tasks = {t["name"].split(",")[0] for t in quality["data"]}
    assert "all" in tasks and len(tasks) > 2  # the bundled data's tasks, each its own line
    at.radio(key="whatif_measure").set_value("recall").run()
    assert figure(at, 1)["layout"]["title"]["text"].startswith("Recall")
    # these batches of example_definition hold no false negative (random batches seldom do): said, not drawn
    said = " ".join(i.value for i in at.info)
    assert "No false negatives in these batches of" in said and "example_definition" in said
    drawn = {t["name"].split(",")[0] for t in figure(at, 1)["data"]}
    assert "example_definition" not in drawn and "category_triplet" in drawn
    at.sidebar.checkbox(key="floor_on").check().run()
    at.sidebar.slider(key="positive_floor").set_value(0.5).run()
    assert errors(at) == ""
    assert "all, floor +0.50" in {t.get("name") for t in figure(at)["data"]}  # masked share with the floor
    assert any("floor +0.50" in t["name"] for t in figure(at, 1)["data"])
    line = at.caption[-1].value
    assert "no floor: masked" in line and "floor +0.50: masked" in line


def test_a_false_negative_rate_gives_every_task_a_recall_curve(tiny_models):
    at = open_page()
    at.radio(key="whatif_measure").set_value("recall")
    at.sidebar.number_input(key="false_negative_rate").set_value(0.1).run()
    assert errors(at) == ""
    assert not any("No false negatives" in i.value for i in at.info)
    present = next(c.value for c in at.caption if c.value.startswith("False-negative candidates"))
    counts = dict(part.rsplit(" ", 1) for part in present.split(": ", 1)[1].split(", "))
    assert set(counts) == {"all", "example_definition", "words_definition", "category_triplet"}
    assert all(int(n.replace(",", "")) > 0 for n in counts.values())
    curves = [t for t in figure(at, 1)["data"] if t.get("xaxis") in (None, "x")]
    assert {t["name"].split(",")[0] for t in curves} == set(counts)
    assert all(len(values(t["y"])) > 1 for t in curves)  # a curve over the margins, not a point


def test_student_not_asked_and_no_anchor_block(tiny_models):
    at = open_page()
    assert not [w for w in at.sidebar.text_input if w.key == "student_spec"]
    at.sidebar.checkbox(key="contrast_anchors").set_value(False).run()
    names = {t.get("name") for t in figure(at)["data"]}
    assert "a-a" not in names and "p-p" in names


def test_small_upload_clamps_the_batch_and_has_no_ground_truth(tiny_models):
    at = open_page()
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()
    at.sidebar.get("file_uploader")[0].set_value(("few.tsv", b"anchor\tpositive\na\tb\nc\td\ne\tf\n", "text/plain"))
    at.run()
    assert errors(at) == "" and at.sidebar.number_input(key="batch_size").value == 3
    assert "no ground truth" in at.info[0].value and len(at.get("plotly_chart")) == 1


def test_hub_dataset_offline_is_an_error(tiny_models):
    at = open_page()
    at.sidebar.radio(key="data_source").set_value("Hugging Face dataset").run()
    assert "Name a Hugging Face dataset" in at.info[0].value
    at.sidebar.text_input(key="data_hub_id").set_value("nobody/no-such-data").run()
    assert "nobody/no-such-data" in errors(at)


def test_the_guide_loads_under_the_counting_bar_before_the_sweep(tiny_models, tiny_model_dir, monkeypatch):
    from app import loaders

    order = []
    real_ready, real_cache = loaders.ready_models, loaders.guide_cache
    monkeypatch.setattr(loaders, "ready_models", lambda *a, **k: order.append(("ready", a)) or real_ready(*a, **k))
    monkeypatch.setattr(loaders, "guide_cache", lambda spec, *a, **k: order.append(("cache", spec)) or real_cache(spec, *a, **k))
    at = open_page()
    assert errors(at) == ""
    assert order[0] == ("ready", (str(tiny_model_dir),))  # the first visit's wait is counted by ready_models
