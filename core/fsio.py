"""Two file habits every writer shares: an exclusive lock across processes, and atomic writes.

``locked(path)`` holds an exclusive ``flock`` on ``path`` (a lock file, created if missing, or a
folder) for the ``with`` block: two tabs clicking Start, a training job and the app filling one
guide cache, two processes writing one Markdown section. ``write_text_atomic`` /
``write_json_atomic`` write a temporary file in the target's folder and ``os.replace`` it onto the
target, so a reader sees the old file or the new one, never half of one (with ``fsync`` also after
a power cut). The temporary name is unique per writer, so two writers never share one.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a lock file, made if missing, or an existing folder)
    until the block ends; blocks while another process or open file holds it.

    In a folder that cannot be written (a read-only workspace) the lock file is opened read-only,
    or, where it does not exist, not taken at all: nothing can change there, and a write the caller
    then needs fails on its own."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield
            return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``text`` in one step (temporary file beside it, then ``os.replace``);
    ``fsync`` flushes the data to disk first."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False, encoding="utf-8")
    try:
        with handle:
            handle.write(text)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)  # mkstemp's 0600 would hide the file from other users of the workspace
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data, *, indent: int | None = 2, fsync: bool = False, **dumps) -> None:
    """``data`` as JSON (``json.dumps`` options in ``dumps``), written atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=indent, **dumps), fsync=fsync)
