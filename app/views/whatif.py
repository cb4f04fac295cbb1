"""Margin what-if: the share of each block the guide would mask, against the margin, before training.

Reads the sidebar, asks core.whatif for the sweep over N seeded batches (guide embeddings cached,
every margin from the same embeddings) and draws one line per block for each strategy, with the
current setting marked.
"""

import numpy as np
import plotly.express as px
import streamlit as st

from app import state
from core.whatif import ALL

BLOCK_COLOURS = {"a-p": "#2f6fdf", "a-a": "#2ca02c", "p-p": "#9467bd", "a-n": "#d62728", ALL: "#222222"}

st.title("Margin what-if")
st.caption("How much of each block would the guide mask at each margin? Pick a margin before "
           "training: absolute masks a candidate above g − margin, relative above g − |g|·margin "
           "(g: the guide's score of the row's positive). A larger margin masks more.")

with state.errors_shown():
    ds, data_key = state.choose_data()
    guide, _ = state.choose_models(student=False)
    size, seed, task = state.choose_batch(ds)
    n_batches = st.sidebar.slider("Batches sampled", 1, 50, 8, key="whatif_batches")
    settings = state.choose_settings()
    low, high = st.sidebar.slider("Margins swept", -0.5, 1.0, (-0.1, 0.5), 0.05, key="whatif_range")
    # a 0.01 grid, the margin slider's step, so the current margin is one of the swept points
    margins = tuple(np.round(np.arange(round(low * 100), round(high * 100) + 1) / 100, 2).tolist())
    sweep = state.margin_sweep(data_key, guide, n_batches, size, seed, task, margins,
                               (settings.contrast_anchors, settings.contrast_positives), ds)

fig = px.line(sweep, x="margin", y="masked_fraction", color="block", facet_col="strategy",
              color_discrete_map=BLOCK_COLOURS, category_orders={"strategy": ["absolute", "relative"]},
              labels={"masked_fraction": "masked share of candidates", "margin": "margin"},
              hover_data={"masked": True, "candidates": True},
              title=f"Masked share per block over {n_batches} batches of {size} (guide {guide})")
fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
fig.for_each_annotation(lambda a: a.update(text=a.text.replace("strategy=", "")))
facet = 1 if settings.margin_strategy == "absolute" else 2
fig.add_vline(x=settings.margin, line_dash="dash", line_color="#555", col=facet,
              annotation_text=f"current: {settings.margin:+.2f}", annotation_position="top left")
current = sweep[(sweep.strategy == settings.margin_strategy) & np.isclose(sweep.margin, settings.margin)]
fig.add_scatter(x=current.margin, y=current.masked_fraction, mode="markers", row=1, col=facet,
                marker=dict(size=10, color="#555", symbol="circle-open", line=dict(width=2)),
                name="current setting", hovertext=current.block, hovertemplate="%{hovertext}: %{y:.1%}<extra></extra>")
fig.update_layout(height=460, legend_title_text="block", margin=dict(l=10, r=10, t=70, b=10))
st.plotly_chart(fig, key="whatif_chart")

if current.empty:
    st.info(f"The current margin {settings.margin:+.2f} is outside the swept range: widen it in the sidebar.")
else:
    st.caption(f"At the current setting ({settings.margin_strategy}, margin {settings.margin:+.2f}): "
               + ", ".join(f"{b} {f:.1%}" for b, f in zip(current.block, current.masked_fraction)))
st.download_button("Download the sweep as CSV", lambda: sweep.to_csv(index=False), "margin_sweep.csv",
                   "text/csv", key="sweep_csv", on_click="ignore")
