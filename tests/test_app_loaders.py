"""app.loaders: a page's models, a run's batch and a guide cache load under a bar that counts them, once."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from test_app_cache import Recorder


def page(guide: str, student: str) -> None:
    import streamlit as st

    from app import loaders

    loaders.ready_models(guide, student)
    st.write("ready")


def test_models_load_under_a_counted_bar_once(tiny_model_dir, monkeypatch):
    from app import loaders

    texts = []
    monkeypatch.setattr(loaders, "_LOADED", set())  # other AppTests in this process may have loaded the same spec
    monkeypatch.setattr(loaders.st, "progress", lambda value, text=None: Recorder(texts, text))
    at = AppTest.from_function(page, args=(str(tiny_model_dir), str(tiny_model_dir)), default_timeout=120).run()
    assert not at.exception and at.markdown[0].value == "ready"
    assert texts == [f"Loading model 1 of 2: the guide, {tiny_model_dir}…",
                     f"Loading model 2 of 2: the student, {tiny_model_dir}…"]
    texts.clear()
    at.run()
    assert texts == []  # loaded: no bar on the next run


def run_page(run: str) -> None:
    import streamlit as st

    from app import loaders

    batch, config = loaders.run_batch(run, 1)
    st.write(f"rows {batch.rows}, guide {config.guide}")


def test_a_runs_batch_opens_under_counted_stages_once(tmp_path, monkeypatch):
    import pandas as pd

    from app import loaders
    from core.training.train import TrainConfig

    data, run = tmp_path / "pairs.csv", tmp_path / "run"
    pd.DataFrame({"anchor": ["a", "b", "c"], "positive": ["x", "y", "z"]}).to_csv(data, index=False)
    run.mkdir()
    TrainConfig(data=str(data), student="s", guide="g", batch_size=2, out=str(run)).save(run / "config.json")
    (run / "batches.jsonl").write_text('{"step": 1, "rows": [2, 0]}\n')
    texts = []
    monkeypatch.setattr(loaders.st, "progress", lambda value, text=None: Recorder(texts, text))
    at = AppTest.from_function(run_page, args=(str(run),), default_timeout=60).run()
    assert not at.exception and at.markdown[0].value == "rows [2, 0], guide g"
    assert texts == ["Opening the run's batch, step 1 of 3: reading its config…",
                     "Opening the run's batch, step 2 of 3: loading its data…",
                     "Opening the run's batch, step 3 of 3: finding the batch's rows…"]
    texts.clear()
    at.run()
    assert texts == [] and at.markdown[0].value == "rows [2, 0], guide g"  # kept: read once


def test_a_large_guide_cache_counts_the_rows_it_checks(tiny_model_dir, monkeypatch):
    """Opening a guide cache of more than one chunk of rows updates the loading bar with the rows checked."""
    import core.guides.guide_cache
    from app import cache, loaders
    from core.guides.guide_cache import GuideCache

    GuideCache(loaders.model(str(tiny_model_dir)), "tiny").fill([f"text {i}" for i in range(3)])
    rows = len(GuideCache(loaders.model(str(tiny_model_dir)), "tiny"))
    texts = []
    monkeypatch.setattr(loaders, "_LOADED", set())
    monkeypatch.setattr(loaders, "_GUIDE_CACHES", cache.Kept(4))
    monkeypatch.setattr(core.guides.guide_cache, "VERIFY_CHUNK", rows - 1)  # two chunks: the last holds one row
    monkeypatch.setattr(loaders.st, "progress", lambda value, text=None: Recorder(texts, text))
    at = AppTest.from_function(page, args=(str(tiny_model_dir), None), default_timeout=120).run()
    assert not at.exception
    loading = f"Loading model 1 of 1: the guide, {tiny_model_dir}…"
    assert texts == [loading, f"{loading} checking its stored embeddings: {rows - 1:,} of {rows:,} rows"]
