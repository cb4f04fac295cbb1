"""Results page: charts and deltas from results on disk, background evaluation, bad inputs shown as errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.training import jobs
from core.training.events import Event, Kind, events_file, write_event

from core.training import results

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
TYPES = {"WordNetSTS": "STS", "WordNetRetrieval": "Retrieval", "Banking77Classification": "Classification"}


def write_result(root: Path, model: str, scores: dict[str, float]) -> None:
    """Result JSON in mteb's ResultCache layout, as core.training.evaluate leaves it."""
    folder = root / "results" / model.replace("/", "__") / "rev0"
    folder.mkdir(parents=True)
    (folder / "model_meta.json").write_text(json.dumps({"name": model}))
    for task, score in scores.items():
        (folder / f"{task}.json").write_text(json.dumps(
            {"task_name": task, "scores": {"test": [{"main_score": score, "hf_subset": "default"}]}}))


METRICS = {"WordNetSTS": "Spearman (cosine)", "WordNetRetrieval": "nDCG@10", "Banking77Classification": "accuracy"}
SETTINGS = {"student": "bundled:minilm-l3", "data": "bundled", "steps": 50, "batch_size": 16, "lr": 2e-5}


def add_run(home: Path, name: str, loss: str, seed: int, bump: float) -> None:
    run = home / "runs" / name
    (run / "model").mkdir(parents=True)
    (run / "model" / "modules.json").write_text("[]")
    (run / "config.json").write_text(json.dumps({**SETTINGS, "loss": loss, "seed": seed,
                                                 "guide": "bundled:mpnet-base"}))
    write_result(run, f"gistlab-run/{name}", {"WordNetSTS": 0.50 + bump, "WordNetRetrieval": 0.40 + bump,
                                              "Banking77Classification": 0.30 + bump})


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A workspace with base-model results and gist (2 seeds) and mnrl (seed 0 only) runs evaluated."""
    home = tmp_path / "home"
    monkeypatch.setenv("GISTLAB_HOME", str(home))
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(tmp_path / "demo"))  # no shipped experiment: no curve unless a test adds one
    monkeypatch.setattr(results, "task_type", TYPES.get)
    monkeypatch.setattr(results, "main_metric", METRICS.get)
    write_result(home, "gistlab/minilm-l3", {"WordNetSTS": 0.50, "WordNetRetrieval": 0.40,
                                             "Banking77Classification": 0.30})
    for name, loss, seed, bump in (("g0", "gist", 0, 0.10), ("g1", "gist", 1, 0.06), ("m0", "mnrl", 0, 0.02)):
        add_run(home, name, loss, seed, bump)
    yield home
    job = jobs.current_job()
    if job is not None:
        os.killpg(job.pid, signal.SIGKILL)
        jobs._children[job.pid].wait()


def open_results(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.run()
    at.switch_page("views/results.py")
    at.query_params.update(query or {})
    return at.run()


def all_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def is_curve(spec: dict) -> bool:
    """The experiment's figures: the curve (arm − MNRL) and what each arm masked (FN shares)."""
    return spec["layout"].get("yaxis", {}).get("title", {}).get("text", "").startswith(("arm − MNRL", "FN share"))


def chart_specs(at: AppTest) -> list[dict]:
    """The results charts (the experiment's curve, when one is shown, left out)."""
    return [spec for spec in all_specs(at) if not is_curve(spec)]


def spreads_drawn(spec: dict) -> int:
    return sum(1 for trace in spec["data"] if trace.get("error_x") and trace["error_x"].get("array") is not None)


