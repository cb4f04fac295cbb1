"""Embedding map: a batch's texts in 2D, from guide or student embeddings, with the guide's masks as lines.

PCA is drawn at once; UMAP only when asked for (its import alone takes ~20 s), then cached by the
data. Box or lasso selection lists the chosen texts in a table that downloads as CSV.
"""

import plotly.graph_objects as go
import streamlit as st

from app import state
from core.inspect import Batch, mask_batch, one_thread
from core.projection import ROLE_COLOURS, map_points, mask_segments

PROJECTIONS = {"PCA": "pca", "UMAP (computed on request, then cached)": "umap"}

st.title("Embedding map")
st.caption("Each text of the batch as a point, coloured by its role. A grey line joins a row's text "
           "to every candidate the guide masks for it. Box- or lasso-select points to list them.")

with state.errors_shown():
    ds, data_key = state.choose_data()
    guide, student = state.choose_models()
    size, seed, task = state.choose_batch(ds, max_size=1024, default_size=64)
    settings = state.choose_settings()
    batch = Batch.draw(ds, size, seed, task)
    report = state.batch_report(data_key, tuple(batch.rows), guide, student, batch)
    with one_thread():  # the map needs the mask only, not the inspector's tables
        mask = mask_batch(report.batch, report.guide, settings)
    c1, c2, c3 = st.columns([2, 3, 2])
    source = c1.radio("Embeddings from", ["guide", "student"], horizontal=True, key="map_source",
                      disabled=report.student is None)
    method = c2.radio("Projection", list(PROJECTIONS), horizontal=True, key="map_method")
    show_lines = c3.checkbox("Lines to masked candidates", True, key="map_lines")
    source = source if report.student is not None else "guide"
    embedded = report.student if source == "student" else report.guide
    coords = state.projected(embedded.all().numpy(), PROJECTIONS[method], seed)

points = map_points(batch, coords)
segments = mask_segments(batch, mask, points)
fig = go.Figure()
if show_lines:
    fig.add_scatter(
        x=segments[["x0", "x1"]].assign(gap=None).to_numpy().ravel(),
        y=segments[["y0", "y1"]].assign(gap=None).to_numpy().ravel(),
        mode="lines", line=dict(color="rgba(90,90,90,0.18)", width=1), hoverinfo="skip",
        name=f"masked by the guide ({len(segments)})",
    )
trace_points = []  # the point ids of each role's trace, in curve order after the lines (if drawn)
for role, colour in ROLE_COLOURS.items():
    group = points[points.role == role]
    if len(group):
        fig.add_scatter(x=group.x, y=group.y, mode="markers", name=role,
                        marker=dict(color=colour, size=8, line=dict(width=0.5, color="white")),
                        hovertext=group.hover, hovertemplate="%{hovertext}<extra></extra>")
        trace_points.append(group.index)
axis = PROJECTIONS[method].upper()
fig.update_layout(title=f"{axis} of {source} embeddings: {len(batch)} rows, {settings.margin_strategy} margin "
                        f"{settings.margin:+.2f}", xaxis_title=f"{axis} 1", yaxis_title=f"{axis} 2",
                  height=620, dragmode="lasso", legend_title_text="role", margin=dict(l=10, r=10, t=50, b=10))
event = st.plotly_chart(fig, key="map_chart", on_select="rerun", selection_mode=("box", "lasso", "points"))

first = 1 if show_lines else 0  # curve number of the first role trace
chosen = [trace_points[p["curve_number"] - first][p["point_index"]] for p in event.selection.points
          if p["curve_number"] >= first]
st.subheader(f"Selected texts ({len(chosen)})")
if not chosen:
    st.info("Draw a box or a lasso around points on the map to list their texts here.")
else:
    table = points.loc[chosen, ["role", "row", "dataset_row", "text", "x", "y"]]
    st.dataframe(table, hide_index=True, key="map_selection",
                 column_config={"text": st.column_config.TextColumn("text", width="large")})
    st.download_button("Download the selection as CSV", lambda: table.to_csv(index=False), "selection.csv",
                       "text/csv", key="selection_csv", on_click="ignore")
