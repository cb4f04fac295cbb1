"""Shared settings: the pure part (clamping, URL round trip, the settings line) and, through AppTest, one
state across pages and in the URL, with widgets that always show what the page computes with."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_app_inspect import GOOD_CSV, errors, open_page, tiny_models, upload  # noqa: F401 (a fixture)

from app.settings import LabSettings, clamped, describe, from_params, to_params

BASE = LabSettings(guide="bundled:minilm-l6", student="bundled:minilm-l3")


def test_params_round_trip():
    s = replace(BASE, margin=0.1, margin_strategy="relative", contrast_anchors=False, floor_on=True,
                positive_floor=0.45, seed=3, batch_size=64, task="nouns", student="")
    params = to_params(s)
    assert params["margin"] == "0.10" and params["aa"] == "0" and params["student"] == "none"
    assert from_params(params, BASE) == (s, [])
    hub = replace(BASE, source="hub", hub_id="org/data", hub_split="test")
    assert from_params(to_params(hub), BASE)[0] == hub
    mapped = replace(BASE, source="upload", columns=("question", "answer", "wrong"))
    assert to_params(mapped)["cols"] == "question,answer,wrong"
    assert from_params(to_params(mapped), BASE)[0].mapping() == (
        ("anchor", "question"), ("positive", "answer"), ("negative", "wrong"))


def test_bad_and_out_of_range_values_are_clamped_and_said():
    s, problems = from_params({"margin": "9", "seed": "x", "batch": "1", "strategy": "odd", "floor": "0.33"}, BASE)
    assert (s.margin, s.seed, s.batch_size, s.margin_strategy) == (0.5, 0, 2, "absolute")
    assert s.floor_on and s.positive_floor == 0.35  # the slider's 0.05 steps
    assert len(problems) == 4 and any("seed='x'" in p for p in problems)
    assert clamped(replace(BASE, margin=-3.0, source="ftp")) == replace(BASE, margin=-0.2)


def test_the_settings_line_names_what_is_used():
    line = describe(replace(BASE, margin=0.1, contrast_positives=False), "bundled WordNet pairs", size=8)
    assert line == ("data bundled WordNet pairs · guide bundled:minilm-l6 · student bundled:minilm-l3 · "
                    "absolute margin +0.10 · contrast a-a · no floor · batch 8 · seed 0")


def sidebar_values(at) -> tuple:
    return (at.sidebar.slider(key="margin").value, at.sidebar.checkbox(key="contrast_anchors").value,
            at.sidebar.checkbox(key="contrast_positives").value, at.sidebar.checkbox(key="floor_on").value,
            at.sidebar.slider(key="positive_floor").value)


def current_line(at) -> str:
    return next(c.value for c in at.caption if "Current settings" in c.value)


def masked_share(at) -> str:
    return next(m.value for m in at.metric if m.label == "Masked, all blocks")


def test_widgets_show_what_the_page_uses_after_an_upload_and_back(tiny_models):
    at = open_page()
    at.sidebar.slider(key="margin").set_value(0.1).run()
    at.sidebar.checkbox(key="contrast_anchors").uncheck().run()
    shown, share = sidebar_values(at), masked_share(at)
    assert shown == (0.1, False, True, False, 0.3)
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()  # stops before the margin widgets
    at.sidebar.radio(key="data_source").set_value("Bundled WordNet pairs").run()
    assert errors(at) == "" and sidebar_values(at) == shown and masked_share(at) == share
    assert "absolute margin +0.10 · contrast p-p" in current_line(at)
    qa = "question,answer\n" + "".join(f"question {i},answer {i}\n" for i in range(6))
    at = upload(at, "qa.csv", qa.encode())  # the column mapping stops the page too
    at.sidebar.selectbox(key="map_anchor").set_value("question").run()
    at.sidebar.selectbox(key="map_positive").set_value("answer").run()
    assert errors(at) == "" and sidebar_values(at) == shown
    assert "absolute margin +0.10 · contrast p-p" in current_line(at) and "upload qa.csv" in current_line(at)


def test_a_setting_made_on_one_page_holds_on_another_and_in_the_url(tiny_models):
    at = open_page()
    at.sidebar.slider(key="margin").set_value(0.1).run()
    at.sidebar.number_input(key="batch_seed").set_value(3).run()
    assert at.query_params["margin"] == "0.10" and at.query_params["seed"] == "3"
    at.switch_page("views/whatif.py")
    at.session_state["whatif_batches"] = 2
    at.run()
    assert errors(at) == "" and at.sidebar.slider(key="margin").value == 0.1
    assert at.sidebar.number_input(key="batch_seed").value == 3
    assert at.query_params["margin"] == "0.10" and at.query_params["seed"] == "3"
    assert "margin +0.10" in current_line(at) and "seed 3" in current_line(at)
    at.sidebar.slider(key="margin").set_value(0.2).run()
    at.switch_page("views/inspect.py").run()
    assert at.sidebar.slider(key="margin").value == 0.2 and at.sidebar.number_input(key="batch_seed").value == 3


def test_the_false_negative_rate_is_a_shared_setting(tiny_models):
    """Set on Inspect, the rate holds on What-if, in the URL and in the settings line; a link sets it."""
    at = open_page()
    at.sidebar.number_input(key="false_negative_rate").set_value(0.1).run()
    assert errors(at) == "" and at.query_params["fn"] == "0.10" and "false-negative rate 0.10" in current_line(at)
    at.sidebar.number_input(key="false_negative_rate").set_value(0.0).run()
    assert "fn" not in at.query_params  # rate 0, the data as it is: not in the link
    at.sidebar.number_input(key="false_negative_rate").set_value(0.15).run()
    at.switch_page("views/whatif.py")
    at.session_state["whatif_batches"] = 2
    at.run()
    assert errors(at) == "" and at.sidebar.number_input(key="false_negative_rate").value == 0.15
    assert at.query_params["fn"] == "0.15" and "false-negative rate 0.15" in current_line(at)


def test_an_upload_holds_across_pages(tiny_models):
    at = upload(open_page(), "pairs.csv", GOOD_CSV.encode())
    assert errors(at) == "" and "upload pairs.csv" in current_line(at)
    at.switch_page("views/embedding_map.py").run()
    assert errors(at) == "" and "upload pairs.csv" in current_line(at)
    assert at.sidebar.number_input(key="batch_size").value == 8  # the upload's 8 rows, not the bundled data


@pytest.mark.parametrize("page", ["views/inspect.py", "views/whatif.py"])
def test_a_link_sets_the_page(tiny_models, page):
    from streamlit.testing.v1 import AppTest
    from test_app_inspect import MAIN

    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.query_params.update(margin="0.25", seed="5", aa="0", floor="0.5", strategy="relative")
    at.switch_page(page)
    if page.endswith("whatif.py"):
        at.session_state["whatif_batches"] = 2
    at.run()
    assert errors(at) == ""
    assert sidebar_values(at) == (0.25, False, True, True, 0.5)
    assert at.sidebar.radio(key="margin_strategy").value == "relative"
    assert at.sidebar.number_input(key="batch_seed").value == 5
    at.sidebar.slider(key="margin").set_value(0.3).run()  # the user's change wins over the link it came from
    assert at.sidebar.slider(key="margin").value == 0.3 and at.query_params["margin"] == "0.30"
