"""Inspect a batch: which in-batch negatives the guide masks, why, and what the student makes of them.

Reads the sidebar (or the link ``?run=NAME&step=N`` that the Train page gives), draws a seeded batch
or opens the batch a run trained on at a step, and shows core.analysis.inspect's report: heatmaps of a
chosen block for guide and student, the masked pairs, per-row counts. The batch is embedded once
(cached); moving the margin only re-masks those embeddings. The heatmaps carry each text once as
an axis label (core.analysis.inspect.cell_labels) and the mask as a one-byte layer, so a slider step sends
little to the browser; the block picker reruns only the maps (a fragment).
"""

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import state
from core.errors import GistlabError
from core.analysis.inspect import cell_labels, filter_pairs, remask, run_student
from core.method.groundtruth import ALL, NO_GROUND_TRUTH
from core.method.masking import BLOCK_HELP, WEAK_SHARE, MarginSettings
from core.guides.models import guide_model_spec
from core.training.runs import list_runs, recorded_steps, resolve

BLOCK_TITLES = {"a-p": "anchor vs positives", "a-a": "anchor vs anchors",
                "p-p": "positive vs positives", "a-n": "anchor vs negatives"}
ORIGINS = ("Draw from data", "A training run's step")
MASK_TINT = "rgba(214, 39, 40, 0.7)"
SHOWN_PAIRS = 500  # rows sent to the browser per rerun (a batch of 128 can mask ~20,000 pairs)
QUALITY_HELP = ("Checked against where each text came from (the bundled data's WordNet synsets, or a "
                "'group' column): precision = share of masked candidates that are the same meaning, the same "
                "word or the same category as the row; recall = share of same-meaning candidates masked.")
WEAK_HELP = (f"Rows whose guide masks at least {WEAK_SHARE:.0%} of their candidates: its positive score is so "
             "low that the row drops out of the loss (a suspect pair).")
TICKS = 16  # index ticks per heatmap axis (the labels themselves are texts, shown on hover)


