"""Inspect a batch: which in-batch negatives the guide masks, why, and what the student makes of them.

Reads the sidebar (or the link ``?run=NAME&step=N`` that the Train page gives), draws a seeded batch
or opens the batch a run trained on at a step, and shows core.analysis.inspect's report: heatmaps of a
chosen block for guide and student, the masked pairs, per-row counts. The batch is embedded once
(cached); moving the margin only re-masks those embeddings. The heatmaps are built once per batch
and block and stay drawn in the browser (app.live_figures); a margin step sends only the mask, an
image laid over them, one pixel per cell. Each map also carries its own margin slider with the mask at
every margin the sidebar's slider offers (core.analysis.margin_grid: the training rule, computed here),
so the maps follow while it is dragged; on release the page takes that margin, and the sidebar, the
numbers and the tables follow.
"""

import base64
import io
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from app import loaders, sidebar
from app.false_negatives import DEFINITION, choose_rate
from app.judge import choose_judge
from app.views import errors_shown
from app.live_figures import figure_base, live_figures
from core.errors import GistlabError
from core.analysis.inspect import cell_labels, filter_pairs, one_thread, remask, run_student
from core.analysis.margin_grid import grid_masks, slider_margins
from core.method.groundtruth import ALL, NO_GROUND_TRUTH, in_words
from core.method.masking import BLOCK_HELP, WEAK_SHARE
from core.guides.models import guide_model_spec
from core.training.runs import list_runs, recorded_steps, resolve
from core.training.status import RunState

BLOCK_TITLES = {"a-p": "anchor vs positives", "a-a": "anchor vs anchors",
                "p-p": "positive vs positives", "a-n": "anchor vs negatives"}
ORIGINS = ("Draw from data", "A training run's step")
MASK_TINT = (214, 39, 40, 178)  # red at 70%: the masked cells
SHOWN_PAIRS = 500  # rows sent to the browser per rerun (a batch of 128 can mask ~20,000 pairs)
QUALITY_HELP = ("Checked against where each text came from (the bundled data's WordNet provenance, or a "
                "'group' column). " + DEFINITION)
WEAK_HELP = (f"Rows whose guide masks at least {WEAK_SHARE:.0%} of their candidates: its positive score is so "
             "low that the row drops out of the loss (a suspect pair).")
TICKS = 16  # index ticks per heatmap axis (the labels themselves are texts, shown on hover)
MARGINS = slider_margins()  # the sidebar slider's margins: the maps' own slider offers the same
SCRUBBER_HEIGHT = 90  # pixels below a map for its margin slider


