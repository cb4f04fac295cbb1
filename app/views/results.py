"""Results: evaluate runs and base models on the bundled MTEB subset in the background, then compare.

Evaluation is a background job (core.jobs running ``gistlab eval``), so the page stays responsive;
the charts read whatever results are on disk (core.results): per task, per task type, a radar of
type averages, and each loss arm's delta against a base model with its spread over seeds.
"""

import time
from pathlib import Path

import plotly.express as px
import streamlit as st

from app.palette import ARM_COLORS
from app.views import OVERLAP_NOTE, label_colors, radar_figure, scores_figure
from core import jobs
from core.errors import GistlabError
from core.models import DEFAULT_STUDENT
from core.results import deltas, labelled, mark_overlaps, results_table
from core.runs import trained_model
from core.workspace import subdir

st.title("Results")

trained = sorted(d.name for d in subdir("runs").iterdir() if trained_model(d))
asked = st.query_params.get("run")
if asked and asked not in trained:
    st.error(f"Run {asked!r} has no trained model (still running, failed, or deleted): "
             "pick another run below or train it on the Train page.")

with st.form("eval_form"):
    st.markdown("**Evaluate** (in the background; results already on disk are reused)")
    picked_runs = st.multiselect("Runs", trained, default=[asked] if asked in trained else [],
                                 placeholder="Pick runs" if trained else "No trained run yet")
    base_models = st.text_input("Base models (comma-separated)", DEFAULT_STUDENT)
    tasks = st.text_input("Tasks", "bundled", help="bundled (the WordNet mini benchmark, offline), or "
                          "mteb task names such as STSBenchmark when online")
    evaluate = st.form_submit_button("Evaluate", type="primary")

if evaluate:
    models = [str(subdir("runs") / r) for r in picked_runs]
    models += [m.strip() for m in base_models.split(",") if m.strip()]
    try:
        if not models or not tasks.strip():
            raise GistlabError("Pick at least one run or base model, and name the tasks (bundled works offline).")
        log = str(jobs.jobs_dir() / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.log")
        jobs.start_job("eval", [jobs.Step(jobs.cli("eval", "--model", m, "--tasks", tasks), log) for m in models])
    except GistlabError as exc:
        st.error(str(exc))
    else:
        st.rerun()  # redraw with the job's progress


def last_eval_problems(job: jobs.Job) -> None:
    """What the finished evaluation could not do: CLI errors and skipped tasks."""
    errors, skipped = job.problems()
    for error in errors:
        st.error(f"The last evaluation failed: {error}")
    for line in skipped:
        st.warning(f"The last evaluation {line}")


@st.fragment(run_every=2 if jobs.current_job() else None)
def eval_progress() -> None:
    """While an evaluation runs: its log's last lines, and a refresh of the page when it ends."""
    job = jobs.current_job()
    if job is None:
        if st.session_state.pop("watching_eval", False):
            st.rerun()
        last = jobs.last_job()
        if last is not None and last.kind == "eval":
            last_eval_problems(last)
        return
    if job.kind != "eval":
        st.info(f"The {job.describe()} is running; evaluate when it ends.")
        return
    st.session_state["watching_eval"] = True
    log = Path(job.steps[0].log)
    lines = log.read_text(errors="replace").splitlines()[-3:] if log.is_file() else []
    st.info(f"Evaluating {len(job.steps)} model(s)… " + " · ".join(lines))
    if st.button("Stop evaluation"):
        jobs.request_stop()


eval_progress()

table = results_table()
for problem in table.attrs.get("unreadable", []):
    st.warning(f"Unreadable result file, left out: {problem}")
if table.empty:
    st.info("No results yet: evaluate a base model and a run above.")
    st.stop()

table = labelled(table)
shown = st.multiselect("Compare", sorted(table["label"].unique()), default=sorted(table["label"].unique()))
table = table[table["label"].isin(shown)]
if table.empty:
    st.info("Pick at least one model or run to compare.")
    st.stop()
table = mark_overlaps(table)

st.plotly_chart(scores_figure(table, "task", "Main score per task"), width="stretch")
per_type, radar = st.columns(2)
per_type.plotly_chart(scores_figure(table, "task_type", "Main score per task type"), width="stretch")
radar.plotly_chart(radar_figure(table, label_colors(table)), width="stretch")

bases = sorted(table.loc[table["run"].isna(), "model"].unique())
if bases and table["run"].notna().any():
    base = st.selectbox("Deltas against base model", bases)
    delta = deltas(table, base)
    fig = px.bar(delta, x="task", y="delta", color="loss", barmode="group", error_y="spread", color_discrete_map=ARM_COLORS,
                 hover_data=["runs"], title=f"Score minus {base} (bars: mean over seeds, whiskers: std)")
    st.plotly_chart(fig, width="stretch")
if table["overlaps_gist_training"].any():
    st.caption(OVERLAP_NOTE)

columns = ["label", "model", "run", "loss", "seed", "task", "task_type", "split", "main_score"]
st.dataframe(table[columns], hide_index=True)
st.download_button("Download the table as CSV", table[columns].to_csv(index=False), "gistlab-results.csv",
                   mime="text/csv")
