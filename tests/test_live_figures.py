"""app.live_figures: what travels on a rerun (the base once per change, image sources always) and what is served."""

from __future__ import annotations

import json

import plotly.graph_objects as go
from streamlit.testing.v1 import AppTest

from app import live_figures


def figure(source: str, title: str = "a") -> go.Figure:
    return go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]), layout=dict(
        title=dict(text=title), images=[dict(source=source, xref="x", yref="y", x=-0.5, y=-0.5, sizex=2, sizey=2)]))


def test_the_base_leaves_out_only_the_image_sources():
    base = json.loads(live_figures.figure_base(figure("data:image/png;base64,AAAA")))
    assert "source" not in base["layout"]["images"][0] and base["layout"]["images"][0]["sizex"] == 2
    assert base["data"][0]["type"] == "heatmap" and base["layout"]["title"]["text"] == "a"
    assert live_figures.figure_base(figure("one")) == live_figures.figure_base(figure("two"))  # a mask is not the base
    assert live_figures.figure_base(figure("one")) != live_figures.figure_base(figure("one", "b"))


def test_the_served_folder_holds_the_page_and_plotly_js_and_is_made_once(tmp_path, monkeypatch):
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path))
    folder = live_figures.served_folder()
    assert (folder / "index.html").read_bytes() == live_figures.PAGE.read_bytes()
    assert (folder / "plotly.min.js").stat().st_size == live_figures.PLOTLY_JS.stat().st_size
    assert '<script src="plotly.min.js">' in (folder / "index.html").read_text()  # the served copy, never a CDN
    (folder / "plotly.min.js").write_text("kept")
    assert live_figures.served_folder() == folder and (folder / "plotly.min.js").read_text() == "kept"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind


def test_a_rerun_with_the_same_base_sends_the_same_base_key_and_new_sources():
    def page():
        import plotly.graph_objects as go
        import streamlit as st

        from app.live_figures import figure_base, live_figures
        base = figure_base(go.Figure(layout=dict(images=[{}])))
        live_figures([base], [[st.session_state.get("source", "one")]], key="maps")

    at = AppTest.from_function(page).run()
    element = at.get("component_instance")[0].proto
    first, first_id = json.loads(element.json_args), element.id
    at.session_state["source"] = "two"
    element = at.run().get("component_instance")[0].proto
    second = json.loads(element.json_args)
    assert first["base"] == second["base"] and (first["images"], second["images"]) == ([["one"]], [["two"]])
    assert element.id == first_id  # the same element: the browser keeps its frame and swaps the image
