"""Train: launch a short fine-tune or a paired gist/mnrl comparison in the background, watch it, stop it.

The run is a separate process (core.jobs) that writes its progress into its run directory; this page
only reads those files, every two seconds while a job runs, so a rerun, a closed tab or a second tab
neither kills nor duplicates it. Past runs are listed below with links into the other pages.
"""

import streamlit as st

from app.views import curves_figure, page_link
from core import jobs, runs
from core.errors import GistlabError
from core.masking import STRATEGIES
from core.models import DEFAULT_GUIDE, DEFAULT_STUDENT, GUIDE_SPECS

ARMS = {
    "Paired comparison: gist, then mnrl (same seed, same batches)": ["gist", "mnrl"],
    "gist: this engine's guided loss": ["gist"],
    "mnrl: MultipleNegativesRankingLoss, no guide": ["mnrl"],
    "gist-st: sentence-transformers' GISTEmbedLoss as it is": ["gist-st"],
}

st.title("Train")
st.caption("Short fine-tunes run in the background: you may switch pages or close the tab meanwhile.")


def show_run(run_dir, metrics, running: bool) -> None:
    """Progress bar with ETA for one run, or why it has none (failed, not started, deleted)."""
    try:
        status = runs.read_status(run_dir)
    except GistlabError:  # no status yet: starting, failed before its first write, or deleted
        log = run_dir / "train.log"
        last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
        if not run_dir.is_dir():
            st.warning(f"{run_dir.name}: the run folder is gone (deleted?); start a new run.")
        elif last and not running:
            st.error(f"{run_dir.name}: {last[0]}")
        elif not log.is_file():
            st.caption(f"{run_dir.name}: " + ("waits for the run before it." if running else "never started."))
        else:
            st.caption(f"{run_dir.name}: loading models and data…")
        return
    state, done = status.get("state", "?"), int(status.get("steps_done") or 0)
    seconds = [] if metrics is None else list(metrics["step_seconds"])
    fraction, eta = jobs.progress(done, int(status.get("total_steps") or 0), seconds)
    left = f", about {eta:.0f} s left" if eta is not None and state == "running" else ""
    st.progress(fraction, text=f"**{run_dir.name}** · {state} · step {done} of {status.get('total_steps') or '?'}{left}")
    if status.get("error"):
        st.error(f"{run_dir.name}: {status['error']}")


@st.fragment(run_every=2 if jobs.current_job() else None)
def live_job() -> None:
    """The running (or last) job: one progress bar per run, curves, and Stop."""
    job = jobs.current_job()
    shown = job or jobs.last_job()
    if shown is None or shown.kind == "eval":
        return
    if job is None and st.session_state.get("watching_job") == shown.pid:
        del st.session_state["watching_job"]
        st.rerun()  # the job ended: redraw the whole page once, which also stops the polling
    if job is not None:
        st.session_state["watching_job"] = job.pid
    st.subheader("Current job" if job else "Last job")
    curves = {d.name: runs.read_metrics(d) for d in shown.run_dirs if (d / runs.METRICS).is_file()}
    for run_dir in shown.run_dirs:
        show_run(run_dir, curves.get(run_dir.name), job is not None)
    if curves:
        left, right = st.columns(2)
        left.plotly_chart(curves_figure(curves, "loss", "Loss"), width="stretch")
        right.plotly_chart(curves_figure(curves, "masked_fraction", "Masked fraction"), width="stretch")
    stopping = job is not None and jobs.stop_requested()
    if job is not None and not stopping and st.button("Stop", icon=":material/stop_circle:"):
        jobs.request_stop()
        stopping = True
    if stopping:
        st.info("Stopping: the run ends cleanly after its current step and keeps its model.")


live_job()

with st.expander("Start a run", expanded=jobs.current_job() is None), st.form("train_form"):
    arm_label = st.selectbox("What to run", list(ARMS))
    models, schedule, masking = st.columns(3)
    settings = {
        "student": models.text_input("Student", DEFAULT_STUDENT).strip(),
        "guide": models.text_input("Guide", DEFAULT_GUIDE, help=GUIDE_SPECS).strip(),
        "data": models.text_input("Data", "bundled", help="bundled, a CSV/TSV/JSONL/Parquet file, "
                                  "or a Hugging Face dataset id when online").strip(),
        "batch_size": schedule.number_input("Batch size", 2, 1024, 32),
        "steps": schedule.number_input("Steps", 1, 100_000, 20),
        "lr": schedule.number_input("Learning rate", 1e-7, 1e-2, 2e-5, format="%.1e"),
        "seed": schedule.number_input("Seed", 0, 2**31 - 1, 0),
        "margin_strategy": masking.selectbox("Margin strategy", STRATEGIES),
        "margin": masking.number_input("Margin", -1.0, 1.0, 0.0, 0.01),
        "contrast_anchors": masking.checkbox("Contrast anchors (a-a block)", True),
        "contrast_positives": masking.checkbox("Contrast positives (p-p block)", True),
        "homogeneous": schedule.checkbox("One task per batch (as in the paper)", False),
    }
    start = st.form_submit_button("Start training", type="primary")

if start:
    from core.train import TrainConfig  # loads torch: only when a run is really asked for

    try:
        if not all(settings[name] for name in ("student", "guide", "data")):
            raise GistlabError("Student, guide and data must all be named: the defaults work offline.")
        for arm in ARMS[arm_label]:
            TrainConfig(**settings, loss=arm)  # bad settings fail here, not in the background
        jobs.start_training(settings, ARMS[arm_label])
    except GistlabError as exc:
        st.error(str(exc))
    else:
        st.rerun()  # redraw with the new job's progress on top


st.subheader("Past runs")
table = runs.list_runs()
if table.empty:
    st.info("No runs yet: start one above.")
else:
    columns = ["run", "state", "loss", "seed", "steps_done", "total_steps", "student", "guide", "data", "started"]
    picked = st.dataframe(table[columns], hide_index=True, on_select="rerun", selection_mode="single-row",
                          key="past_runs")
    if picked.selection.rows:
        name = str(table.iloc[picked.selection.rows[0]]["run"])
        links = st.columns(3)
        with links[0]:
            page_link("results.py", f"Evaluate {name}", ":material/leaderboard:", run=name)
        with links[1]:
            page_link("inspect.py", "Inspect its batches", ":material/grid_on:", run=name)
    else:
        st.caption("Select a run to open it in the other pages.")