def heatmap(scores, other, masked, side, labels, title: str, names: tuple[str, str], side_name: str) -> go.Figure:
    """Cosines [B, C] with masked cells tinted red, and a strip of one value per row beside them.

    ``other`` [B, C] is the other model's cosine of the same cell (None without one); ``labels``
    (rows, columns) name the texts, so the hover shows both texts and both scores. The tint is a
    uint8 heatmap layer and the scores float32: at batch 128 a figure is ~0.2 MB instead of the
    ~1.2 MB that one verdict string per cell cost.
    """
    rows, cols = labels
    this, that = names
    hover = f"<b>row</b> %{{y}}<br><b>candidate</b> %{{x}}<br>{this} %{{z:.3f}}"
    hover += f" · {that} %{{customdata:.3f}}" if other is not None else ""
    n_rows, n_cols = scores.shape
    height = int(min(1000, max(420, 170 + 6 * n_rows)))
    ticks = lambda n: dict(tickmode="array", tickvals=list(range(0, n, max(1, n // TICKS))),  # noqa: E731
                           ticktext=[str(k) for k in range(0, n, max(1, n // TICKS))])
    return go.Figure(
        data=[
            go.Heatmap(z=scores.numpy().astype(np.float32), x=cols, y=rows, coloraxis="coloraxis",
                       customdata=None if other is None else other.numpy().astype(np.float32),
                       hovertemplate=hover + "<extra></extra>"),
            go.Heatmap(z=masked.numpy().astype(np.uint8), x=cols, y=rows, zmin=0, zmax=1, showscale=False,
                       colorscale=[[0, "rgba(0,0,0,0)"], [1, MASK_TINT]], hoverinfo="skip"),
            go.Heatmap(z=side.numpy().astype(np.float32)[:, None], y=rows, coloraxis="coloraxis", xaxis="x2",
                       hovertemplate=f"<b>row</b> %{{y}}<br>{side_name} %{{z:.3f}}<extra></extra>"),
        ],
        layout=dict(
            title=dict(text=title, subtitle=dict(
                text=f"red: masked by the guide · right strip: {side_name} · hover a cell for both texts")),
            height=height, margin=dict(l=10, r=10, t=80, b=10),
            xaxis=dict(domain=[0, 0.92], title=dict(text="candidate (batch column)", standoff=8),
                       **ticks(n_cols)),
            xaxis2=dict(domain=[0.94, 1], showticklabels=False, ticks="", side="top",
                        title=dict(text="t" if side_name.startswith("threshold") else "pos.", font=dict(size=11))),
            yaxis=dict(autorange="reversed", title=dict(text="batch row", standoff=8), **ticks(n_rows)),
            coloraxis=dict(colorscale="Viridis", colorbar=dict(title="cosine")),
        ),
    )


def inspectable_runs():
    """Runs that recorded at least one batch, newest first."""
    runs = list_runs()
    return runs[runs["steps_done"].fillna(0) > 0]


def follow_link() -> None:
    """Apply ``?run=NAME&step=N`` (the Train page's link) to the sidebar, once per distinct link."""
    run, step = st.query_params.get("run"), st.query_params.get("step")
    if not run or st.session_state.get("inspect_link") == (run, step):
        return
    st.session_state["inspect_link"] = (run, step)
    try:
        path = str(resolve(run))
    except GistlabError as exc:
        st.warning(f"The link names run {run!r}, which is not here ({exc})")
        return
    if path not in set(inspectable_runs()["path"]):
        st.warning(f"The link names run {run!r}, which has recorded no batch yet: pick another run.")
        return
    st.session_state.update(batch_origin=ORIGINS[1], inspect_run=path)
    if step is not None:
        st.session_state["inspect_step"] = int(step) if str(step).lstrip("-").isdigit() else -1


def choose_run_step():
    """Sidebar: a run (a completed one by default) and one of its recorded steps (bounded)."""
    runs = inspectable_runs()
    if runs.empty:
        st.info("No training run has recorded a batch yet: start one on the Train page, or draw a batch from data.")
        st.stop()
    paths = list(runs["path"])
    if st.session_state.get("inspect_run") not in paths:  # first visit, or the run was deleted
        done = runs[runs["state"] == "completed"]
        st.session_state["inspect_run"] = (done if len(done) else runs)["path"].iloc[0]
    states = dict(zip(runs["path"], runs["state"]))
    run = st.sidebar.selectbox("Run", paths, key="inspect_run",
                               format_func=lambda p: f"{Path(p).name} ({states[p]})")
    steps = recorded_steps(run)
    if not steps:
        st.info(f"Run {Path(run).name} has not recorded a batch yet: pick another run or wait a step.")
        st.stop()
    first, last = steps[0], steps[-1]
    asked = int(st.session_state.get("inspect_step", first))
    if not first <= asked <= last:  # a step of another run, or a link past the end
        st.warning(f"Run {Path(run).name} has steps {first}–{last}: there is no step {asked}; "
                   f"showing step {min(max(asked, first), last)}.")
        st.session_state["inspect_step"] = min(max(asked, first), last)
    step = st.sidebar.number_input(f"Step ({first}–{last})", first, last, key="inspect_step",
                                   help=f"The steps run {Path(run).name} recorded a batch for")
    st.query_params.update(run=Path(run).name, step=str(step))
    st.session_state["inspect_link"] = (Path(run).name, str(step))
    return run, int(step)


st.title("Inspect a batch")
st.caption("The guide masks a candidate when it scores it above the row's threshold t "
           "(its positive's score g minus the margin). Red cells are masked; the strip on the "
           "right of each map is the row's threshold (guide) or the student's positive score.")

with state.errors_shown():
    follow_link()
    origin = st.sidebar.radio("Batch", ORIGINS, key="batch_origin")
    if origin == ORIGINS[0]:
        if "run" in st.query_params:  # the URL names what is shown: no run now
            st.query_params.clear()
            st.session_state.pop("inspect_link", None)
        ds, data_key = state.choose_data()
        guide, student = state.choose_models()
        size, seed, task = state.choose_batch(ds)
        batch = state.drawn_batch(data_key, size, seed, task, ds)
        defaults, scope, student_label = MarginSettings(), "data", student
    else:
        run, step = choose_run_step()
        batch, config = state.run_batch(run, step)
        data_key, student, defaults = f"run:{run}", run_student(run), config.margin_settings()
        guide = guide_model_spec(config.guide, config.student)  # "self": the student before training
        name = Path(run).name
        student_label = f"final model of run {name}" if student != config.student else f"untrained {student}: no saved model"
        scope = data_key
        st.sidebar.caption(f"Step {step} of run {name} · guide {guide} · student: {student_label}")
    settings = state.choose_settings(defaults, scope)
    report = remask(state.batch_report(data_key, tuple(batch.rows), guide, student, batch), settings)

mask = report.mask
quality = None if report.quality is None else report.quality[report.quality["task"] == ALL].set_index("block")


def checked(block: str) -> str:
    """Precision and recall of the mask of ``block`` (or ``all``) against the ground truth, in words."""
    if quality is None:
        return NO_GROUND_TRUTH
    pct = lambda x: "–" if x != x else f"{x:.0%}"  # noqa: E731 (NaN: nothing masked / no same-meaning)
    return f"precision {pct(quality.precision[block])} · recall {pct(quality.recall[block])}"


cols = st.columns(2 + len(mask.blocks))
cols[0].metric("Masked, all blocks", f"{mask.masked_fraction():.1%}", help=QUALITY_HELP)
cols[0].caption(checked(ALL))
for col, (block, fraction) in zip(cols[1:], mask.block_fractions().items()):
    col.metric(f"{block} ({BLOCK_TITLES[block]})", f"{fraction:.1%}", help=BLOCK_HELP[block])
    col.caption(checked(block))
weak = report.counts[report.counts["weak"]]
cols[-1].metric("Weak positives", f"{len(weak)} of {len(report.counts)}", help=WEAK_HELP)
if len(weak):
    with st.expander(f"{len(weak)} weak-positive rows: the guide masks ≥ {WEAK_SHARE:.0%} of their candidates"):
        st.caption("The guide scores these rows' own pairs so low that nearly every candidate looks at least as "
                   "close: the row drops out of the loss, and the pair itself is suspect. A positive floor "
                   "(sidebar) masks only candidates the guide scores above it.")
        shown = weak.assign(positive=[report.batch.positives[r] for r in weak["row"]])
        st.dataframe(shown[["row", "anchor", "positive", "positive_score", "threshold", "fraction", "total"]],
                     hide_index=True, key="weak_rows", column_config={
                         "fraction": st.column_config.NumberColumn("masked share", format="percent"),
                         "positive_score": st.column_config.NumberColumn("guide: positive", format="%.3f"),
                         "threshold": st.column_config.NumberColumn("threshold t", format="%.3f")})
if report.quality is not None and report.quality["task"].nunique() > 2:  # "all" and more than one task
    with st.expander("Precision and recall per task"):
        per_task = report.quality[(report.quality["task"] != ALL) & (report.quality["block"] == ALL)]
        st.dataframe(per_task[["task", "candidates", "masked", "precision", "recall", "same_meaning_candidates"]],
                     hide_index=True, key="quality_per_task", column_config={
                         "precision": st.column_config.NumberColumn(format="percent"),
                         "recall": st.column_config.NumberColumn(format="percent")})


@st.fragment
def maps() -> None:
    """The two heatmaps of one block; picking another block reruns only this part of the page."""
    block = st.radio("Block", mask.blocks, horizontal=True, key="heatmap_block",
                     format_func=lambda b: f"{b}: {BLOCK_TITLES[b]}", help=" ".join(BLOCK_HELP[b] for b in mask.blocks))
    masked = mask.masked_candidates(block)
    labels = cell_labels(report.batch, block)
    student_scores = None if report.student_scores is None else report.student_scores[block]
    side_by_side = len(report.batch) <= 48  # larger batches get the full width each
    left, right = st.columns(2) if side_by_side else (st.container(), st.container())
    left.plotly_chart(heatmap(mask.guide_scores[block], student_scores, masked, mask.thresholds, labels,
                              f"Guide ({guide}): {block}", ("guide", "student"), "threshold t"), key="guide_map")
    if student_scores is None:
        right.info("Name a student model in the sidebar to compare its scores.")
    else:
        right.plotly_chart(heatmap(student_scores, mask.guide_scores[block], masked,
                                   report.student_scores["a-p"].diagonal(), labels,
                                   f"Student ({student_label}): {block}", ("student", "guide"),
                                   "positive score"), key="student_map")


maps()

f1, f2, f3 = st.columns([2, 2, 3])
blocks = f1.multiselect("Blocks", mask.blocks, default=list(mask.blocks), key="pairs_blocks",
                        help=" ".join(BLOCK_HELP[b] for b in mask.blocks))
prefers = f2.checkbox("Only where the student ranks the candidate above the positive", key="pairs_prefers",
                      disabled=report.student_scores is None)
needle = f3.text_input("Text contains", key="pairs_text")
pairs = filter_pairs(report.pairs, blocks, prefers, needle)
filtered = len(pairs) != len(report.pairs)
st.subheader(f"Masked pairs ({len(pairs)})")
if filtered:
    st.caption(f"{len(pairs):,} of the batch's {len(report.pairs):,} masked pairs match the filters.")
if pairs.empty:
    st.info("No masked pair matches these filters." if filtered else
            "The guide masks no candidate in this batch at this margin: raise the margin to see some.")
else:
    if len(pairs) > SHOWN_PAIRS:
        st.caption(f"Showing the {SHOWN_PAIRS:,} of {len(pairs):,} pairs where the guide puts the candidate "
                   "furthest above the positive; the CSV holds them all.")
    st.dataframe(pairs.nlargest(SHOWN_PAIRS, "beats_positive_by"), hide_index=True, key="masked_pairs", column_config={
        "text": st.column_config.TextColumn("row text", width="medium"),
        "positive": st.column_config.TextColumn("its positive", width="medium"),
        "candidate": st.column_config.TextColumn("masked candidate", width="medium"),
        "beats_positive_by": st.column_config.NumberColumn("guide: candidate − positive", format="%.3f"),
        "guide_score": st.column_config.NumberColumn("guide: candidate", format="%.3f"),
        "positive_score": st.column_config.NumberColumn("guide: positive", format="%.3f"),
        "student_score": st.column_config.NumberColumn("student: candidate", format="%.3f"),
        "student_positive_score": st.column_config.NumberColumn("student: positive", format="%.3f"),
        "block": st.column_config.TextColumn("block", help=" ".join(BLOCK_HELP.values())),
    })
    st.download_button("Download these pairs as CSV", lambda: pairs.to_csv(index=False), "masked_pairs.csv",
                       "text/csv", key="pairs_csv", on_click="ignore")

st.subheader("Per row")
st.dataframe(report.counts, hide_index=True, key="row_counts",
             column_config={"anchor": st.column_config.TextColumn("anchor", width="large")}
             | {b: st.column_config.NumberColumn(b, help=BLOCK_HELP[b]) for b in mask.blocks})
