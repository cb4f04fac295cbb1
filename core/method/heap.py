"""A fixed glibc mmap threshold, so that big buffers allocated one after another do not grow the heap.

Used by the processes that allocate large buffers in a loop: the cached GIST loss (activations per
mini-batch) and the audit's search (score blocks per row chunk).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 4 << 20


def bound_heap_growth() -> bool:
    """Serve every allocation of 4 MiB or more by its own mmap, returned to the system when freed.

    glibc raises its mmap threshold each time a large buffer is freed, so after the first one, buffers
    of that size come from the heap; when they differ in size the freed holes rarely fit the next
    request, small allocations in between pin the heap's top, and the heap grows with every buffer:
    +300 MiB peak RSS over one cached-loss step at batch 1024, mini-batch 32 (a fixed threshold
    costs +6% step time there), and +4.7 GB over an exact audit of 100k rows, one 64 MB score
    block per 167 rows (docs/PERFORMANCE.md). Process-wide; returns False where the C library is
    not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
