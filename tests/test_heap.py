"""The fixed glibc mmap threshold: set where the C library is glibc, skipped elsewhere."""

from __future__ import annotations

import ctypes.util
import platform

from core.method.heap import bound_heap_growth


def test_the_heap_bound_is_set_on_glibc(monkeypatch):
    """glibc's mallopt accepts the fixed mmap threshold (1 = done); elsewhere the bound is skipped."""
    if platform.libc_ver()[0] == "glibc":
        assert bound_heap_growth() is True
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert bound_heap_growth() is False
