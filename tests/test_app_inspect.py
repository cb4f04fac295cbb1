"""Inspect page: draws a batch with heatmaps and tables, re-masks without encoding, shows bad input as errors."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import core.inspect

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
GOOD_CSV = "anchor,positive\n" + "".join(f"text number {i},meaning {i}\n" for i in range(8))


@pytest.fixture
def tiny_models(tiny_model_dir, monkeypatch):
    """Point the pages' default guide and student at the tiny random BERT."""
    monkeypatch.setenv("GISTLAB_APP_GUIDE", str(tiny_model_dir))
    monkeypatch.setenv("GISTLAB_APP_STUDENT", str(tiny_model_dir))


@pytest.fixture
def encodes(monkeypatch):
    """Count how often the page embeds a batch (core.inspect.inspect_batch is the only way in)."""
    calls = []
    real = core.inspect.inspect_batch

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(core.inspect, "inspect_batch", counted)
    return calls


def open_page(page: str = "views/inspect.py") -> AppTest:
    """The app opened on ``page`` (the other analysis pages' tests use this too)."""
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    return at.switch_page(page).run()


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()
    at.sidebar.get("file_uploader")[0].set_value((name, content, "text/plain"))
    return at.run()


def errors(at: AppTest) -> str:
    """The page's st.error lines, after checking no exception reached it."""
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(e.value for e in at.error)


def pair_count(at: AppTest) -> int:
    """N from the page's "Masked pairs (N)" heading."""
    heading = next(h.value for h in at.subheader if h.value.startswith("Masked pairs"))
    return int(heading.split("(")[1].rstrip(")"))


def test_bundled_batch_heatmaps_tables_and_remask(tiny_models, tiny_model_dir, encodes):
    tiny = str(tiny_model_dir)
    at = open_page()
    assert errors(at) == ""
    assert len(encodes) == 1
    assert at.metric[0].label == "Masked, all blocks"
    charts = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert charts == [f"Guide ({tiny}): a-p", f"Student ({tiny}): a-p"]
    at.radio(key="heatmap_block").set_value("a-n").run()
    student_map = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert student_map["layout"]["title"]["text"].endswith(": a-n")
    tint = student_map["data"][1]["z"]  # the red layer: one non-NaN cell per masked a-n candidate
    tinted = np.frombuffer(base64.b64decode(tint["bdata"]), dtype=tint["dtype"])
    assert np.isfinite(tinted).sum() == at.dataframe[1].value["a-n"].sum() > 0
    before = pair_count(at)
    assert len(at.dataframe[0].value) == min(before, 2000)  # at most 2000 rows go to the browser
    assert at.dataframe[1].value["row"].tolist() == list(range(32))
    at.sidebar.slider(key="margin").set_value(0.5).run()
    assert errors(at) == "" and len(encodes) == 1  # the margin re-masks, it does not re-encode
    assert pair_count(at) > before and (at.dataframe[0].value["margin"] == 0.5).all()
    at.sidebar.number_input(key="batch_seed").set_value(1).run()
    assert len(encodes) == 2  # a new batch is embedded once


def test_filters_and_csv(tiny_models):
    at = open_page()
    at.sidebar.slider(key="margin").set_value(0.5).run()
    at.multiselect(key="pairs_blocks").set_value(["a-n"]).run()
    shown = at.dataframe[0].value
    assert len(shown) > 0 and set(shown["block"]) == {"a-n"}
    word = shown["candidate"].iloc[0].split()[0]
    at.text_input(key="pairs_text").set_value(word.upper()).run()
    found = at.dataframe[0].value
    assert 0 < len(found) <= len(shown)
    assert (found["text"].str.contains(word, case=False) | found["candidate"].str.contains(word, case=False)).all()
    at.text_input(key="pairs_text").set_value("").run()
    at.checkbox(key="pairs_prefers").check().run()
    preferred = at.dataframe[0].value
    assert len(preferred) and preferred["student_prefers"].all()
    assert at.get("download_button")  # the CSV of the filtered pairs


def test_uploaded_file_without_student(tiny_models):
    at = open_page()
    at.sidebar.text_input(key="student_spec").set_value("").run()
    at = upload(at, "pairs.csv", GOOD_CSV.encode())
    at.sidebar.number_input(key="batch_size").set_value(8).run()
    assert errors(at) == ""
    assert len(at.get("plotly_chart")) == 1  # the guide's map only
    assert at.radio(key="heatmap_block").options == ["a-p: anchor vs positives", "a-a: anchor vs anchors",
                                                     "p-p: positive vs positives"]
    assert "student" in at.info[0].value


@pytest.mark.parametrize("name,content,expected", [
    ("bad.csv", b"anchor,positive\n\xff\xfe,x\n", "not UTF-8"),
    ("qa.csv", b"question,answer\nq,a\nr,b\n", "no 'anchor' column"),
    ("small.csv", b"anchor,positive\na,b\nc,d\n", "fewer than the batch size"),
    ("empty.jsonl", b"", "empty"),
    ("broken.jsonl", b'{"anchor": "a", "positive": "b"}\n{"anchor": \n', "not valid JSON"),
])
def test_bad_uploads_are_errors(tiny_models, name, content, expected):
    at = upload(open_page(), name, content)
    assert expected in errors(at)


def test_oversized_upload_is_an_error(tiny_models):
    at = upload(open_page(), "huge.csv", b"anchor,positive\n" + b"x" * (50 * 2**20))
    assert "over the 50 MB limit" in errors(at)


def test_unknown_model_offline_is_an_error(tiny_models):
    at = open_page()
    at.sidebar.text_input(key="guide_spec").set_value("nobody/no-such-model").run()
    assert "nobody/no-such-model" in errors(at)


def test_run_step_without_runs_says_what_to_do(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path))
    at = open_page()
    at.sidebar.radio(key="batch_origin").set_value("A training run's step").run()
    assert errors(at) == "" and "No training runs yet" in at.info[0].value


def test_open_a_runs_step(tiny_models, tiny_model_dir, tmp_path, monkeypatch):
    from core.train import TrainConfig, run_training

    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path))
    data = tmp_path / "pairs.csv"
    data.write_text(GOOD_CSV)
    run_training(TrainConfig(data=str(data), student=str(tiny_model_dir), guide=str(tiny_model_dir), steps=2,
                             batch_size=4, margin=0.1, out=str(tmp_path / "runs" / "demo")))
    at = open_page()
    at.sidebar.radio(key="batch_origin").set_value("A training run's step").run()
    at.sidebar.number_input(key="inspect_step").set_value(2).run()
    assert errors(at) == ""
    assert at.sidebar.slider(key="margin").value == 0.1  # the run's own settings
    assert "runs/demo/model" in at.sidebar.caption[0].value  # its trained student
    assert len(at.dataframe[1].value) == 4
    at.sidebar.number_input(key="inspect_step").set_value(3).run()
    assert "has no step 3" in errors(at)
    shutil.rmtree(tmp_path / "runs" / "demo")  # deleted underneath the page
    at.run()
    assert errors(at) == "" and "No training runs yet" in at.info[0].value
