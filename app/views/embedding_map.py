"""Embedding map: a batch's texts in 2D, from guide or student embeddings, coloured by task.

PCA is drawn at once; UMAP only when asked for (its import alone takes ~20 s), then cached by the
data. Lines join a text to what the guide masks with it, only for the chosen text and the top-k
pairs by guide score (all of them at batch 64 were a hairball). Clicking a point, or finding a
text by search, lists its nearest neighbours in the *original* embedding space (guide and student
side by side, core.analysis.projection.neighbours) with what the guide does with each; a box or lasso lists
the chosen texts with their positive and masked partners.
"""

import plotly.graph_objects as go
import streamlit as st

from app import loaders, sidebar
from app.views import errors_shown
from core.analysis.inspect import mask_batch, one_thread
from core.method.masking import BLOCK_HELP
from core.analysis.projection import ROLE_COLOURS, map_points, mask_segments, neighbours, selection_table

PROJECTIONS = {"PCA": "pca", "UMAP (computed on request, then cached)": "umap"}
SYMBOLS = {"anchor": "circle", "positive": "diamond", "negative": "x"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
NEIGHBOURS = 10


def remember_selection() -> None:
    """Keep the points the user clicked or boxed (their ids) until the next selection or 'Clear'.

    The chart's own selection is transient: redrawing the figure with the chosen text's lines
    resets it, so the page reads what this callback kept, not the chart's state.
    """
    points = st.session_state["map_chart"]["selection"]["points"]
    ids = [int(p["customdata"][0] if isinstance(p["customdata"], list) else p["customdata"])
           for p in points if p.get("customdata") is not None]
    if ids:  # kept with the batch they belong to: another batch's point ids are other texts
        st.session_state["map_chosen"] = (st.session_state.get("map_batch"), list(dict.fromkeys(ids)))


def clear_selection() -> None:
    st.session_state["map_chosen"] = (None, [])
    st.session_state["map_search"] = ""


def lines(segments, name: str, colour: str, width: float) -> go.Scatter:
    """Segments as one line trace (gaps between them), not hoverable."""
    return go.Scatter(x=segments[["x0", "x1"]].assign(gap=None).to_numpy().ravel(),
                      y=segments[["y0", "y1"]].assign(gap=None).to_numpy().ravel(),
                      mode="lines", line=dict(color=colour, width=width), hoverinfo="skip", name=name)


st.title("Embedding map")
st.caption("Each text of the batch as a point: colour = task (or role), shape = role (● anchor, ◆ positive, "
           "✕ negative). Lines join a text to the candidates the guide masks with it: for the chosen text and "
           "the top pairs by guide score. Click a point (or find a text) for its nearest neighbours in the "
           "original embedding space; box- or lasso-select points to list them.")

with errors_shown():
    sidebar.start()
    ds, data_key = sidebar.choose_data()
    guide, student = sidebar.choose_models()
    size, seed, task = sidebar.choose_batch(ds, max_size=1024)
    settings = sidebar.choose_settings()
    sidebar.show_current(size)
    batch = loaders.drawn_batch(data_key, size, seed, task, ds)
    report = loaders.batch_report(data_key, tuple(batch.rows), guide, student, batch)
    with one_thread():  # the map needs the mask only, not the inspector's tables
        mask = mask_batch(report.batch, report.guide, settings)
    c1, c2, c3, c4 = st.columns([2, 3, 2, 3])
    source = c1.radio("Map of", ["guide", "student"], horizontal=True, key="map_source",
                      disabled=report.student is None, help="Whose embeddings the 2D map projects")
    method = c2.radio("Projection", list(PROJECTIONS), horizontal=True, key="map_method")
    top_k = c3.number_input("Lines: top pairs by guide score", 0, 5000, 25, key="map_top_k",
                            help="Masked pairs drawn for the whole batch, the ones the guide scores highest; "
                                 "the chosen text's are always drawn")
    needle = c4.text_input("Find a text", key="map_search", placeholder="a word of an anchor, positive or negative")
    source = source if report.student is not None else "guide"
    embedded = report.student if source == "student" else report.guide
    coords = loaders.projected(embedded.all().numpy(), PROJECTIONS[method], seed)

points = map_points(batch, coords)
segments = mask_segments(batch, mask, points)
matches = points.index[points.text.str.contains(needle, case=False, regex=False)].tolist() if needle.strip() else []
st.session_state["map_batch"] = (data_key, tuple(batch.rows))
kept_for, kept = st.session_state.get("map_chosen", (None, []))
chosen = kept if kept_for == st.session_state["map_batch"] else []
focus = chosen[0] if len(chosen) == 1 else (matches[0] if matches else None)

fig = go.Figure()
if top_k and len(segments):
    fig.add_trace(lines(segments.nlargest(int(top_k), "guide_score"),
                        f"top {min(int(top_k), len(segments))} of {len(segments)} masked pairs",
                        "rgba(90,90,90,0.25)", 1))
if focus is not None:
    own = segments[(segments.source == focus) | (segments.target == focus)]
    fig.add_trace(lines(own, f"masked with the chosen text ({len(own)})", "rgba(214,39,40,0.8)", 2))
by_task = points.task.nunique() > 1
for k, (group_name, group) in enumerate(points.groupby("task" if by_task else "role", sort=True)):
    colour = PALETTE[k % len(PALETTE)] if by_task else ROLE_COLOURS[group_name]
    fig.add_scatter(x=group.x, y=group.y, mode="markers", name=str(group_name), customdata=group.index,
                    marker=dict(color=colour, size=8, symbol=[SYMBOLS[r] for r in group.role],
                                line=dict(width=0.5, color="white")),
                    hovertext=group.hover, hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>")
if matches or focus is not None:
    ring = points.loc[sorted(set(matches) | ({focus} if focus is not None else set()))]
    fig.add_scatter(x=ring.x, y=ring.y, mode="markers", name=f"found / chosen ({len(ring)})", customdata=ring.index,
                    marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2, color="#111")),
                    hovertext=ring.hover, hovertemplate="%{hovertext}<extra></extra>")
