"""The two charts that answer "does the guide help?": paired differences against MNRL, scores per task.

Results and Demo draw the same figures from core.training.results' tidy tables, so a number reads the same on
both pages. Rules kept here, once: a spread is drawn only where there are two seeds or more (one
seed says "1 seed" instead); a difference axis is symmetric around a marked zero and says what a dot
and a whisker are (mean ± std over seeds), and hover texts say it in words; the per-task panels share
one labelled score axis (a panel zoomed to its own data made 0.8650-0.8654 fill it); a task is named
with the metric behind its main score; arms are coloured by app.palette.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.palette import arm_color, experiment_arm
from core.training.results import MEAN_TASK, arm_label


def arm_hue(arm: str) -> str:
    """The palette colour of an arm named as core.training.results names it (base, none = MNRL, a guide
    spec, a recipe of the experiment)."""
    return arm_color(experiment_arm(arm))


def seeds_text(seeds: int) -> str:
    return "1 seed" if seeds == 1 else f"{seeds} seeds"


def task_title(task: str, metric: str | None) -> str:
    return task if task == MEAN_TASK or not metric else f"{task} · {metric}"


def _padded(low: float, high: float, share: float = 0.12) -> list[float]:
    pad = (high - low) * share or abs(high) * share or 0.01
    return [low - pad, high + pad]


INTERVAL = "mean ± std over seeds"
"""What a dot and its whisker are: the mean of the per-seed paired differences and their sample std."""


def delta_reach(deltas: pd.DataFrame, scale: float = 1.0) -> float:
    """Half the width of a delta axis that holds every dot and whisker of ``deltas`` (times ``scale``), so
    several figures can share one scale."""
    if deltas.empty:
        return 0.01 * scale
    return float((deltas["delta"].abs() + deltas["spread"].fillna(0)).max() * scale) or 0.01 * scale


def delta_hover(label: str, task: str, delta: float, spread: float, seeds: int, wins: int, unit: str = "") -> str:
    """``GIST · minilm-l6 − MNRL on WordNetSTS: +0.0114 ± 0.0009 (3 seeds, higher in 3/3)``."""
    digits = 2 if unit else 4
    spread_text = f" ± {spread:.{digits}f}" if seeds >= 2 and spread == spread else ""
    return (f"{label} − MNRL on {task}: {delta:+.{digits}f}{spread_text}{unit} "
            f"({seeds_text(seeds)}, higher in {wins}/{seeds})")


def paired_delta_figure(deltas: pd.DataFrame, metrics: dict[str, str], title: str, *, scale: float = 1.0,
                        unit: str = "", reach: float | None = None) -> go.Figure:
    """Each arm's paired difference against MNRL per task (and the mean over tasks), one dot each.

    ``deltas``: core.training.results.paired_deltas rows (arm, task, delta, spread, seeds, wins; an
    optional ``label`` names the arm). Whiskers (± std of the per-seed differences) only where seeds >= 2;
    the legend says each arm's seed count, the axis what a dot and a whisker are, a line marks zero
    (no difference), and the axis is symmetric around it (``reach``: a half-width shared with other
    figures). ``scale``/``unit``: e.g. 100 and " points" to speak in points.
    """
    fig = go.Figure()
    tasks = [*sorted(t for t in deltas["task"].unique() if t != MEAN_TASK), MEAN_TASK]
    labels = {t: task_title(t, metrics.get(t)) for t in tasks}
    deltas = deltas.assign(spread=pd.to_numeric(deltas["spread"], errors="coerce"))  # None from JSON: NaN
    for arm, rows in deltas.groupby("arm", sort=False):
        seeds = int(rows["seeds"].max())
        label = rows["label"].iloc[0] if "label" in rows else arm_label(arm)
        name = f"{label} ({seeds_text(seeds)})"
        for spread_drawn, part in rows.groupby(rows["seeds"] >= 2):
            hover = [delta_hover(label, t, d * scale, s * scale, int(n), int(w), unit)
                     for t, d, s, n, w in zip(part["task"], part["delta"], part["spread"], part["seeds"], part["wins"])]
            fig.add_trace(go.Scatter(
                x=(part["delta"] * scale).tolist(), y=[labels[t] for t in part["task"]], mode="markers", name=name,
                orientation="h",  # with scattermode "group": each arm its own lane within a task's row
                legendgroup=arm, showlegend=not any(t.legendgroup == arm for t in fig.data),
                marker=dict(color=arm_hue(arm), size=11), hovertext=hover, hoverinfo="text",
                error_x=dict(type="data", array=(part["spread"] * scale).tolist(), color=arm_hue(arm), thickness=1.5)
                if spread_drawn else None,
            ))
    reach = reach if reach is not None else delta_reach(deltas, scale)
    fig.add_vline(x=0, line_color="#555", line_width=1, annotation_text="MNRL", annotation_position="top")
    per = f", {unit.strip()}" if unit else ""
    fig.update_layout(
        title=title, height=130 + (14 + 10 * deltas["arm"].nunique()) * len(tasks),
        margin=dict(l=10, r=10, t=60, b=10), legend_title_text="", scattermode="group", scattergap=0.3,
        legend=dict(traceorder="reversed"),  # the legend in the lanes' order, top to bottom
        xaxis=dict(title=f"Score difference against MNRL{per} (same seed, same batches): {INTERVAL}",
                   zeroline=False, range=_padded(-reach, reach, 0.08)),
        yaxis=dict(title="", categoryorder="array", categoryarray=[labels[t] for t in reversed(tasks)]),
    )
    return fig


def task_scores_figure(table: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """One small panel per task (its metric in the title), one dot per model or run, on one shared score axis.

    ``table``: core.training.results rows with ``label`` (core.training.results.labelled); splits are averaged. The
    legend names the models and runs (in ``colors``' order), one colour each, on every panel alike.
    """
    means = table.groupby(["task", "metric", "label"], as_index=False, dropna=False)["main_score"].mean()
    tasks = sorted(means["task"].unique())
    columns = min(2, len(tasks)) or 1
    rows = -(-len(tasks) // columns) or 1
    metric = means.drop_duplicates("task").set_index("task")["metric"]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[task_title(t, metric.get(t)) for t in tasks],
                        vertical_spacing=0.3 / rows, horizontal_spacing=0.08, shared_yaxes="all")
    labels = [label for label in [*colors, *sorted(means["label"].unique())] if label in set(means["label"])]
    in_legend: set[str] = set()
    for k, task in enumerate(tasks):
        part = means[means["task"] == task].set_index("label")["main_score"].dropna()
        row, col = divmod(k, columns)
        for label in dict.fromkeys(labels):
            if label in part.index:
                fig.add_trace(go.Scatter(
                    x=[label], y=[part[label]], mode="markers", name=label, legendgroup=label,
                    showlegend=label not in in_legend,
                    marker=dict(size=12, color=colors.get(label, "#999")),
                    hovertemplate=f"<b>{label}</b><br>{task_title(task, metric.get(task))}: %{{y:.4f}}<extra></extra>",
                ), row=row + 1, col=col + 1)
                in_legend.add(label)
        fig.update_yaxes(title_text="score" if col == 0 else "", row=row + 1, col=col + 1)
        fig.update_xaxes(title_text="model or run (see legend)" if row == rows - 1 else "", row=row + 1, col=col + 1)
    scores = means["main_score"].dropna()
    if len(scores):
        fig.update_yaxes(range=_padded(scores.min(), scores.max(), 0.08), showticklabels=True)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=260 * rows + 60, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="")
    return fig
