"""Train: launch a short fine-tune or a paired gist/mnrl comparison in the background, watch it, manage runs.

The run is a separate process (core.training.jobs) that writes its progress into its run directory; this page
only reads those files, every two seconds while a job runs, so a rerun, a closed tab or a second tab
neither kills nor duplicates it. Settings, models and data are checked (core.training.preflight) before the
job starts. Past runs can be named, compared, deleted and opened in the other pages.
"""


import pandas as pd
import streamlit as st

from app import sidebar
from app.palette import arm_of, run_colors
from app.loaders import served
from app.views import curves_figure, page_link
from core.training import jobs
from core.training import runs
from core.errors import GistlabError
from core.training.config import TrainConfig
from core.training.job_progress import JobProgress, StepState, job_progress
from core.training.status import RunState
from core.method.margin import MARGIN_RANGE, STRATEGIES
from core.method.masking import BLOCK_HELP
from core.guides.models import DEFAULT_GUIDE, DEFAULT_STUDENT

ARMS = {
    "Paired comparison: gist, then mnrl (same seed, same batches)": ["gist", "mnrl"],
    "gist: this engine's guided loss": ["gist"],
    "mnrl: MultipleNegativesRankingLoss, no guide": ["mnrl"],
    "gist-st: sentence-transformers' GISTEmbedLoss as it is": ["gist-st"],
}
EVAL_TASKS = "bundled"
NOT_RUN = "not run"  # a waiting step of a job that ended
STATE_ICONS = {StepState.WAITING: ":material/hourglass_empty:", RunState.STARTING: ":material/hourglass_top:",
               RunState.RUNNING: ":material/play_circle:", RunState.COMPLETED: ":material/check_circle:",
               StepState.EVALUATED: ":material/check_circle:", RunState.STOPPED: ":material/stop_circle:",
               RunState.INTERRUPTED: ":material/stop_circle:", RunState.FAILED: ":material/error:",
               RunState.DIED: ":material/error:", StepState.DELETED: ":material/folder_off:",
               NOT_RUN: ":material/remove:"}
MASK_HELP = "Share of in-batch candidates the guide masked per step, over the blocks: " + " ".join(
    f"{block}: {text}" for block, text in BLOCK_HELP.items())

st.title("Train")
st.caption("Short fine-tunes run in the background: you may switch pages or close the tab meanwhile.")




def curves(metrics: dict[str, pd.DataFrame], colors: dict[str, str], kinds: dict[str, str], key: str) -> None:
    """Loss (a panel per kind of loss: their values are not on one scale) and masked fraction side by
    side; markers make a single step visible."""
    left, right = st.columns(2)
    left.plotly_chart(curves_figure(metrics, "loss", "Loss", colors, kinds), width="stretch", key=f"{key}_loss")
    if len(set(kinds.values())) > 1:
        left.caption("Each loss on its own axis: compare each curve with itself over the steps, and runs by "
                     "their evaluation (Results page), not by the level of their losses.")
    right.plotly_chart(curves_figure(metrics, "masked_fraction", "Masked fraction", colors), width="stretch",
                       key=f"{key}_masked")
    right.caption("Masked fraction: candidates the guide removed (0 for mnrl, which has no guide).",
                  help=MASK_HELP)


def run_config(path) -> dict:
    try:
        return runs.read_config(path)
    except GistlabError:
        return {}


def run_arm(path) -> str:
    """The palette arm of a run folder, from its config (its loss, and its guide for a guided loss); base
    without a config."""
    config = run_config(path)
    return arm_of(config.get("loss"), config.get("guide")) if config else "base"


def run_loss(path) -> str:
    """The loss a run trains with (gist, mnrl, gist-st), from its config."""
    return str(run_config(path).get("loss") or "?")


def job_signature(job: jobs.Job, states: list[str]) -> tuple:
    """Changes whenever a step of the job starts or ends or a run changes state (starting, running,
    completed...): then the whole page, Past runs included, is redrawn."""
    return job.pid, tuple((s.started, s.ended) for s in job.steps), tuple(states)


def training_progress(job: jobs.Job | None) -> tuple[JobProgress, dict[str, pd.DataFrame]] | None:
    """The progress of a training job (None for none, or for an evaluation, audit or cache job, which Results
    and Audit show) and its runs' metrics: the one source of the bar, the step lines and Past runs' counts."""
    if job is None or job.kind in ("eval", "audit", "cache"):
        return None
    metrics = {d.name: runs.read_metrics(d) for d in job.run_dirs if (d / runs.METRICS).is_file()}
    return job_progress(job, metrics), metrics


