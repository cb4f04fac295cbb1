"""Embedding map page: PCA on first paint without umap, lines for masks, guide/student switch, errors."""

from __future__ import annotations

import base64
import json
import sys

import numpy as np
from streamlit.testing.v1 import AppTest
from test_app_inspect import errors, tiny_models  # noqa: F401 (a fixture)
from test_app_inspect import open_page as open_app
from test_projection import fake_umap  # noqa: F401 (a fixture)


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


def point_traces(at: AppTest) -> list[dict]:
    """The map's point traces (each point carries its point id as customdata)."""
    return [t for t in figure(at)["data"] if "customdata" in t and t.get("mode") == "markers"
            and not t["name"].startswith("found")]


def xs_by_point(at: AppTest) -> dict[int, float]:
    return {int(i): x for t in point_traces(at) for i, x in zip(values(t["customdata"]), values(t["x"]))}


def test_pca_map_by_task_top_lines_and_hover(tiny_models):
    umap_loaded = "umap" in sys.modules
    at = open_page()
    assert errors(at) == ""
    assert umap_loaded or "umap" not in sys.modules  # the first paint never imports umap
    traces = point_traces(at)
    assert len(traces) > 1 and figure(at)["layout"]["legend"]["title"]["text"] == "task"  # coloured by task
    assert sorted(xs_by_point(at)) == list(range(48))  # 16 anchors, positives and negatives, once each
    assert {s for t in traces for s in t["marker"]["symbol"]} == {"circle", "diamond", "x"}  # role as shape
    assert "row" in traces[0]["hovertext"][0]
    assert figure(at)["layout"]["xaxis"]["title"]["text"] == "PCA 1"
    lines = figure(at)["data"][0]
    assert lines["name"].startswith("top 25 of ") and len(values(lines["x"])) == 3 * 25  # 25 segments, gaps
    total = int(lines["name"].split(" of ")[1].split()[0])
    at.sidebar.slider(key="margin").set_value(0.5).run()
    assert int(figure(at)["data"][0]["name"].split(" of ")[1].split()[0]) > total  # a larger margin masks more
    at.number_input(key="map_top_k").set_value(0).run()
    assert all(t.get("mode") == "markers" for t in figure(at)["data"])  # no lines at all
    assert "Click a point" in at.info[0].value


def test_search_lists_the_texts_neighbours_in_both_spaces(tiny_models):
    at = open_page()
    texts = [t for trace in point_traces(at) for t in trace["hovertext"]]
    word = texts[0].split("<br>")[1].split()[0]
    at.text_input(key="map_search").set_value(word.upper()).run()
    assert errors(at) == ""
    chosen = [t for t in figure(at)["data"] if t["name"].startswith("found")]
    assert chosen and len(values(chosen[0]["x"])) >= 1
    guide, student = at.dataframe[0].value, at.dataframe[1].value  # side by side: guide, then student
    assert len(guide) == len(student) == 10 and list(guide.columns) == ["rank", "cosine", "guide", "role", "row", "text"]
    assert guide.cosine.is_monotonic_decreasing and set(guide.guide) <= {"kept", "its positive"} | {
        g for g in guide.guide if g.startswith("masked (")}
    assert "Nearest neighbours in the original embedding space" in [h.value for h in at.subheader]
    at.text_input(key="map_search").set_value("no text has this").run()
    assert "0 text(s) contain" in at.caption[-1].value and "Click a point" in at.info[0].value


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
    before = xs_by_point(at)
    at.radio(key="map_source").set_value("student").run()
    assert errors(at) == "" and "student embeddings" in figure(at)["layout"]["title"]["text"]
    assert xs_by_point(at) != before  # the points moved: the student's own vectors
    at.sidebar.text_input(key="student_spec").set_value("").run()
    assert errors(at) == "" and at.radio(key="map_source").disabled
    assert len(before) == 48


def test_umap_on_request_counts_its_steps_then_is_kept(tiny_models, fake_umap, monkeypatch):
    """UMAP only when chosen, under a bar that counts its steps (loading it, then the fit), once per server;
    a kept map draws no bar (the real UMAP is tested in test_projection)."""
    from test_app_cache import Recorder

    from app import cache, loaders

    texts = []
    monkeypatch.setattr(loaders, "_PROJECTIONS", cache.Kept(16))  # other tests may have kept these maps
    at = open_page()
    assert fake_umap.fits == []
    monkeypatch.setattr(loaders.st, "progress", lambda value, text=None: Recorder(texts, text))
    at.radio(key="map_method").set_value("UMAP (computed on request, then cached)").run()
    assert errors(at) == "" and figure(at)["layout"]["xaxis"]["title"]["text"] == "UMAP 1"
    assert texts == ["UMAP, step 1 of 2: loading it (once per server, ~20 s)…", "UMAP, step 2 of 2: fitting 48 points…"]
    assert [n for n, _ in fake_umap.fits] == [64, 48]  # the warm-up, then 16 anchors, positives and negatives
    texts.clear()
    at.sidebar.slider(key="margin").set_value(0.3).run()
    at.radio(key="map_method").set_value("PCA").run()
    at.radio(key="map_method").set_value("UMAP (computed on request, then cached)").run()
    assert texts == [] and len(fake_umap.fits) == 2  # kept: a new margin or a switch back fits nothing
    at.sidebar.number_input(key="batch_seed").set_value(1).run()
    assert errors(at) == "" and texts == ["UMAP: fitting 48 points…"]  # loaded once per server
    assert len(fake_umap.fits) == 3


def test_upload_with_other_column_names_asks_for_the_mapping(tiny_models):
    at = open_page()
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()
    at.sidebar.get("file_uploader")[0].set_value(("x.jsonl", b'{"query": "a", "doc": "b"}\n{"query": "c", "doc": "d"}\n',
                                                  "text/plain"))
    at.run()
    assert errors(at) == "" and "pick which column is which" in at.sidebar.warning[0].value
    at.sidebar.selectbox(key="map_anchor").set_value("query").run()
    at.sidebar.selectbox(key="map_positive").set_value("doc").run()
    assert errors(at) == "" and sorted(xs_by_point(at)) == [0, 1, 2, 3]  # 2 rows: anchors and positives
