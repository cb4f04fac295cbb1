"""Embedding map page: PCA on first paint without umap, lines for masks, guide/student switch, errors."""

from __future__ import annotations

import base64
import json
import sys

import numpy as np
from streamlit.testing.v1 import AppTest
from test_app_inspect import errors, tiny_models  # noqa: F401 (a fixture)
from test_app_inspect import open_page as open_app


def open_page() -> AppTest:
    at = open_app("views/embedding_map.py")
    at.sidebar.number_input(key="batch_size").set_value(16)
    return at.run()


def figure(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def values(array) -> list:
    """A plotly JSON array as a list (plotly sends numeric numpy arrays as base64 'bdata')."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_pca_map_with_roles_lines_and_hover(tiny_models):
    umap_loaded = "umap" in sys.modules
    at = open_page()
    assert errors(at) == ""
    assert umap_loaded or "umap" not in sys.modules  # the first paint never imports umap
    traces = {t["name"].split(" (")[0]: t for t in figure(at)["data"]}
    assert set(traces) == {"masked by the guide", "anchor", "positive", "negative"}
    assert len(values(traces["anchor"]["x"])) == 16 and "row" in traces["anchor"]["hovertext"][0]
    assert figure(at)["layout"]["xaxis"]["title"]["text"] == "PCA 1"
    lines = len(values(traces["masked by the guide"]["x"]))
    at.sidebar.slider(key="margin").set_value(0.5).run()
    more = {t["name"].split(" (")[0]: t for t in figure(at)["data"]}["masked by the guide"]
    assert len(values(more["x"])) > lines  # a larger margin masks more: more lines, same points
    at.checkbox(key="map_lines").uncheck().run()
    assert [t["name"] for t in figure(at)["data"]] == ["anchor", "positive", "negative"]
    assert "Draw a box or a lasso" in at.info[0].value


def test_student_embeddings_and_no_student(tiny_models, tiny_model_dir, tmp_path):
    import torch
    from sentence_transformers import SentenceTransformer

    other = SentenceTransformer(str(tiny_model_dir), device="cpu")  # a student unlike the guide
    torch.manual_seed(1)
    with torch.no_grad():
        for weight in other.parameters():
            weight.add_(torch.randn_like(weight) * 0.5)
    other.save(str(tmp_path / "other"))
    at = open_page()
    at.sidebar.text_input(key="student_spec").set_value(str(tmp_path / "other")).run()
    before = values(figure(at)["data"][1]["x"])
    at.radio(key="map_source").set_value("student").run()
    assert errors(at) == "" and "student embeddings" in figure(at)["layout"]["title"]["text"]
    assert values(figure(at)["data"][1]["x"]) != before  # the points moved: the student's own vectors
    at.sidebar.text_input(key="student_spec").set_value("").run()
    assert errors(at) == "" and at.radio(key="map_source").disabled
    assert len(before) == 16


def test_umap_on_request(tiny_models, monkeypatch):
    """The page asks core for UMAP only when chosen (the real UMAP is tested in test_projection)."""
    import core.projection

    asked = []
    monkeypatch.setattr(core.projection, "umap_2d", lambda x, seed=0: asked.append(len(x)) or x[:, :2])
    at = open_page()
    assert asked == []
    at.radio(key="map_method").set_value("UMAP (computed on request, then cached)").run()
    assert errors(at) == "" and figure(at)["layout"]["xaxis"]["title"]["text"] == "UMAP 1"
    assert asked == [48]  # 16 anchors, positives and negatives
    at.sidebar.slider(key="margin").set_value(0.3).run()
    assert asked == [48]  # cached: a new margin changes the lines, not the projection


def test_missing_columns_upload_is_an_error(tiny_models):
    at = open_page()
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()
    at.sidebar.get("file_uploader")[0].set_value(("x.jsonl", b'{"query": "a", "doc": "b"}\n', "text/plain"))
    assert "no 'anchor' column" in errors(at.run())
