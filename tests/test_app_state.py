"""app.state: a page's models load under a bar that counts them, once per server process."""

from __future__ import annotations

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
