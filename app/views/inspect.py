"""Inspect a batch: which in-batch negatives the guide masks, why, and what the student makes of them.

Reads the sidebar, draws a seeded batch (or opens the batch a run trained on at a step), and shows
core.inspect's report: heatmaps of a chosen block for guide and student, the masked pairs, per-row counts.
The batch is embedded once (cached); moving the margin only re-masks those embeddings.
"""

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import state
from core.inspect import Batch, filter_pairs, remask, run_student
from core.masking import MarginSettings
from core.models import guide_model_spec
from core.runs import list_runs

BLOCK_TITLES = {"a-p": "anchor vs positives", "a-a": "anchor vs anchors",
                "p-p": "positive vs positives", "a-n": "anchor vs negatives"}
ORIGINS = ("Draw from data", "A training run's step")
MASK_TINT = "rgba(214, 39, 40, 0.7)"
SHOWN_PAIRS = 2000  # rows sent to the browser per rerun (a batch of 128 can mask ~20,000 pairs)


def heatmap(scores, masked, side, title: str, side_name: str) -> go.Figure:
    """Cosines [B, C] with masked cells tinted red, and a strip of one value per row beside them.

    The tint is a second heatmap, not one marker per masked cell: thousands of SVG markers took
    the browser ~7 s to redraw per slider step at batch 128, the tint layer ~1 s. One plain
    figure with two x axes (make_subplots is ~6x slower to build).
    """
    verdict = np.where(masked.numpy(), "masked by the guide", "kept")
    return go.Figure(
        data=[
            go.Heatmap(z=scores.numpy(), coloraxis="coloraxis", text=verdict,
                       hovertemplate="row %{y} · candidate %{x}<br>cosine %{z:.3f} · %{text}<extra></extra>"),
            go.Heatmap(z=np.where(masked.numpy(), 1.0, np.nan), colorscale=[[0, MASK_TINT], [1, MASK_TINT]],
                       showscale=False, hoverinfo="skip"),
            go.Heatmap(z=side.numpy()[:, None], coloraxis="coloraxis", xaxis="x2",
                       hovertemplate=f"row %{{y}}<br>{side_name} %{{z:.3f}}<extra></extra>"),
        ],
        layout=dict(
            title=dict(text=title, subtitle=dict(text="red: masked by the guide")), height=450,
            margin=dict(l=10, r=10, t=70, b=10),
            xaxis=dict(domain=[0, 0.92], title="candidate (batch column)"),
            xaxis2=dict(domain=[0.935, 1], showticklabels=False, title=side_name),
            yaxis=dict(autorange="reversed", title="batch row"),
            coloraxis=dict(colorscale="Viridis", colorbar=dict(title="cosine")),
        ),
    )


st.title("Inspect a batch")
st.caption("The guide masks a candidate when it scores it above the row's threshold t "
           "(its positive's score g minus the margin). Red cells are masked; the strip on the "
           "right of each map is the row's threshold (guide) or the student's positive score.")

with state.errors_shown():
    origin = st.sidebar.radio("Batch", ORIGINS, key="batch_origin")
    if origin == ORIGINS[0]:
        ds, data_key = state.choose_data()
        guide, student = state.choose_models()
        size, seed, task = state.choose_batch(ds)
        batch = Batch.draw(ds, size, seed, task)
        defaults, scope = MarginSettings(), "data"
    else:
        runs = list_runs()
        if runs.empty:
            st.info("No training runs yet: start one on the Train page, or draw a batch from data.")
            st.stop()
        run = st.sidebar.selectbox("Run", runs["path"], format_func=lambda p: Path(p).name, key="inspect_run")
        step = st.sidebar.number_input("Step", 1, None, 1, key="inspect_step")
        batch, config = state.run_batch(run, int(step))
        data_key, student, defaults = f"run:{run}", run_student(run), config.margin_settings()
        guide = guide_model_spec(config.guide, config.student)  # "self": the student before training
        scope = data_key
        st.sidebar.caption(f"Guide: {guide} · student: {student}")
    settings = state.choose_settings(defaults, scope)
    report = remask(state.batch_report(data_key, tuple(batch.rows), guide, student, batch), settings)

mask = report.mask
cols = st.columns(1 + len(mask.blocks))
cols[0].metric("Masked, all blocks", f"{mask.masked_fraction():.1%}")
for col, (block, fraction) in zip(cols[1:], mask.block_fractions().items()):
    col.metric(f"{block} ({BLOCK_TITLES[block]})", f"{fraction:.1%}")

block = st.radio("Block", mask.blocks, horizontal=True, key="heatmap_block",
                 format_func=lambda b: f"{b}: {BLOCK_TITLES[b]}")
masked = mask.masked_candidates(block)
left, right = st.columns(2)
left.plotly_chart(heatmap(mask.guide_scores[block], masked, mask.thresholds,
                          f"Guide ({guide}): {block}", "threshold t"), key="guide_map")
if report.student_scores is None:
    right.info("Name a student model in the sidebar to compare its scores.")
else:
    right.plotly_chart(heatmap(report.student_scores[block], masked, report.student_scores["a-p"].diagonal(),
                               f"Student ({student}): {block}", "positive score"), key="student_map")

st.subheader(f"Masked pairs ({len(report.pairs)})")
f1, f2, f3 = st.columns([2, 2, 3])
blocks = f1.multiselect("Blocks", mask.blocks, default=list(mask.blocks), key="pairs_blocks")
prefers = f2.checkbox("Only where the student ranks the candidate above the positive", key="pairs_prefers",
                      disabled=report.student_scores is None)
needle = f3.text_input("Text contains", key="pairs_text")
pairs = filter_pairs(report.pairs, blocks, prefers, needle)
if len(pairs) > SHOWN_PAIRS:
    st.caption(f"Showing the {SHOWN_PAIRS:,} of {len(pairs):,} pairs where the guide puts the candidate "
               "furthest above the positive; the CSV holds them all.")
st.dataframe(pairs.nlargest(SHOWN_PAIRS, "beats_positive_by"), hide_index=True, key="masked_pairs", column_config={
    "text": st.column_config.TextColumn("row text", width="large"),
    "candidate": st.column_config.TextColumn("masked candidate", width="large"),
    "beats_positive_by": st.column_config.NumberColumn("guide: candidate − positive", format="%.3f"),
})
st.download_button("Download these pairs as CSV", lambda: pairs.to_csv(index=False), "masked_pairs.csv",
                   "text/csv", key="pairs_csv", on_click="ignore")

st.subheader("Per row")
st.dataframe(report.counts, hide_index=True, key="row_counts",
             column_config={"anchor": st.column_config.TextColumn("anchor", width="large")})
