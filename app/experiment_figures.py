"""The false-negative-rate curve of an experiment (``experiment.json``): when does the guide matter?

Thin: the numbers come from core.analysis.experiment_summary (what the report's tables hold); this only
draws them. :func:`curve_figure`: x = the false-negative rate, y = each arm's paired difference against
MNRL on the mean over tasks (same rate and seed, averaged over seeds), whiskers = std over seeds (from 2
seeds). :func:`quality_figure`: what each masking arm caught (FN recall) and at what cost (FN precision).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.paired_charts import arm_hue

from core.analysis.experiment_summary import ExperimentSummary, curve, quality_frame


def curve_figure(summary: ExperimentSummary) -> go.Figure:
    """One line per arm over the rates, with a dashed line at 0 (= MNRL)."""
    table = curve(summary)
    fig = go.Figure()
    for (arm, label), part in table.groupby(["arm", "label"], sort=False):
        part = part.sort_values("rate")
        spread = part["spread"].where(part["seeds"] > 1)
        fig.add_trace(go.Scatter(
            x=part["rate"].tolist(), y=part["delta"].tolist(), mode="lines+markers", name=label,
            line={"color": arm_hue(arm)},
            error_y={"type": "data", "array": spread.fillna(0).tolist(), "visible": bool(spread.notna().any())},
            customdata=part[["seeds", "wins"]].to_numpy().tolist(),
            hovertemplate=f"{label}<br>rate %{{x:g}}: %{{y:+.4f}} vs MNRL<br>higher in %{{customdata[1]}}/"
                          "%{customdata[0]} seeds<extra></extra>"))
    fig.add_hline(y=0, line_dash="dash", line_color="#7f7f7f", annotation_text="MNRL",
                  annotation_position="bottom right")
    rates = sorted(pd.unique(table["rate"])) if len(table) else []
    fig.update_layout(
        xaxis={"title": "false-negative rate (share of a batch that is a right answer for a row)",
               "tickvals": rates, "tickformat": "g"},
        yaxis={"title": "arm − MNRL, main score (mean over tasks)", "tickformat": "+.3f"},
        legend={"title": "arm"}, margin={"t": 30}, height=420)
    return fig


def quality_figure(summary: ExperimentSummary) -> go.Figure:
    """Two panels over the rates, one line per masking arm: FN recall (caught / present) and FN precision
    (false negatives among the masked), mean over seeds."""
    table = quality_frame(summary)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("FN recall: false negatives caught / present",
                                                        "FN precision: false negatives / masked"))
    for (arm, label), part in table.groupby(["arm", "label"], sort=False):
        part = part.sort_values("rate")
        for col, figure in enumerate(("fn_recall", "fn_precision"), start=1):
            fig.add_trace(go.Scatter(x=part["rate"].tolist(), y=part[figure].tolist(), mode="lines+markers",
                                     name=label, legendgroup=label, showlegend=col == 1,
                                     line={"color": arm_hue(arm)},
                                     hovertemplate=f"{label}<br>rate %{{x:g}}: %{{y:.1%}}<extra></extra>"), row=1, col=col)
    rates = sorted(pd.unique(table["rate"])) if len(table) else []
    fig.update_xaxes(title_text="false-negative rate", tickvals=rates, tickformat="g")
    fig.update_yaxes(title_text="FN share (mean over seeds)", tickformat=".0%", range=[0, 1])
    fig.update_layout(legend={"title": "arm"}, margin={"t": 40}, height=380)
    return fig
