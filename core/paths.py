"""Paths a user names: where an output may go (checked before any work), and which server-side
paths the app may open when it is reachable from other machines.

Outputs: a command that writes a file or a run folder checks the path first, so a path that can
never be written (a folder where a file is wanted, a file where a folder is wanted, a parent that
is a file) is one clear line at once, not a traceback after minutes of work.

Served paths: the app is a lab for one user on localhost, and its Train, Results and sidebar fields
accept any server-side path for data and models. When the server listens on a non-local address,
paths outside the workspace and the user's home are refused (README, Security).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import GistlabError
from core.workspace import workspace

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def _writable_parent(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GistlabError(f"{flag} {path}: {parent} is a file, not a folder: choose another path.")
            return


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a file to (over)write: not a folder, under a folder (or one that can be made)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise GistlabError(f"{flag} {path} is a folder: give a file name, e.g. {path / 'out.csv'}.")
    _writable_parent(path, flag)
    return path


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder to write into: not an existing file, nor under one."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise GistlabError(f"{flag} {path} is a file, not a folder: choose a folder (or a new name).")
    _writable_parent(path, flag)
    return path


def is_local(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only ('' = every interface)."""
    return (address or "").strip().strip("[]") in LOCAL_ADDRESSES


def check_served_path(spec: str, address: str | None) -> None:
    """Refuse a server-side path outside the workspace and the home folder when the app listens on a
    non-local ``address``. Specs that are not existing paths (``bundled``, Hub ids) pass."""
    if is_local(address) or not spec:
        return
    path = Path(spec).expanduser()
    if not path.exists():
        return
    resolved = path.resolve()
    allowed = [workspace().resolve(), Path.home().resolve()]
    if not any(resolved == root or root in resolved.parents for root in allowed):
        raise GistlabError(
            f"{spec} is outside the workspace and your home folder, and this server is reachable from "
            f"other machines ({address or 'every interface'}): move the file under {Path.home()}, or run "
            "the app on 127.0.0.1."
        )
