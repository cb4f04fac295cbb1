"""The lab's pages (one module each, run by ``st.navigation``) and the few drawing helpers they share.

The page modules are scripts and are never imported; this package init is imported by them for the
charts that Train, Results and Demo all draw, so one run's curves look the same on every page, and
for :func:`errors_shown`, which turns every ``GistlabError`` into one ``st.error`` line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from app.palette import ARM_COLORS, arm_of, run_colors
from core.errors import GistlabError
from core.training.results import labelled

SHORT_SERIES = 60  # a run with fewer points per curve also gets markers, so step 1 draws a dot
OVERLAP_NOTE = (
    "Tasks marked * overlap data GIST models were trained on (MEDI and MTEB classification "
    "training sets): a gain there may be memory rather than skill."
)


def curves_figure(metrics: dict[str, pd.DataFrame], column: str, title: str,
                  colors: dict[str, str] | None = None, kinds: dict[str, str] | None = None) -> go.Figure:
    """One line per run of ``column`` against ``step`` (runs named by the dict keys).

    ``colors`` maps a run name to its colour (default: names that are arms, as on the Demo page).
    ``kinds`` maps a run to its loss: runs of different losses get a panel each, with its own y axis
    (a GIST loss and an MNRL loss are not on one scale). A short curve gets markers too: a line
    through one point draws nothing.
    """
    frames = [m.assign(run=name, kind=f"{(kinds or {}).get(name) or '?'} loss")
              for name, m in metrics.items() if column in m and len(m)]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["step", column, "run", "kind"])
    split = data["kind"].nunique() > 1
    fig = px.line(data, x="step", y=column, color="run", title=title, color_discrete_map=colors or ARM_COLORS,
                  facet_col="kind" if split else None, custom_data=["run"],
                  category_orders={"run": list(metrics), "kind": sorted(data["kind"].unique())},
                  labels={column: title.lower(), "step": "training step", "kind": ""})
    fig.update_traces(hovertemplate=f"%{{customdata[0]}}<br>step %{{x}}<br>{title.lower()} %{{y:.4f}}<extra></extra>")
    fig.for_each_trace(lambda trace: trace.update(mode="lines+markers") if len(trace.x) < SHORT_SERIES else None)
    if split:  # each loss its own axis and title
        fig.update_yaxes(matches=None, showticklabels=True)
        fig.for_each_annotation(lambda a: a.update(text=a.text.lstrip("=")))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="")
    return fig


def label_colors(table: pd.DataFrame) -> dict[str, str]:
    """A colour per label: its arm's hue (app.palette; base models grey), each further run of an arm lighter."""
    labels = (table if "label" in table else labelled(table)).drop_duplicates("label")
    loss = labels["loss"] if "loss" in labels else pd.Series(None, index=labels.index)
    guide = labels["guide"] if "guide" in labels else pd.Series(None, index=labels.index)
    arms = [arm_of(None if pd.isna(l) else l, None if pd.isna(g) else g) for l, g in zip(loss, guide)]
    return run_colors(dict(zip(labels["label"], arms)))


def run_labels(table: pd.DataFrame) -> pd.DataFrame:
    """core.training.results.labelled's table with each run named as the user named it (Train page's
    Rename; its folder when unnamed, or when two runs share the name)."""
    from core.training.runs import run_name
    from core.workspace import subdir

    table = labelled(table)
    named = {run: run_name(subdir("runs") / run) or run for run in table["run"].dropna().unique()}
    shared = {name for name in named.values() if list(named.values()).count(name) > 1}
    named = {run: run if name in shared else name for run, name in named.items()}
    return table.assign(label=table["run"].map(named).fillna(table["label"]))


def page_link(file: str, label: str, icon: str, **params: object) -> None:
    """A link to another page with ``params`` in its URL (``run="x", step=3``: ``?run=x&step=3``; None
    values left out), itself left out if that page is absent."""
    query = {key: str(value) for key, value in params.items() if value is not None}
    try:
        st.page_link(f"views/{file}", label=label, icon=icon, query_params=query or None)
    except StreamlitPageNotFoundError:  # main.py leaves out pages whose file is not in this checkout
        pass


@contextmanager
def errors_shown() -> Iterator[None]:
    """Show a GistlabError as one st.error line and end this run of the page there."""
    try:
        yield
    except GistlabError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()