axis = PROJECTIONS[method].upper()
fig.update_layout(title=f"{axis} of {source} embeddings: {len(batch)} rows, {settings.margin_strategy} margin "
                        f"{settings.margin:+.2f}", xaxis_title=f"{axis} 1", yaxis_title=f"{axis} 2",
                  height=620, legend_title_text="task" if by_task else "role",
                  margin=dict(l=10, r=10, t=50, b=10))
st.plotly_chart(fig, key="map_chart", on_select=remember_selection, selection_mode=("points", "box", "lasso"))
if chosen or matches:
    st.button("Clear the chosen text(s)", key="map_clear", on_click=clear_selection)

if needle.strip():
    st.caption(f"{len(matches)} text(s) contain {needle!r}" + (": the first is the chosen text." if matches and
                                                                focus == matches[0] else "."))
if focus is None:
    st.info("Click a point (or find a text above) to see its nearest neighbours; draw a box or a lasso to "
            "list several texts.")
else:
    st.subheader("Nearest neighbours in the original embedding space")
    st.markdown(f"**{points.role[focus]} of row {points.row[focus]}** · {points.text[focus]}")
    st.caption("Cosine in the full embedding space (the 2D map distorts distances); 'guide' says whether the "
               "guide masks the pair for this batch at the current margin, and in which block.",
               help=" ".join(BLOCK_HELP.values()))
    spaces = {"guide": report.guide} | ({"student": report.student} if report.student is not None else {})
    for column, (name, vectors) in zip(st.columns(len(spaces)), spaces.items()):
        column.markdown(f"**{name.capitalize()}** ({guide if name == 'guide' else student})")
        column.dataframe(neighbours(vectors.all().numpy(), points, segments, focus, NEIGHBOURS), hide_index=True,
                         key=f"neighbours_{name}", column_config={
                             "cosine": st.column_config.NumberColumn(format="%.3f"),
                             "text": st.column_config.TextColumn(width="medium")})

st.subheader(f"Selected texts ({len(chosen)})")
if chosen:
    table = selection_table(points, segments, chosen)
    st.dataframe(table, hide_index=True, key="map_selection", column_config={
        "text": st.column_config.TextColumn("text", width="medium"),
        "positive": st.column_config.TextColumn("its row's positive", width="medium"),
        "masked_partners": st.column_config.NumberColumn("masked with it", help="Texts the guide masks as its "
                                                         "candidates, or that mask it as theirs"),
        "masked_examples": st.column_config.TextColumn("some of them", width="large")})
    st.download_button("Download the selection as CSV", lambda: table.to_csv(index=False), "selection.csv",
                       "text/csv", key="selection_csv", on_click="ignore")