def mask_image(masked: np.ndarray) -> str:
    """The mask as a PNG data URL, one pixel per cell: red on masked cells, clear elsewhere (~1-3 KB at batch 128).

    Laid over a heatmap as a layout image, a new mask is a new image source, which the browser swaps
    in place (app.live_figures draws it without smoothing, so cells keep sharp edges).
    """
    image = Image.fromarray(masked.astype(np.uint8), "P")
    image.putpalette([0, 0, 0, *MASK_TINT[:3]])
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=bytes([0, MASK_TINT[3]]))
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def heatmap(scores, other, side, labels, title: str, names: tuple[str, str], side_name: str) -> go.Figure:
    """Cosines [B, C] under a layout image for the mask (no source yet), and a strip of one value per row.

    ``other`` [B, C] is the other model's cosine of the same cell (None without one); ``labels``
    (rows, columns) name the texts, so the hover shows both texts and both scores. Nothing here
    depends on the margin: the mask is the image's source (:func:`mask_image`), given per rerun.
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
            go.Heatmap(z=side.numpy().astype(np.float32)[:, None], y=rows, coloraxis="coloraxis", xaxis="x2",
                       hovertemplate=f"<b>row</b> %{{y}}<br>{side_name} %{{z:.3f}}<extra></extra>"),
        ],
        layout=dict(
            title=dict(text=title, subtitle=dict(
                text=f"red: masked by the guide · right strip: {side_name} · hover a cell for both texts")),
            height=height, margin=dict(l=10, r=10, t=80, b=10), template="plotly_white",
            images=[dict(xref="x", yref="y", x=-0.5, y=-0.5,
                         sizex=n_cols, sizey=n_rows, xanchor="left", yanchor="top", sizing="stretch",
                         layer="above")],
            xaxis=dict(domain=[0, 0.92], title=dict(text="candidate (batch column)", standoff=8),
                       **ticks(n_cols)),
            xaxis2=dict(domain=[0.94, 1], showticklabels=False, ticks="",  # titled below: above, it hit the subtitle
                        title=dict(text="g" if side_name.startswith("guide") else "pos.", font=dict(size=11))),
            yaxis=dict(autorange="reversed", title=dict(text="batch row", standoff=8), **ticks(n_rows)),
            coloraxis=dict(colorscale="Viridis", colorbar=dict(title="cosine")),
        ),
    )


def with_scrubber(figure: go.Figure, sources: list[str], strategy: str) -> go.Figure:
    """The figure with a margin slider of its own: step k shows ``sources[k]``, the mask at ``MARGINS[k]``.

    A step only swaps the mask image in the browser (``relayout`` of the layout image's source), so the
    map follows while the slider is dragged. The slider's position is set per rerun (app.live_figures'
    ``active``), so it always starts at the page's margin.
    """
    steps = [dict(method="relayout", label=f"{m:+.2f}", value=f"{m:.2f}", args=[{"images[0].source": source}])
             for m, source in zip(MARGINS, sources)]
    margin = figure.layout.margin
    return figure.update_layout(
        height=figure.layout.height + SCRUBBER_HEIGHT, margin=dict(l=margin.l, r=margin.r, t=margin.t,
                                                                   b=margin.b + SCRUBBER_HEIGHT),
        sliders=[dict(steps=steps, active=0, x=0, len=0.92, y=0, yanchor="top", pad=dict(t=48, b=0),
                      ticklen=3, minorticklen=0, font=dict(color="rgba(0,0,0,0)"),  # 71 labels would overlap
                      currentvalue=dict(prefix=f"drag: {strategy} margin ", font=dict(size=12, color="#444")))])


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
        done = runs[runs["state"] == RunState.COMPLETED]
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
           "right of each map is the row's positive score g (guide) or the student's positive score.")

with errors_shown():
    follow_link()
    sidebar.start()
    origin = st.sidebar.radio("Batch", ORIGINS, key="batch_origin")
    if origin == ORIGINS[0]:
        if "run" in st.query_params:  # the URL names what is shown: no run now
            del st.query_params["run"]
            st.query_params.pop("step", None)
            st.session_state.pop("inspect_link", None)
        ds, data_key = sidebar.choose_data()
        guide, student = sidebar.choose_models()
        size, seed, task = sidebar.choose_batch(ds)
        rate = choose_rate(ds)
        data_key += f"|false-negatives={rate:g}" if rate else ""  # added rows: their ids mean other texts
        batch = loaders.drawn_batch(data_key, size, seed, task, ds, rate)
        student_label = student
        settings = sidebar.choose_settings()
        sidebar.show_current(size)
    else:
        run, step = choose_run_step()
        batch, config = loaders.run_batch(run, step)
        data_key, student, defaults = f"run:{run}", run_student(run), config.masking
        guide = guide_model_spec(config.guide, config.student)  # "self": the student before training
        name = Path(run).name
        student_label = f"final model of run {name}" if student != config.student else f"untrained {student}: no saved model"
        st.sidebar.caption(f"Step {step} of run {name} · guide {guide} · student: {student_label}")
        settings = sidebar.choose_settings(defaults, data_key)
        sidebar.update(sidebar.RUN_LAB, guide=guide, student=student or "", seed=config.seed, task=None)
        sidebar.show_current(len(batch), data=f"step {step} of run {name}", store=sidebar.RUN_LAB)
        sidebar.publish(sidebar.RUN_LAB)  # the URL names the run's margin settings in use
    guide, settings = choose_judge(guide, student, settings)  # the self-judge: the student where the guide was
    batch_key = (data_key, tuple(batch.rows), guide, student)
    report = remask(loaders.batch_report(*batch_key, batch), settings)


def checked(quality, block: str) -> str:
    """The false negatives of ``block`` (or ``all``) caught out of those present, precision and recall, in words."""
    if quality is None:
        return NO_GROUND_TRUTH
    row = quality.loc[block]
    pct = lambda x: "–" if x != x else f"{x:.0%}"  # noqa: E731 (NaN: nothing masked)
    if not row.false_negatives:
        return f"no false negatives · precision {pct(row.precision)}"
    return (f"false negatives caught {row.caught}/{row.false_negatives} · precision {pct(row.precision)} · "
            f"recall {pct(row.recall)}")


def numbers(report) -> None:
    """The masked shares per block with their precision and recall, and the weak-positive rows."""
    mask = report.mask
    quality = None if report.quality is None else report.quality[report.quality["task"] == ALL].set_index("block")
    cols = st.columns(2 + len(mask.blocks))
    cols[0].metric("Masked, all blocks", f"{mask.masked_fraction():.1%}", help=QUALITY_HELP)
    cols[0].caption(checked(quality, ALL))
    if quality is not None:
        st.caption("Against the ground truth: " + in_words(quality.loc[ALL]) + ".", help=QUALITY_HELP)
    for col, (block, fraction) in zip(cols[1:], mask.block_fractions().items()):
        col.metric(block, f"{fraction:.1%}", help=f"{BLOCK_TITLES[block]}: {BLOCK_HELP[block]}")  # a full title
        # in the label was cut off ("a-p (anchor vs posi...") in six columns
        col.caption(checked(quality, block))
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
        with st.expander("False negatives, precision and recall per task"):
            per_task = report.quality[(report.quality["task"] != ALL) & (report.quality["block"] == ALL)]
            st.dataframe(per_task[["task", "candidates", "masked", "false_negatives", "caught", "missed", "precision",
                                   "recall", "share_related", "share_unrelated"]],
                         hide_index=True, key="quality_per_task", column_config={
                             "false_negatives": st.column_config.NumberColumn("false negatives present"),
                             "precision": st.column_config.NumberColumn(format="percent"),
                             "recall": st.column_config.NumberColumn(format="percent"),
                             "share_related": st.column_config.NumberColumn("related hard negatives", format="percent"),
                             "share_unrelated": st.column_config.NumberColumn("unrelated", format="percent")})


@st.cache_resource(max_entries=16, show_spinner=False)
def map_bases(batch_key: tuple, _report, block: str, student_label: str, rule: tuple) -> list[str]:
    """The block's heatmaps (guide, and student if any) as JSON without their mask, each with its margin
    slider and the block's mask at every margin of it: built once per batch, block and ``rule``.

    ``batch_key`` names ``_report``'s embeddings (loaders.batch_report's key); ``rule`` is the margin
    settings but the margin (strategy, contrast blocks, floor), which the grid of masks depends on.
    """
    mask, labels = _report.mask, cell_labels(_report.batch, block)
    with one_thread():
        grid = grid_masks(_report.batch, _report.guide, _report.settings, MARGINS)[block].numpy()
    sources = [mask_image(masked) for masked in grid]
    student = None if _report.student_scores is None else _report.student_scores[block]
    figures = [heatmap(mask.guide_scores[block], student, mask.positive_scores, labels,
                       f"Guide ({batch_key[2]}): {block}", ("guide", "student"), "guide: positive score g")]
    if student is not None:
        figures.append(heatmap(student, mask.guide_scores[block], _report.student_scores["a-p"].diagonal(), labels,
                               f"Student ({student_label}): {block}", ("student", "guide"), "positive score"))
    return [figure_base(with_scrubber(figure, sources, rule[0])) for figure in figures]


def maps(report, batch_key: tuple, student_label: str, store: str) -> None:
    """The two heatmaps of one block, in one frame that stays mounted (a fragment here would remount it
    whenever a rerun is cut short by the next slider step, reloading plotly.js). A margin chosen on a
    map's own slider becomes the page's (settings ``store``): the page reruns at it."""
    mask, settings = report.mask, report.settings
    block = st.radio("Block", mask.blocks, horizontal=True, key="heatmap_block",
                     format_func=lambda b: f"{b}: {BLOCK_TITLES[b]}", help=" ".join(BLOCK_HELP[b] for b in mask.blocks))
    rule = (settings.margin_strategy, settings.contrast_anchors, settings.contrast_positives, settings.positive_floor)
    bases = map_bases(batch_key, report, block, student_label, rule)
    side_by_side = len(report.batch) <= 48  # larger batches get the full width each
    step = int(np.abs(np.asarray(MARGINS) - settings.margin).argmin())
    chosen = live_figures(bases, [[mask_image(mask.masked_candidates(block).numpy())]] * len(bases), key="maps",
                          columns=2 if side_by_side else 1, active=step)
    if chosen and chosen.get("at") != st.session_state.get("maps_scrubbed"):  # a release not applied yet
        st.session_state["maps_scrubbed"] = chosen.get("at")
        if float(chosen["value"]) != settings.margin:
            sidebar.update(store, margin=float(chosen["value"]))
            st.rerun()
    st.caption("Drag a map's own margin slider to watch the mask change; on release the page takes that margin.")
    if report.student_scores is None:
        st.info("Name a student model in the sidebar to compare its scores.")


def pairs_table(report) -> None:
    """The masked pairs (filtered by block, student preference and text), their CSV, and the per-row counts."""
    mask = report.mask
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
        st.dataframe(pairs.nlargest(SHOWN_PAIRS, "beats_positive_by"), hide_index=True, key="masked_pairs",
                     column_config={
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
    st.dataframe(report.counts, hide_index=True, key="row_counts", column_config={
        "row": st.column_config.NumberColumn("batch row"),
        "dataset_row": st.column_config.NumberColumn("data row", help="The row's index in the data set"),
        "anchor": st.column_config.TextColumn("anchor", width="large"),
        "positive_score": st.column_config.NumberColumn("guide: positive", format="%.3f"),
        "threshold": st.column_config.NumberColumn("threshold t", format="%.3f"),
        "total": st.column_config.NumberColumn("masked, all blocks"),
        "fraction": st.column_config.NumberColumn("masked share", format="percent"),
        "weak": st.column_config.CheckboxColumn("weak positive", help=WEAK_HELP),
    } | {b: st.column_config.NumberColumn(f"masked in {b}", help=BLOCK_HELP[b]) for b in mask.blocks})


with st.container():  # one slot whether or not the weak-rows expander shows: the maps' frame keeps its place
    numbers(report)
maps(report, batch_key, student_label, sidebar.LAB if origin == ORIGINS[0] else sidebar.RUN_LAB)
pairs_table(report)