def test_paired_chart_scores_per_task_table_and_overlap_note(home):
    at = open_results()
    assert not at.exception and not at.error
    paired, scores = chart_specs(at)
    assert paired["layout"]["xaxis"]["title"]["text"].startswith("Score difference against MNRL")
    assert "student bundled:minilm-l3" in paired["layout"]["title"]["text"]
    assert [t["name"] for t in paired["data"]] == ["GIST · mpnet-base (1 seed)"]
    assert "WordNetRetrieval · nDCG@10" in paired["data"][0]["y"]
    titles = [a["text"] for a in scores["layout"]["annotations"]]
    assert "WordNetSTS · Spearman (cosine)" in titles and "main_score" not in json.dumps(scores["layout"])
    assert {t["name"] for t in scores["data"]} == {"bundled:minilm-l3", "g0", "g1", "m0"}  # as the user named it
    captions = " ".join(c.value for c in at.caption)
    assert "overlap data GIST models were trained on" in captions
    assert "GIST · mpnet-base: 1 seed (no spread" in captions
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["Model or run", "Loss", "Guide", "Seed", "Task", "Task type", "Metric",
                                   "Split", "Score"]
    assert set(frame["Model or run"]) == {"bundled:minilm-l3", "g0", "g1", "m0"}
    assert "Banking77Classification *" in set(frame["Task"])
    assert frame.loc[frame["Model or run"] == "m0", "Guide"].isna().all()  # MNRL has no guide
    assert at.get("download_button")


def test_one_seed_draws_no_spread_two_seeds_do(home):
    at = open_results()
    assert spreads_drawn(chart_specs(at)[0]) == 0
    add_run(home, "m1", "mnrl", 1, 0.03)  # now gist and mnrl share seeds 0 and 1
    at = open_results()
    paired = chart_specs(at)[0]
    assert [t["name"] for t in paired["data"]][0] == "GIST · mpnet-base (2 seeds)"
    assert spreads_drawn(paired) == 1
    mean = [x for trace in paired["data"] for x, y in zip(trace["x"], trace["y"]) if y == "mean over tasks"]
    assert mean == [pytest.approx(((0.10 - 0.02) + (0.06 - 0.03)) / 2)]


def test_progress_bar_names_model_and_task(home, tmp_path):
    script = ("import sys, time; from core.training.events import emit; emit('tasks', total=6); emit('reused', 'A'); "
              "emit('reused', 'B'); emit('evaluated', 'C'); print('evaluated C in 1.0 s', flush=True); time.sleep(60)")
    steps = [jobs.Step([sys.executable, "-c", script], str(tmp_path / "1.log"), settings={"model": str(home / "runs" / "g0")}),
             jobs.Step([sys.executable, "-c", script], str(tmp_path / "2.log"), settings={"model": "bundled:minilm-l3"})]
    jobs.start_job("eval", steps)
    deadline = time.monotonic() + 30
    while "evaluated C" not in (tmp_path / "1.log").read_text() if (tmp_path / "1.log").is_file() else True:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    at = open_results()
    assert not at.exception
    [bar] = at.get("progress")
    assert "model 1 of 2 · task 4 of 6" in bar.proto.text
    assert re.search(r"about \d+ s left$|almost done$", bar.proto.text)  # 3 of 6 tasks counted: time left at their rate
    assert bar.proto.value == 25  # half of the first of two models


def test_evaluate_starts_one_background_eval_per_model(home, monkeypatch):
    started = {}
    monkeypatch.setattr(jobs, "start_job", lambda kind, steps: started.update(kind=kind, steps=steps))
    at = open_results({"run": "g0"})
    assert at.multiselect[0].value == ["g0"]
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert started["kind"] == "eval"
    models = [step.settings["model"] for step in started["steps"]]
    assert models == [str(home / "runs" / "g0"), "bundled:minilm-l3"]


def test_evaluate_with_nothing_picked_says_what_to_do(home):
    at = open_results()
    at.text_input[0].set_value("")
    at.button[0].click().run()
    assert "Pick at least one run or base model" in at.error[0].value


def test_second_job_is_refused_with_what_runs(home, tmp_path):
    jobs.start_job("train", [jobs.Step([sys.executable, "-c", "import time; time.sleep(30)"],
                                       str(tmp_path / "t.log"), str(home / "runs" / "busy"))])
    at = open_results()
    at.button[0].click().run()
    assert not at.exception
    assert "Another job is still running, the train job (busy" in at.error[0].value


