"""Margin what-if page: the sweep chart with the current setting marked, CSV, bad inputs as errors."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest
from test_app_inspect import errors, tiny_models  # noqa: F401 (a fixture)
from test_app_inspect import open_page as open_app


def open_page() -> AppTest:
    at = open_app("views/whatif.py")
    at.sidebar.slider(key="whatif_batches").set_value(2)
    return at.run()


def test_sweep_chart_marks_current_setting(tiny_models):
    at = open_page()
    assert errors(at) == ""
    chart = at.get("plotly_chart")[0]
    figure = json.loads(chart.proto.spec)
    names = {t.get("name") for t in figure["data"]}
    assert {"a-p", "a-a", "p-p", "a-n", "all", "current setting"} <= names
    assert "At the current setting (absolute, margin +0.00)" in at.caption[-1].value
    at.sidebar.slider(key="margin").set_value(0.2).run()
    assert "margin +0.20" in at.caption[-1].value
    at.sidebar.slider(key="whatif_range").set_value((0.3, 0.6)).run()
    assert "outside the swept range" in at.info[0].value


def test_student_not_asked_and_no_anchor_block(tiny_models):
    at = open_page()
    assert not [w for w in at.sidebar.text_input if w.key == "student_spec"]
    at.sidebar.checkbox(key="contrast_anchors").set_value(False).run()
    names = {t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert "a-a" not in names and "p-p" in names


def test_batch_larger_than_data_is_an_error(tiny_models):
    at = open_page()
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()
    at.sidebar.get("file_uploader")[0].set_value(("few.tsv", b"anchor\tpositive\na\tb\nc\td\ne\tf\n", "text/plain"))
    at.run()
    assert "fewer than the batch size" in errors(at)


def test_hub_dataset_offline_is_an_error(tiny_models):
    at = open_page()
    at.sidebar.radio(key="data_source").set_value("Hugging Face dataset").run()
    assert "Name a Hugging Face dataset" in at.info[0].value
    at.sidebar.text_input(key="data_hub_id").set_value("nobody/no-such-data").run()
    assert "nobody/no-such-data" in errors(at)
