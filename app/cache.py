"""The app's one progress bar and the store of slow results computed under it.

Work that can take seconds (opening a guide cache, a run's batch, a UMAP fit, a student's
embeddings, a what-if sweep, an audit's tables) is kept in :class:`Kept` stores rather than
``st.cache_*`` functions, so it runs under a :class:`Bar` that counts it: inside an ``st.cache_*``
function it could only show a spinner. Every count reaches the bar through :meth:`Bar.counting`,
the ``progress(done, total)`` callback the engine's staged work already takes, which adds the time
left (from the rate so far) to any counted wait that looks longer than :data:`ETA_AFTER_S`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")
ETA_AFTER_S = 10  # a counted wait expected to take longer says how long it has left
clock = time.monotonic  # tests replace it


def time_left(seconds: float) -> str:
    """``42.0`` -> ``about 42 s left``, ``130`` -> ``about 2 min left``."""
    return f"about {seconds:.0f} s left" if seconds < 90 else f"about {seconds / 60:.0f} min left"


class Bar:
    """A progress bar drawn on its first update (work that never reports draws nothing)."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, fraction: float, text: str) -> None:
        if self._bar is None:
            self._bar = st.progress(fraction, text=text)
        else:
            self._bar.progress(fraction, text=text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.empty()

    def counting(self, describe: Callable[[int, int], str], *, start: float = 0.0, share: float = 1.0,
                 more_than: int = 0) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for the engine: ``describe(done, total)`` on this bar
        while work remains (the final call, done == total, draws nothing: the bar moves on or closes).

        ``start`` and ``share`` place this work on the bar when it is one stage of a longer wait (the
        second of two models: start 0.5, share 0.5); totals of at most ``more_than`` draw nothing
        (work done in a blink). Once some work is done, a wait whose elapsed plus estimated remaining
        time passes :data:`ETA_AFTER_S` gets " · about N s left" (the rate so far, counted from the first call).
        """
        began: list[float] = []

        def report(done: int, total: int) -> None:
            now = clock()
            began[:] = began or [now]
            if done < total and total > more_than:
                text = describe(done, total)
                elapsed = now - began[0]
                if done > 0 and elapsed > 0:
                    left = elapsed / done * (total - done)
                    if elapsed + left >= ETA_AFTER_S:
                        text = f"{text} · {time_left(left)}"
                self(start + share * done / total, text)

        return report


class Kept:
    """Results this server computed under a :class:`Bar`, at most ``limit`` (least recently used dropped).

    A hit draws nothing. The bar is removed only once the result is kept: a rerun that interrupts
    the page at that last update loses no work. One lock per key: two sessions asking for one key
    compute it once, and other keys do not wait.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict = OrderedDict()
        self._computing: dict = {}
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[Bar], T]) -> T:
        """The result kept for ``key``, else ``compute(bar)``'s, kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            bar = Bar()
            try:
                value = compute(bar)
                with self._lock:
                    self._items[key] = value
                    while len(self._items) > self.limit:
                        self._items.popitem(last=False)
            finally:  # a failed computation leaves no lock behind (one per key asked would pile up)
                with self._lock:
                    self._computing.pop(key, None)
            bar.close()
            return value
