"""Results: does the guide help? Paired differences against MNRL, scores per task, background evaluation.

Evaluation is a background job (core.training.jobs running ``gistlab eval``, one step and log per model), so
the page stays responsive; a progress bar says "model 2 of 3 · task 4 of 6" (core.training.job_progress)
and the page redraws as each model finishes. The charts read whatever results are on disk
(core.training.results): for runs that trained on the same batches (one pairing key), each arm minus MNRL
seed by seed, with its spread only where there are two seeds or more; then every model's score per
task, the panels on one score axis, each titled with its metric. Runs are named as the user named them.
While a job runs, and every few seconds otherwise, the page checks the workspace's job: when one ends
(an evaluation from here, a Train run with "Evaluate when finished", a CLI job) it redraws with its results.
"""

import os
import time
from pathlib import Path

import streamlit as st

from app.experiment_figures import curve_figure, quality_figure
from app.paired_charts import delta_reach, paired_delta_figure, seeds_text, task_scores_figure
from app.loaders import served
from app.views import OVERLAP_NOTE, label_colors, run_labels
from core.training import jobs
from core.analysis.experiment import SUMMARY
from core.analysis.experiment_summary import ExperimentSummary, curve, quality_frame
from core.errors import GistlabError
from core.training.job_progress import StepState, job_progress
from core.guides.models import DEFAULT_STUDENT
from core.training.results import MNRL, arm_label, arm_of, mark_overlaps, paired_deltas, results_table
from core.training.runs import trained_model
from core.training.status import RunState
from core.workspace import subdir

DEMO_SUMMARY = (Path(os.environ.get("GISTLAB_DEMO_DIR") or Path(__file__).resolve().parents[2] / "assets" / "demo")
                / SUMMARY)  # the Demo page's folder (app/views/demo.py)

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
        for model in models:
            served(model)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        jobs.start_job("eval", [jobs.eval_step({"model": m, "tasks": tasks}, jobs.jobs_dir() / f"eval-{stamp}-{k}.log")
                                for k, m in enumerate(models, 1)])
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


def job_stamp() -> tuple | None:
    """Changes whenever a step of the workspace's job ends or a job starts: then new results may be on disk."""
    job = jobs.current_job() or jobs.last_job()
    return None if job is None else (job.pid, tuple(step.ended for step in job.steps))


@st.fragment(run_every=2 if jobs.current_job() else 10)
def eval_progress() -> None:
    """While an evaluation runs: a progress bar by model and task. The page redraws as each model (or any
    job's step) ends, whichever page or process started it."""
    stamp = job_stamp()
    if st.session_state.setdefault("results_stamp", stamp) != stamp:
        st.session_state["results_stamp"] = stamp
        st.rerun()  # a model finished (or a job started): its results join the charts, the polling rate follows
    job = jobs.current_job()
    if job is None:
        last = jobs.last_job()
        if last is not None and last.kind == "eval":
            last_eval_problems(last)
        return
    if job.kind != "eval":
        st.info(f"The {job.describe()} is running; evaluate when it ends.")
        return
    progress = job_progress(job, {})
    finished = sum(step.state in (StepState.EVALUATED, RunState.FAILED) for step in progress.steps)
    models = len(progress.steps) or 1
    running = next((s for s in progress.steps if s.state == RunState.RUNNING), None)
    within = running.done / running.total if running is not None and running.total else 0.0
    st.progress(min((finished + within) / models, 1.0),
                text=" · ".join(part for part in ("Evaluating", progress.phase or f"{finished} of {models} models done",
                                                  progress.eta_text()) if part))  # its tasks' own rate
    if st.button("Stop evaluation"):
        jobs.request_stop()


eval_progress()