def test_unknown_run_in_the_link_and_unreadable_results(home):
    bad = home / "results" / "broken" / "rev0"
    bad.mkdir(parents=True)
    (bad / "WordNetSTS.json").write_text("{not json")
    at = open_results({"run": "gone"})
    assert not at.exception
    assert "Run 'gone' has no trained model" in at.error[0].value
    assert "Unreadable result file" in at.warning[0].value


def test_no_results_yet(tmp_path, monkeypatch):
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "empty"))
    at = open_results()
    assert not at.exception and not at.error
    assert "No results yet" in at.info[0].value


@pytest.mark.slow
def test_a_real_background_evaluation_lands_in_the_charts(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "fresh"))
    at = open_results()
    at.text_input[0].set_value(str(tiny_model_dir))
    at.text_input[1].set_value("WordNetSTS")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = jobs.current_job()
    assert job is not None and job.kind == "eval"
    deadline = time.monotonic() + 300
    while jobs.current_job() is not None:
        assert time.monotonic() < deadline, "the evaluation did not end"
        time.sleep(0.5)
    at.run()
    assert not at.exception and not at.error, Path(job.steps[0].log).read_text()[-2000:]
    frame = at.dataframe[0].value
    assert list(frame["Task"]) == ["WordNetSTS"] and frame["Model or run"][0] == "local/st"


def test_a_deleted_run_and_a_failed_evaluation_are_reported(home):
    at = open_results({"run": "g0"})
    at.text_input[0].set_value("")
    shutil.rmtree(home / "runs" / "g0" / "model")  # deleted while the page was open
    at.button[0].click().run()
    assert not at.exception
    assert [e.value[:40] for e in at.error] == ["Run 'g0' has no trained model (still run",
                                                "Pick at least one run or base model, and"]
    log = home / "jobs" / "eval-x.log"
    log.write_text("evaluated WordNetSTS in 1.0 s\nskipped SciFact: its data is not in the local cache\n"
                   "gistlab: error: Model 'org/nope' is not in the local Hugging Face cache: use bundled:minilm-l3.\n")
    for event in (Event(Kind.EVALUATED, "WordNetSTS"), Event(Kind.SKIPPED, "SciFact", "its data is not in the local cache"),
                  Event(Kind.ERROR, message="Model 'org/nope' is not in the local Hugging Face cache: use bundled:minilm-l3.")):
        write_event(events_file(log), event)
    jobs._write(jobs.Job(kind="eval", steps=[jobs.Step(["x"], str(log))], pid=0))
    at = open_results()
    assert not at.exception
    assert at.error[0].value.startswith("The last evaluation failed: Model 'org/nope' is not in the local")
    assert at.warning[0].value == "The last evaluation skipped SciFact: its data is not in the local cache"


def test_colours_follow_the_arm(home):
    """Runs of one arm share its hue (later seeds lighter); base models are grey."""
    from app.palette import ARM_COLORS
    from app.views import label_colors

    colors = label_colors(results.results_table())
    assert list(colors) == ["bundled:minilm-l3", "m0", "g0", "g1"]  # base, mnrl, then the guide arms
    assert colors["m0"] == ARM_COLORS["mnrl"] and colors["bundled:minilm-l3"] == ARM_COLORS["base"]
    assert colors["g0"] == ARM_COLORS["mpnet-base"] and colors["g1"] != colors["g0"]