@st.fragment(run_every=2 if jobs.current_job() else None)
def live_job() -> None:
    """The running (or last) job: one progress bar with the job's ETA, each run's state, curves, Stop."""
    job = jobs.current_job()
    shown = job or jobs.last_job()
    found = training_progress(shown)
    if found is None:
        return
    progress, metrics = found
    signature = job_signature(shown, [step.state for step in progress.steps]) + (job is not None,)
    if st.session_state.setdefault("job_signature", signature) != signature:
        st.session_state["job_signature"] = signature
        st.rerun()  # a run started, changed state or ended: redraw Past runs too (and stop polling at the end)
    st.subheader("Current job" if job else "Last job")
    if job is not None:
        st.progress(progress.fraction, text=progress.bar_text())
    for step in progress.steps:
        state = NOT_RUN if job is None and step.state == StepState.WAITING else step.state
        what = "evaluation of" if step.kind == "eval" else step.arm
        count = step.count_text()
        line = f"{STATE_ICONS.get(state, '')} {what} **{step.run}** · {state}" + (f" · {count}" if count else "")
        if state == StepState.DELETED:
            st.warning(f"{line}: {step.error}", icon=":material/folder_off:")
        elif step.error:
            st.error(f"{line}: {step.error}", icon=":material/error:")
        else:
            st.markdown(line)
        if step.warning:
            st.warning(f"{step.run}: {step.warning}", icon=":material/warning:")
    drawn = {name: m for name, m in metrics.items() if len(m)}
    if drawn:
        curves(drawn, run_colors({d.name: run_arm(d) for d in shown.run_dirs if d.name in drawn}),
               {d.name: run_loss(d) for d in shown.run_dirs if d.name in drawn}, "live")
    elif job is not None:
        st.caption("The curves appear after the first training step.")
    stopping = job is not None and jobs.stop_requested()
    if job is not None and not stopping and st.button("Stop", icon=":material/stop_circle:"):
        jobs.request_stop()
        stopping = True
    if stopping:
        st.info("Stopping: the run ends cleanly after its current step and keeps its model.")


def launch(settings: dict, arms: list[str], name: str, evaluate: bool) -> None:
    """Check everything a run needs (with a counted progress line), then start the job."""
    with st.status("Checking the settings (1 of 3)…", expanded=False) as checking:
        from core.training.preflight import check_launch

        if not all(settings[key] for key in ("student", "guide", "data")):
            raise GistlabError("Student, guide and data must all be named: the defaults work offline.")
        for key in ("student", "guide", "data"):
            served(settings[key])
        configs = [TrainConfig.from_dict({**settings, "loss": arm}) for arm in arms]  # bad settings fail here
        check_launch(configs, lambda k, what: checking.update(label=f"Checking the {what} ({k + 1} of 3)…"))
        checking.update(label="Settings, models and data are fine: starting.", state="complete")
    jobs.start_training(settings, arms, name=name, evaluate_on=EVAL_TASKS if evaluate else None)


live_job()

with st.expander("Start a run", expanded=jobs.current_job() is None):
    data = sidebar.job_data(st.container())  # an upload, mapped like the analysis pages' (Inspect's code path)
    shared = sidebar.lab()  # the analysis pages' settings are the form's starting values
    form = st.form("train_form")
