"""Plotly figures drawn once in the browser whose layout images change in place on a rerun.

``st.plotly_chart`` names its element by a hash of the whole figure, so any change (a new mask at
another margin) unmounts the chart and draws it again with ``Plotly.newPlot``: ~0.1 s per map at
batch 128 on two cores, before the rest of the page. This component keeps one frame of figures
mounted under a fixed key. Each figure travels without its layout images' sources (the base,
redrawn only when it changes: another batch or block) and with those sources apart; the same base
only swaps the sources (``Plotly.relayout``, ~1 ms). plotly.js is the copy the ``plotly`` package
ships, served from the workspace with the component: nothing is fetched online.

A figure with a slider of its own (``layout.sliders``) is kept in step: each rerun sets the slider to
``active``; dragging one figure's slider moves every figure's slider and step with it, and its release
is the component's value (``{"value": the step's value, "at": a stamp}``, new at every release).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import plotly
import plotly.graph_objects as go
import streamlit.components.v1 as components

from core.workspace import subdir

PAGE = Path(__file__).parent / "components" / "live_figures.html"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def served_folder() -> Path:
    """The component's page beside plotly.min.js, in a workspace folder named by both versions (made once).

    Streamlit serves a component only from files inside its folder (no links out), hence the copy.
    """
    stamp = hashlib.sha1(PAGE.read_bytes() + plotly.__version__.encode()).hexdigest()[:12]
    folder = subdir("components") / f"live_figures-{stamp}"
    if not (folder / "index.html").exists():
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{folder.name}."))
        shutil.copyfile(PLOTLY_JS, staging / "plotly.min.js")
        shutil.copyfile(PAGE, staging / "index.html")
        try:
            staging.replace(folder)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return folder


_component = components.declare_component("live_figures", path=str(served_folder()))


def figure_base(figure: go.Figure) -> str:
    """The figure's JSON without its layout images' sources: what :func:`live_figures` redraws only when it changes."""
    spec = json.loads(figure.to_json())  # numpy arrays as plotly's base64 typed arrays
    for image in spec["layout"].get("images", []):
        image.pop("source", None)
    return json.dumps(spec, separators=(",", ":"))


def live_figures(bases: Sequence[str], images: Sequence[Sequence[str]], key: str, columns: int = 1,
                 active: int = 0) -> dict | None:
    """Draw figures (:func:`figure_base` of each), ``columns`` side by side, with ``images[k]`` the sources
    of figure k's layout images and their sliders at step ``active``; a rerun with the same bases (and
    columns) only swaps the sources and moves the sliders. Returns the step last released on a figure's
    slider, or None."""
    digest = hashlib.sha1("\0".join([*bases, str(columns)]).encode()).hexdigest()
    return _component(figures=list(bases), images=[list(sources) for sources in images], base=digest,
                      columns=columns, active=active, key=key, default=None)
