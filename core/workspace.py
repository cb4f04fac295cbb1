"""The workspace: one folder that holds derived models, guide caches, runs and evaluation results.

Set it with ``GISTLAB_HOME``; the default is ``~/.cache/gistlab``. Every other module asks here
for its sub-folder, so moving the workspace is one environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GISTLAB_HOME"


def workspace() -> Path:
    """The workspace root, created on first use."""
    root = Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "gistlab").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def subdir(name: str) -> Path:
    """A named sub-folder of the workspace (``models``, ``guide_cache``, ``runs``, ``results``)."""
    path = workspace() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