with form:
    top = st.columns([2, 1])
    arm_label = top[0].selectbox("What to run", list(ARMS))
    run_name = top[1].text_input("Name (optional)", placeholder="e.g. margin 0.1 on my data",
                                 help="Shown in Past runs; the arm is added for a paired run.")
    models, schedule, masking = st.columns(3)
    settings = {
        "student": models.text_input("Student", shared.student or DEFAULT_STUDENT).strip(),
        "guide": models.text_input("Guide", shared.guide or DEFAULT_GUIDE, help="bundled:minilm-l6, "
                                   "bundled:mpnet-base, self (the student before training), a model folder, "
                                   "or a Hub id").strip(),
        "data": models.text_input("Data", data or "bundled", help="bundled, a CSV/TSV/JSONL/Parquet file, "
                                  "or a Hugging Face dataset id when online; an upload above fills it in").strip(),
        "batch_size": schedule.number_input("Batch size", 2, 1024, shared.batch_size),
        "steps": schedule.number_input("Steps", 1, 100_000, 20),
        "lr": schedule.number_input("Learning rate", 1e-7, 1e-2, 2e-5, format="%.1e"),
        "seed": schedule.number_input("Seed", 0, 2**31 - 1, shared.seed),
        "margin_strategy": masking.selectbox("Margin strategy", STRATEGIES,
                                             index=STRATEGIES.index(shared.margin_strategy)),
        "margin": masking.number_input("Margin", MARGIN_RANGE[0], MARGIN_RANGE[1], shared.margin, MARGIN_RANGE[2],
                                       help="A candidate is masked when the guide scores it above t (g: its positive's score)"),
        "contrast_anchors": masking.checkbox("Contrast anchors (a-a block)", shared.contrast_anchors,
                                             help=BLOCK_HELP["a-a"]),
        "contrast_positives": masking.checkbox("Contrast positives (p-p block)", shared.contrast_positives,
                                               help=BLOCK_HELP["p-p"]),
        "homogeneous": schedule.checkbox("One task per batch (as in the paper)", True,
                                         help="Every batch drawn from one task of the data's 'task' column, so "
                                              "its in-batch negatives are hard; needs a task column."),
    }
    mini_batch = schedule.number_input(
        "Mini-batch size (0 = off)", 0, 1024, 0,
        help="GradCache: the student embeds the batch this many texts at a time, so a big batch fits in "
             "the memory of a small one; same loss and gradients, about 1.5x the step time.")
    floor = masking.number_input("Positive floor (blank: off)", -1.0, 1.0,
                                 shared.positive_floor if shared.floor_on else None, 0.05,
                                 help="A weak positive's threshold is raised to the floor, t = max(t, floor); "
                                      "blank: the library's rule")
    settings |= {"mini_batch_size": mini_batch} if mini_batch else {}
    settings |= {"positive_floor": floor} if floor is not None else {}
    rate = masking.number_input(
        "False-negative rate (0 = the data as is)", 0.0, 0.5, 0.0, 0.05,
        help="Rebuild each batch so about this share of a row's in-batch candidates are right answers (rows of "
             "its meaning added from the data; needs ground truth: bundled or a 'group' column). Every arm of a "
             "paired run trains on the same batches; the run records the rate (gistlab train --false-negatives).")
    settings |= {"false_negatives": rate} if rate else {}
    evaluate = schedule.checkbox("Evaluate when finished", False,
                                 help="Run the bundled benchmark (gistlab eval) on each finished run; "
                                      "the scores appear on the Results page.")
    start = st.form_submit_button("Start training", type="primary")

if start:
    try:
        launch(settings, ARMS[arm_label], run_name.strip(), evaluate)
    except GistlabError as exc:
        st.error(str(exc), icon=":material/error:")
    else:
        sidebar.update(guide=settings["guide"], student=settings["student"], batch_size=settings["batch_size"],
                       seed=settings["seed"], margin_strategy=settings["margin_strategy"], margin=settings["margin"],
                       contrast_anchors=settings["contrast_anchors"],
                       contrast_positives=settings["contrast_positives"], floor_on=floor is not None,
                       **({"positive_floor": floor} if floor is not None else {}))
        st.rerun()  # redraw with the new job's progress on top


def _forget_delete() -> None:
    st.session_state.pop("delete_pending", None)


@st.dialog("Delete runs", on_dismiss=_forget_delete)
def confirm_delete(paths: list[str]) -> None:
    """Say what goes (names and size) and delete only on a second click (the pending paths live in
    the session, so the question survives reruns until answered or dismissed)."""
    size = sum(runs.run_bytes(p) for p in paths)
    names = ", ".join(p.rsplit("/", 1)[-1] for p in paths)
    st.markdown(f"Delete **{len(paths)} run(s)** ({size / 2**20:.0f} MB): {names}?")
    st.caption("Their model, masks, metrics and results are removed from disk; this cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Delete", type="primary", icon=":material/delete:"):
        try:
            for path in paths:
                runs.delete_run(path)
        except GistlabError as exc:
            st.error(str(exc), icon=":material/error:")
            return
        _forget_delete()
        st.session_state.pop("past_runs", None)
        st.rerun()
    if no.button("Cancel"):
        _forget_delete()
        st.rerun()