def experiment_curve() -> None:
    """The false-negative-rate curve of the workspace's experiment (``gistlab experiment``'s
    experiment.json), else of the shipped demo's; a caption when neither exists or it cannot be read."""
    st.subheader("When does the guide matter? The false-negative-rate curve")
    found = next((p for p in (subdir("experiment") / SUMMARY, DEMO_SUMMARY) if p.is_file()), None)
    if found is None:
        st.caption("No experiment yet: `gistlab experiment --false-negatives 0,0.1,0.2` trains every arm at each "
                   "rate and writes the curve (experiment.json) shown here.")
        return
    try:
        summary = ExperimentSummary.read(found)
    except GistlabError as exc:
        st.caption(f"The experiment's summary ({found}) cannot be read: {exc}")
        return
    setup = summary.setup
    where = "the shipped demo's experiment" if found == DEMO_SUMMARY else "this workspace's experiment"
    if curve(summary).empty:
        st.caption(f"{where.capitalize()} has no arm with a finished MNRL partner yet: no curve to draw.")
        return
    st.plotly_chart(curve_figure(summary), width="stretch", key="experiment-curve")
    st.caption(f"From {where} (student {setup.get('student')}, {setup.get('steps')} steps of "
               f"{setup.get('batch_size')}, seeds {', '.join(map(str, setup.get('seeds', [])))}). Each point: the arm's "
               "main score averaged over the tasks minus MNRL's at the same false-negative rate and seed (same "
               "batches), averaged over seeds; whiskers: std of the per-seed differences (from 2 seeds); the "
               "dashed line at 0 is MNRL. The false-negative rate: each batch is rebuilt so that about rate × "
               "batch size of a row's in-batch candidates are right answers for it.")
    if not quality_frame(summary).empty:
        st.plotly_chart(quality_figure(summary), width="stretch", key="experiment-quality")
        st.caption("What each masking arm removed, against the ground truth: a false negative is an in-batch "
                   "candidate that is a right answer for the row by its task's relation. Recall = false negatives "
                   "masked / present (what it caught); precision = false negatives / masked (the rest are costs: "
                   "hard negatives or unrelated candidates removed). Pooled over a run's steps, then averaged "
                   "over seeds.")


experiment_curve()

table = results_table()
for problem in table.attrs.get("unreadable", []):
    st.warning(f"Unreadable result file, left out: {problem}")
if table.empty:
    st.info("No results yet: evaluate a base model and a run above.")
    st.stop()

table = run_labels(table)
shown = st.multiselect("Compare", sorted(table["label"].unique()), default=sorted(table["label"].unique()))
table = table[table["label"].isin(shown)]
if table.empty:
    st.info("Pick at least one model or run to compare.")
    st.stop()
table = mark_overlaps(table)
metrics = table.drop_duplicates("task").set_index("task")["metric"].to_dict()

st.subheader("Does the guide help? Each arm minus MNRL, same seeds, same batches")
runs = table[table["run"].notna()]
runs = runs.assign(arm=[arm_of(loss, guide) for loss, guide in zip(runs["loss"], runs["guide"])])
groups = [(key, part) for key, part in runs.groupby("pairing", sort=False)
          if MNRL in set(part["arm"]) and part["arm"].nunique() > 1]
if not groups:
    st.info("No paired runs to compare yet: train MNRL and a GIST arm with the same seed and settings "
            "(Train page, paired comparison) and evaluate both.")
paired = [(key, part, deltas) for key, part in groups if not (deltas := paired_deltas(part, [])).empty]
reach = max((delta_reach(deltas) for *_, deltas in paired), default=None)  # every setup on one scale
for key, part, deltas in paired:
    setup = part["setup"].iloc[0]
    st.plotly_chart(paired_delta_figure(deltas, metrics, setup, reach=reach), width="stretch", key=f"paired-{key}")
    counts = deltas.groupby("arm")["seeds"].max()
    lines = [f"{arm_label(arm)}: {seeds_text(int(n))}" + ("" if n > 1 else " (no spread: train more seeds)")
             for arm, n in counts.items()]
    st.caption("Dots: mean over seeds of (arm − MNRL) on the same batches; whiskers: std of the per-seed "
               "differences, drawn only from 2 seeds up. " + " · ".join(lines))

st.subheader("Score per task")
st.plotly_chart(task_scores_figure(table, label_colors(table)), width="stretch")
if table["overlaps_gist_training"].any():
    st.caption(OVERLAP_NOTE)

columns = {"label": "Model or run", "loss": "Loss", "guide": "Guide", "seed": "Seed", "task": "Task",
           "task_type": "Task type", "metric": "Metric", "split": "Split", "main_score": "Score"}
frame = table.assign(guide=table["guide"].where(table["loss"] != "mnrl"))[list(columns)].rename(columns=columns)
st.dataframe(frame, hide_index=True)
st.download_button("Download the table as CSV", frame.to_csv(index=False), "gistlab-results.csv", mime="text/csv")