def test_runs_are_named_as_the_user_named_them_on_one_labelled_scale(home):
    from core.training.runs import set_name

    set_name(home / "runs" / "g0", "first gist")
    at = open_results()
    assert not at.exception and not at.error
    scores = chart_specs(at)[-1]
    names = {trace["name"] for trace in scores["data"]}
    assert "first gist" in names and "g0" not in names and "g1" in names
    assert "first gist" in set(at.dataframe[0].value["Model or run"])
    axes = [key for key in scores["layout"] if key.startswith("yaxis")]
    assert len(axes) >= 3 and all(scores["layout"][a]["range"] == scores["layout"]["yaxis"]["range"] for a in axes)
    assert scores["layout"]["yaxis"]["title"]["text"] == "score"
    assert "Banking77Classification * · accuracy: %{y:.4f}" in scores["data"][0]["hovertemplate"]


def write_summary(path: Path) -> None:
    """An experiment.json: MNRL and one guide at rates 0 and 0.2, two seeds; the guide's lead grows with the rate."""
    from core.analysis.experiment_summary import ExperimentSummary, RunRecord

    runs = []
    for rate, lead in ((0.0, (0.01, -0.01)), (0.2, (0.03, 0.05))):
        for seed in (0, 1):
            runs.append(RunRecord(rate, "none", "MNRL (no guide)", "mnrl", seed, {"WordNetSTS": 0.5}, 0.5))
            runs.append(RunRecord(rate, "bundled:minilm-l6", "GIST · minilm-l6", "gist", seed,
                                  {"WordNetSTS": 0.5 + lead[seed]}, 0.5 + lead[seed],
                                  {"masked_share": 0.1, "fn_present": 10, "fn_caught": 5, "fn_precision": 0.5,
                                   "fn_recall": 0.5, "related_share": 0.2, "unrelated_share": 0.3, "steps": 2}))
    summary = ExperimentSummary(setup={"student": "bundled:minilm-l3", "steps": 50, "batch_size": 16, "seeds": [0, 1],
                                       "rates": [0.0, 0.2], "arms": ["none", "bundled:minilm-l6"]},
                                base={"scores": {"WordNetSTS": 0.45}, "mean": 0.45}, runs=runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(summary.to_json())


def test_the_false_negative_rate_curve_from_the_workspace_experiment(home):
    write_summary(home / "experiment" / "experiment.json")
    at = open_results()
    assert not at.exception and not at.error
    curve, quality = [spec for spec in all_specs(at) if is_curve(spec)]
    [line] = curve["data"]
    assert line["name"] == "GIST · minilm-l6" and line["x"] == [0.0, 0.2]
    assert line["y"] == [pytest.approx(0.0), pytest.approx(0.04)]
    assert line["error_y"]["visible"] and line["error_y"]["array"][1] == pytest.approx(0.0141421, abs=1e-6)
    assert curve["layout"]["xaxis"]["title"]["text"].startswith("false-negative rate")
    assert any(shape.get("y0") == 0 and shape.get("y1") == 0 for shape in curve["layout"]["shapes"])  # MNRL's line
    assert [t["name"] for t in quality["data"]] == ["GIST · minilm-l6"] * 2  # recall, precision
    assert quality["data"][0]["x"] == [0.0, 0.2] and quality["data"][1]["y"] == [0.5, 0.5]
    captions = " ".join(c.value for c in at.caption)
    assert "this workspace's experiment" in captions and "dashed line at 0 is MNRL" in captions
    assert "Recall = false negatives masked / present" in captions


def test_the_curve_falls_back_to_the_demo_and_says_when_there_is_none(home, tmp_path):
    at = open_results()
    assert not [spec for spec in all_specs(at) if is_curve(spec)]
    assert "No experiment yet" in " ".join(c.value for c in at.caption)
    write_summary(tmp_path / "demo" / "experiment.json")
    at = open_results()
    assert [spec for spec in all_specs(at) if is_curve(spec)]
    assert "the shipped demo's experiment" in " ".join(c.value for c in at.caption)
    (home / "experiment").mkdir(exist_ok=True)
    (home / "experiment" / "experiment.json").write_text("{not json")
    at = open_results()
    assert not at.exception and "cannot be read" in " ".join(c.value for c in at.caption)
