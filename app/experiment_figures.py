"""The false-negative-rate curve of an experiment (``experiment.json``): when does the guide matter?

Thin: the numbers come from core.analysis.experiment_summary.curve (what the report's table holds);
this only draws them. x = the false-negative rate, y = each arm's paired difference against MNRL on
the mean over tasks (same rate and seed, averaged over seeds), whiskers = std over seeds (from 2 seeds).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from core.analysis.experiment_summary import ExperimentSummary, curve


def curve_figure(summary: ExperimentSummary) -> go.Figure:
    """One line per arm over the rates, with a dashed line at 0 (= MNRL)."""
    table = curve(summary)
    fig = go.Figure()
    colors = qualitative.D3
    for k, ((_arm, label), part) in enumerate(table.groupby(["arm", "label"], sort=False)):
        part = part.sort_values("rate")
        spread = part["spread"].where(part["seeds"] > 1)
        fig.add_trace(go.Scatter(
            x=part["rate"].tolist(), y=part["delta"].tolist(), mode="lines+markers", name=label,
            line={"color": colors[k % len(colors)]},
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
