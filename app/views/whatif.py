"""Margin what-if: how much the guide would mask at every margin, and how often it is right, before training.

Reads the sidebar, asks core.analysis.whatif for the sweep over N seeded batches (guide embeddings cached,
every margin from the same embeddings), with a progress bar that counts batches, and draws:
the masked share per block against the margin, one panel per strategy with its own axis
(absolute and relative margins are different units); precision (or recall) of the mask against
the ground truth per task (core.method.groundtruth's false negatives; a task whose batches hold none
is named, not drawn as an empty line); both with and without the positive floor when one is set.
The sidebar's false-negative rate (core.corpus.false_negatives) rebuilds the drawn batches so they hold some.
"""

import numpy as np
import plotly.express as px
import streamlit as st

from app import cache, loaders, sidebar
from app.false_negatives import DEFINITION, choose_rate
from app.views import errors_shown
from core.method.groundtruth import NO_GROUND_TRUTH
from core.analysis.inspect import sample_batches
from core.method.masking import BLOCK_HELP
from core.analysis.whatif import ALL, margin_sweep

BLOCK_COLOURS = {"a-p": "#2f6fdf", "a-a": "#2ca02c", "p-p": "#9467bd", "a-n": "#d62728", ALL: "#222222"}
AXIS_TITLES = {"absolute": "absolute margin m (t = g − m)", "relative": "relative margin m (t = g − |g|·m)"}
KEPT_SWEEPS = 16


@st.cache_resource
def sweeps() -> cache.Kept:
    """Finished sweeps of this server (each computed under a bar that counts its batches)."""
    return cache.Kept(KEPT_SWEEPS)


def grid(low: float, high: float) -> list[float]:
    """A 0.01 grid, the margin slider's step, so the current margin is one of the swept points."""
    return np.round(np.arange(round(low * 100), round(high * 100) + 1) / 100, 2).tolist()


def sweep_with_progress(key, ds, guide, n_batches, size, seed, task, margins, settings, rate=0.0):
    """The sweep for ``key``, computed once (progress bar: batches drawn, then batches swept)."""
    def sweep(bar: cache.Bar):
        drawing = bar.counting(lambda done, total: f"Drawing batch {done} of {total}…", share=0.5)
        batches = []
        for k in range(n_batches):
            drawing(k, n_batches)
            batches.append(sample_batches(ds, 1, size, seed + k, task, rate)[0])
        swept = bar.counting(lambda done, total: f"Sweeping margins: batch {done} of {total} (the guide "
                                                 "encodes texts it has not cached)…", start=0.5, share=0.5)
        return margin_sweep(batches, loaders.guide_cache(guide).embed, margins, settings.contrast_anchors,
                            settings.contrast_positives, positive_floor=settings.positive_floor, by_task=True,
                            progress=swept)

    return sweeps().get(key, sweep)


def facets(fig, settings) -> None:
    """Each strategy's panel its own x axis and title; the current setting marked on its panel."""
    fig.update_xaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("strategy=", "")))
    for col, strategy in enumerate(("absolute", "relative"), start=1):
        fig.update_xaxes(title_text=AXIS_TITLES[strategy], row=1, col=col)
    facet = 1 if settings.margin_strategy == "absolute" else 2
    fig.add_vline(x=settings.margin, line_dash="dash", line_color="#555", col=facet,
                  annotation_text=f"current: {settings.margin:+.2f}", annotation_position="top left")
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=70, b=10))


st.title("Margin what-if")
st.caption("How much of each block would the guide mask at each margin, and how often is it right? Pick a margin "
           "before training: absolute masks a candidate above g − margin, relative above g − |g|·margin "
           "(g: the guide's score of the row's positive). A larger margin masks more.")

with errors_shown():
    sidebar.start()
    ds, data_key = sidebar.choose_data()
    guide, _ = sidebar.choose_models(student=False)
    loaders.ready_models(guide)  # a first visit loads the guide under a bar that counts, not in the sweep's
    size, seed, task = sidebar.choose_batch(ds)
    rate = choose_rate(ds)
    n_batches = st.sidebar.slider("Batches sampled", 1, 50, 8, key="whatif_batches")
    settings = sidebar.choose_settings()
    low, high = st.sidebar.slider("Absolute margins swept", -0.5, 1.0, (-0.1, 0.5), 0.05, key="whatif_range")
    rel_low, rel_high = st.sidebar.slider("Relative margins swept", -1.0, 2.0, (-0.2, 1.0), 0.05,
                                          key="whatif_range_relative")
    sidebar.show_current(size, student=False)
    margins = tuple(sorted(set(grid(low, high)) | set(grid(rel_low, rel_high))))
    key = (data_key, guide, n_batches, size, seed, task, margins, settings.contrast_anchors,
           settings.contrast_positives, settings.positive_floor, rate)
    table = sweep_with_progress(key, ds, guide, n_batches, size, seed, task, margins, settings, rate)

in_range = (((table.strategy == "absolute") & table.margin.between(low, high))
            | ((table.strategy == "relative") & table.margin.between(rel_low, rel_high)))
