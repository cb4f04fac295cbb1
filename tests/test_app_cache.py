"""app.cache: a bar drawn only when work reports, counted through one callback; results kept once per key."""

from __future__ import annotations

import pytest


class Recorder:
    """Stands in for st.progress and its updates, keeping the texts shown (without the time left a slow
    machine may add: test_a_long_counted_wait_says_how_long_it_has_left checks that)."""

    def __init__(self, texts: list, text: str | None, values: list | None = None, value: float = 0.0) -> None:
        self.texts, self.values = texts, values
        self.progress(value, text)

    def progress(self, value: float, text: str | None = None) -> None:
        self.texts.append(text.split(" · about ")[0] if text else text)
        if self.values is not None:
            self.values.append(value)

    def empty(self) -> None:
        pass


def test_counting_places_its_work_on_the_bar_and_skips_the_end_and_blink_sized_totals(monkeypatch):
    from app import cache

    texts, values = [], []
    monkeypatch.setattr(cache.st, "progress", lambda value, text=None: Recorder(texts, text, values, value))
    bar = cache.Bar()
    second = bar.counting(lambda done, total: f"{done} of {total}", start=0.5, share=0.5, more_than=2)
    second(1, 2)  # a total of 2 is done in a blink: nothing drawn
    assert texts == []
    for done in range(5):
        second(done, 4)
    assert texts == ["0 of 4", "1 of 4", "2 of 4", "3 of 4"]  # done == total draws nothing
    assert values == [0.5, 0.625, 0.75, 0.875]


def test_a_long_counted_wait_says_how_long_it_has_left(monkeypatch):
    from app import cache

    texts, now = [], [100.0]
    shown = type("Shown", (), {"progress": lambda self, value, text=None: texts.append(text), "empty": lambda self: 0})
    monkeypatch.setattr(cache.st, "progress", lambda value, text=None: texts.append(text) or shown())
    monkeypatch.setattr(cache, "clock", lambda: now[0])
    report = cache.Bar().counting(lambda done, total: f"text {done + 1} of {total}")
    report(0, 10)  # no rate yet
    now[0] += 1
    report(1, 10)  # 1 s a text: 10 s in all, 9 s left
    now[0] += 1
    report(2, 10)
    quick = cache.Bar().counting(lambda done, total: f"quick {done}")
    quick(0, 10)
    now[0] += 0.5
    quick(5, 10)  # about 1 s in all: no time left shown
    assert texts == ["text 1 of 10", "text 2 of 10 · about 9 s left", "text 3 of 10 · about 8 s left", "quick 0",
                     "quick 5"]
    assert cache.time_left(130) == "about 2 min left"


def test_kept_computes_once_per_key_under_a_bar_removed_after_keeping(monkeypatch):
    from app import cache

    texts = []
    monkeypatch.setattr(cache.st, "progress", lambda value, text=None: Recorder(texts, text))
    kept, calls = cache.Kept(2), []

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
    from app import cache

    kept = cache.Kept(2)

    def fail(bar):
        raise OSError("disk full")

    for _ in range(3):
        with pytest.raises(OSError):
            kept.get("k", fail)
    assert kept._computing == {} and "k" not in kept._items  # no lock or result left per failed key
    assert kept.get("k", lambda bar: 7) == 7


