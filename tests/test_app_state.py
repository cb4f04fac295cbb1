"""app.state: a page's models load under a bar that counts them, once per server process."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest


def page(guide: str, student: str) -> None:
    import streamlit as st

    from app import state

    state.ready_models(guide, student)
    st.write("ready")


def test_models_load_under_a_counted_bar_once(tiny_model_dir, monkeypatch):
    from app import state

    texts = []
    monkeypatch.setattr(state, "_LOADED", set())  # other AppTests in this process may have loaded the same spec
    monkeypatch.setattr(state.st, "progress", lambda value, text=None: Recorder(texts, text))
    at = AppTest.from_function(page, args=(str(tiny_model_dir), str(tiny_model_dir)), default_timeout=120).run()
    assert not at.exception and at.markdown[0].value == "ready"
    assert texts == [None, f"Loading model 1 of 2: the guide, {tiny_model_dir}…",
                     f"Loading model 2 of 2: the student, {tiny_model_dir}…"]
    texts.clear()
    at.run()
    assert texts == []  # loaded: no bar on the next run


class Recorder:
    """Stands in for st.progress and its updates, keeping the texts shown."""

    def __init__(self, texts: list, text: str | None) -> None:
        self.texts = texts
        texts.append(text)

    def progress(self, value: float, text: str | None = None) -> None:
        self.texts.append(text)

    def empty(self) -> None:
        pass


def test_kept_computes_once_per_key_under_a_bar_removed_after_keeping(monkeypatch):
    from app import state

    texts = []
    monkeypatch.setattr(state.st, "progress", lambda value, text=None: Recorder(texts, text))
    kept, calls = state.Kept(2), []

    def compute(key):
        def run(bar):
            calls.append(key)
            bar(0.0, f"computing {key}")
            return key * 10
        return run

    assert kept.get(1, compute(1)) == 10 and texts == ["computing 1"]
    assert kept.get(1, compute(1)) == 10 and calls == [1] and texts == ["computing 1"]  # a hit draws nothing
    assert kept.get(2, lambda bar: 20) == 20 and texts == ["computing 1"]  # no report: no bar
    kept.get(1, compute(1))  # 1 is now the most recently used: a third key drops 2
    kept.get(3, compute(3))
    assert kept.get(1, compute(1)) == 10 and calls == [1, 3]
    assert kept.get(2, compute(2)) == 20 and calls == [1, 3, 2]


def test_kept_keeps_nothing_from_a_failed_computation_and_retries_it():
    from app import state

    kept = state.Kept(2)

    def fail(bar):
        raise OSError("disk full")

    for _ in range(3):
        with pytest.raises(OSError):
            kept.get("k", fail)
    assert kept._computing == {} and "k" not in kept._items  # no lock or result left per failed key
    assert kept.get("k", lambda bar: 7) == 7


def run_page(run: str) -> None:
    import streamlit as st

    from app import state

    batch, config = state.run_batch(run, 1)
    st.write(f"rows {batch.rows}, guide {config.guide}")


def test_a_runs_batch_opens_under_counted_stages_once(tmp_path, monkeypatch):
    import pandas as pd

    from app import state
    from core.training.train import TrainConfig

    data, run = tmp_path / "pairs.csv", tmp_path / "run"
    pd.DataFrame({"anchor": ["a", "b", "c"], "positive": ["x", "y", "z"]}).to_csv(data, index=False)
    run.mkdir()
    TrainConfig(data=str(data), student="s", guide="g", batch_size=2, out=str(run)).save(run / "config.json")
    (run / "batches.jsonl").write_text('{"step": 1, "rows": [2, 0]}\n')
    texts = []
    monkeypatch.setattr(state.st, "progress", lambda value, text=None: Recorder(texts, text))
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
    from app import state
    from core.guides.guide_cache import GuideCache

    GuideCache(state.model(str(tiny_model_dir)), "tiny").fill([f"text {i}" for i in range(3)])
    rows = len(GuideCache(state.model(str(tiny_model_dir)), "tiny"))
    texts = []
    monkeypatch.setattr(state, "_LOADED", set())
    monkeypatch.setattr(state, "_GUIDE_CACHES", state.Kept(4))
    monkeypatch.setattr(core.guides.guide_cache, "VERIFY_CHUNK", rows - 1)  # two chunks: the last holds one row
    monkeypatch.setattr(state.st, "progress", lambda value, text=None: Recorder(texts, text))
    at = AppTest.from_function(page, args=(str(tiny_model_dir), None), default_timeout=120).run()
    assert not at.exception
    loading = f"Loading model 1 of 1: the guide, {tiny_model_dir}…"
    assert texts == [None, loading, f"{loading} checking its stored embeddings: {rows - 1:,} of {rows:,} rows",
                     f"{loading} checking its stored embeddings: {rows:,} of {rows:,} rows"]