table = table[in_range]
floor_off = table.positive_floor.isna()
shares = table[floor_off & (table.task == ALL)]
current = shares[(shares.strategy == settings.margin_strategy) & np.isclose(shares.margin, settings.margin)]

fig = px.line(shares, x="margin", y="masked_fraction", color="block", facet_col="strategy",
              color_discrete_map=BLOCK_COLOURS, category_orders={"strategy": ["absolute", "relative"]},
              labels={"masked_fraction": "masked share of candidates"}, hover_data={"masked": True, "candidates": True},
              title=f"Masked share per block over {n_batches} batches of {size} (guide {guide})")
if settings.positive_floor is not None:
    floored = table[~floor_off & (table.task == ALL) & (table.block == ALL)]
    for col, strategy in enumerate(("absolute", "relative"), start=1):
        part = floored[floored.strategy == strategy]
        fig.add_scatter(x=part.margin, y=part.masked_fraction, mode="lines", row=1, col=col,
                        line=dict(color=BLOCK_COLOURS[ALL], dash="dot"), showlegend=col == 1,
                        name=f"all, floor {settings.positive_floor:+.2f}")
facet = 1 if settings.margin_strategy == "absolute" else 2
fig.add_scatter(x=current.margin, y=current.masked_fraction, mode="markers", row=1, col=facet,
                marker=dict(size=10, color="#555", symbol="circle-open", line=dict(width=2)),
                name="current setting", hovertext=current.block, hovertemplate="%{hovertext}: %{y:.1%}<extra></extra>")
facets(fig, settings)
fig.update_layout(legend_title_text="block")
st.plotly_chart(fig, key="whatif_chart")
st.caption("Blocks a-p, a-a, p-p, a-n: hover the ? for what each compares; 'all' pools them.",
           help=" ".join(BLOCK_HELP[b] for b in shares.block.unique() if b in BLOCK_HELP))

if current.empty:
    st.info(f"The current margin {settings.margin:+.2f} is outside the swept range: widen it in the sidebar.")
else:
    st.caption(f"At the current setting ({settings.margin_strategy}, margin {settings.margin:+.2f}): "
               + ", ".join(f"{b} {f:.1%}" for b, f in zip(current.block, current.masked_fraction)))

st.subheader("Is the guide right? Precision against the ground truth, per task")
if not table.attrs.get("ground_truth", False):
    st.info(f"{NO_GROUND_TRUTH}: this data says nothing about which texts mean the same (the bundled data does, "
            "and a 'group' column in your own data would), so precision and recall cannot be computed.")
else:
    measure = st.radio("Measure", ["precision", "recall"], horizontal=True, key="whatif_measure", help=DEFINITION)
    quality = table[table.block == ALL].assign(
        floor=lambda f: np.where(f.positive_floor.isna(), "no floor", f"floor {settings.positive_floor or 0:+.2f}"))
    present = quality[quality.strategy == "absolute"].groupby("task", sort=False)["false_negatives"].max()
    st.caption("False-negative candidates in the swept batches (all blocks): "
               + ", ".join(f"{t} {int(n):,}" for t, n in present.items())
               + ("" if rate else " · raise the false-negative rate in the sidebar to add some"))
    empty = [t for t, n in present.items() if n == 0]
    if measure == "recall" and empty:
        st.info(f"No false negatives in these batches of {', '.join(empty)}: recall undefined there, so not "
                "drawn (the bundled definition tasks hold none in random batches: raise the false-negative "
                "rate in the sidebar).")
        quality = quality[~quality.task.isin(empty)]
    fig = px.line(quality, x="margin", y=measure, color="task", line_dash="floor", facet_col="strategy",
                  category_orders={"strategy": ["absolute", "relative"], "task": [ALL, *sorted(set(quality.task) - {ALL})],
                                   "floor": ["no floor", f"floor {settings.positive_floor or 0:+.2f}"]},
                  color_discrete_map={ALL: "#222222"}, hover_data={"masked": True, "candidates": True},
                  title=(f"Precision: false negatives among the masked, per task (all blocks pooled)"
                         if measure == "precision" else
                         "Recall: false negatives present that the mask catches, per task (all blocks pooled)"))
    facets(fig, settings)
    fig.update_layout(legend_title_text="task · floor")
    if len(quality):
        st.plotly_chart(fig, key="whatif_quality_chart")
    now = quality[(quality.strategy == settings.margin_strategy) & np.isclose(quality.margin, settings.margin)
                  & (quality.task == ALL)]
    if len(now):
        pct = lambda x: "–" if x != x else f"{x:.0%}"  # noqa: E731 (NaN: nothing masked)
        st.caption("At the current setting, all tasks: " + "; ".join(
            f"{row.floor}: masked {row.masked_fraction:.1%}, precision {pct(row.precision)} (related hard "
            f"negatives {pct(row.share_related)}, unrelated {pct(row.share_unrelated)}), recall {pct(row.recall)} "
            f"of {int(row.false_negatives):,} false negatives" for row in now.itertuples()))

st.download_button("Download the sweep as CSV", lambda: table.to_csv(index=False), "margin_sweep.csv",
                   "text/csv", key="sweep_csv", on_click="ignore")