def compare(picked: pd.DataFrame) -> None:
    """The picked runs' curves on one pair of charts (arm colours, later runs lighter) and their settings."""
    label = picked["name"].where(picked["name"] != "", picked["run"])
    metrics = {lab: runs.read_metrics(path) for lab, path in zip(label, picked["path"])}
    colors = run_colors(dict(zip(label, map(run_arm, picked["path"]))))
    if any(len(m) for m in metrics.values()):
        curves({k: m for k, m in metrics.items() if len(m)}, colors,
               dict(zip(label, map(run_loss, picked["path"]))), "compare")
    settings = ["state", "loss", "guide", "student", "data", "margin", "margin_strategy", "batch_size", "lr",
                "seed", "steps_done", "final_loss", "duration"]
    st.dataframe(picked.assign(label=label).set_index("label")[settings].T.astype(str), width="stretch")
    evaluated(picked, label)


def evaluated(picked: pd.DataFrame, label: pd.Series) -> None:
    """The picked runs compared by their evaluation (mean score over the tasks each was evaluated on, and
    its difference from the first picked run): their losses are not comparable across kinds."""
    from core.training.results import results_table

    scores = results_table(list(picked["path"]))
    if scores.empty:
        st.caption("Evaluate these runs (Results page) to compare them by score: the final losses of different "
                   "losses are not on one scale.")
        return
    means = scores.groupby("run")["main_score"].mean()
    names = dict(zip(picked["run"], label))
    frame = pd.DataFrame({"run": [names.get(r, r) for r in means.index], "mean score": means.values,
                          "tasks": scores.groupby("run")["task"].nunique().values})
    first = frame["mean score"].iloc[0]
    st.dataframe(frame.assign(**{f"− {frame['run'].iloc[0]}": frame["mean score"] - first}), hide_index=True,
                 key="compare_scores", column_config={"mean score": st.column_config.NumberColumn(format="%.4f"),
                                                      f"− {frame['run'].iloc[0]}": st.column_config.NumberColumn(
                                                          format="%+.4f")})
    st.caption("Mean evaluation score over the tasks each run was evaluated on (the same tasks for a fair "
               "comparison; the Results page pairs arms by seed).")


@st.fragment(run_every=2 if jobs.current_job() else None)
def past_runs() -> None:
    """Every run, newest first: open, rename, compare or delete them. While a job runs this redraws every
    two seconds, its runs' state and steps from the job's progress (the bar's source)."""
    st.subheader("Past runs")
    table = runs.list_runs()
    if table.empty:
        st.info("No runs yet: start one above.")
        return
    table = runs.with_display_columns(table)
    found = training_progress(jobs.current_job())
    for step in found[0].steps if found else []:
        rows = (table["run"] == step.run).to_numpy()
        if step.kind == "train" and rows.any():
            table.loc[rows, ["state", "steps", "steps_done"]] = [str(step.state), step.steps_text(), step.done]
    shown_columns = runs.PAST_RUNS | {"final_loss": "final loss (own scale)"}  # each loss on its own scale
    picked_rows = st.dataframe(
        table[list(shown_columns)].rename(columns=shown_columns), hide_index=True, on_select="rerun",
        selection_mode="multi-row", key="past_runs",
        column_config={"lr": st.column_config.NumberColumn(format="%.1e"),
                       "final loss (own scale)": st.column_config.NumberColumn(
                           format="%.4f", help="Each loss on its own scale (see the loss column): not comparable across "
                                               "losses; compare runs by their evaluation instead (select several)"),
                       "margin": st.column_config.NumberColumn(format="%.2f")},
    ).selection.rows
    if not picked_rows:
        st.caption("Select a run to open, rename or delete it; select several to compare them.")
        return
    picked = table.iloc[picked_rows]
    if len(picked) == 1:
        run = picked.iloc[0]
        links = st.columns(3)
        with links[0]:
            page_link("results.py", f"Evaluate {run['run']}", ":material/leaderboard:", run=run["run"])
        with links[1]:
            last = int(run["steps_done"] or 0)
            page_link("inspect.py", f"Inspect its batches (step {last})" if last else "Inspect its batches",
                      ":material/grid_on:", run=run["run"], step=last or None)
        with st.form("rename_form", border=False):
            new_name, save = st.columns([3, 1], vertical_alignment="bottom")
            name = new_name.text_input("Name", run["name"], placeholder="a name for this run")
            if save.form_submit_button("Rename"):
                runs.set_name(run["path"], name)
                st.rerun()
    else:
        compare(picked)
    if st.button(f"Delete {len(picked)} run(s)…", icon=":material/delete:"):
        st.session_state["delete_pending"] = list(picked["path"])
    if st.session_state.get("delete_pending"):
        confirm_delete(st.session_state["delete_pending"])


past_runs()
