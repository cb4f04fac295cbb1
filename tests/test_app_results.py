"""Results page: charts and deltas from results on disk, background evaluation, bad inputs shown as errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs, results

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
TYPES = {"WordNetSTS": "STS", "WordNetRetrieval": "Retrieval", "Banking77Classification": "Classification"}


def write_result(root: Path, model: str, scores: dict[str, float]) -> None:
    """Result JSON in mteb's ResultCache layout, as core.evaluate leaves it."""
    folder = root / "results" / model.replace("/", "__") / "rev0"
    folder.mkdir(parents=True)
    (folder / "model_meta.json").write_text(json.dumps({"name": model}))
    for task, score in scores.items():
        (folder / f"{task}.json").write_text(json.dumps(
            {"task_name": task, "scores": {"test": [{"main_score": score, "hf_subset": "default"}]}}))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A workspace with base-model results and gist (2 seeds) and mnrl runs evaluated."""
    home = tmp_path / "home"
    monkeypatch.setenv("GISTLAB_HOME", str(home))
    monkeypatch.setattr(results, "task_type", TYPES.get)
    write_result(home, "gistlab/minilm-l3", {"WordNetSTS": 0.50, "WordNetRetrieval": 0.40,
                                             "Banking77Classification": 0.30})
    for name, loss, seed, bump in (("g0", "gist", 0, 0.10), ("g1", "gist", 1, 0.06), ("m0", "mnrl", 0, 0.02)):
        run = home / "runs" / name
        (run / "model").mkdir(parents=True)
        (run / "model" / "modules.json").write_text("[]")
        (run / "config.json").write_text(json.dumps({"loss": loss, "seed": seed}))
        write_result(run, f"gistlab-run/{name}", {"WordNetSTS": 0.50 + bump, "WordNetRetrieval": 0.40 + bump,
                                                  "Banking77Classification": 0.30 + bump})
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


def test_charts_deltas_table_and_overlap_note(home):
    at = open_results()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 4  # per task, per type, radar, deltas
    assert "overlap data GIST models were trained on" in " ".join(c.value for c in at.caption)
    frame = at.dataframe[0].value
    assert set(frame["label"]) == {"gistlab/minilm-l3", "g0", "g1", "m0"}
    assert "Banking77Classification *" in set(frame["task"])
    assert at.get("download_button")


def test_deltas_average_seeds_and_give_their_spread(home):
    from core.results import deltas, labelled

    table = labelled(results.results_table())
    out = deltas(table, "gistlab/minilm-l3").set_index(["loss", "task"])
    gist = out.loc[("gist", "WordNetSTS")]
    assert gist["delta"] == pytest.approx(0.08) and gist["runs"] == 2
    assert gist["spread"] == pytest.approx(0.04 / 2 ** 0.5)
    assert out.loc[("mnrl", "WordNetSTS"), "spread"] == 0.0


def test_evaluate_starts_one_background_eval_per_model(home, monkeypatch):
    started = {}
    monkeypatch.setattr(jobs, "start_job", lambda kind, steps: started.update(kind=kind, steps=steps))
    at = open_results({"run": "g0"})
    assert at.multiselect[0].value == ["g0"]
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert started["kind"] == "eval"
    models = [step.command[step.command.index("--model") + 1] for step in started["steps"]]
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
    assert not at.exception and not at.error
    job = jobs.current_job()
    assert job is not None and job.kind == "eval"
    deadline = time.monotonic() + 300
    while jobs.current_job() is not None:
        assert time.monotonic() < deadline, "the evaluation did not end"
        time.sleep(0.5)
    at.run()
    assert not at.exception and not at.error, Path(job.steps[0].log).read_text()[-2000:]
    frame = at.dataframe[0].value
    assert list(frame["task"]) == ["WordNetSTS"] and frame["model"][0] == "local/st"


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
    jobs._write(jobs.Job(kind="eval", steps=[jobs.Step(["x"], str(log))], pid=0))
    at = open_results()
    assert not at.exception
    assert at.error[0].value.startswith("The last evaluation failed: Model 'org/nope' is not in the local")
    assert at.warning[0].value == "The last evaluation skipped SciFact: its data is not in the local cache"


def test_bar_colours_follow_the_loss_arm(home):
    """Runs of one arm share its hue (later seeds lighter); base models are grey."""
    from app.views import ARM_COLORS, label_colors

    colors = label_colors(results.results_table())
    assert list(colors) == ["gistlab/minilm-l3", "m0", "g0", "g1"]  # base, mnrl, then guided (app.palette)
    assert colors["g0"] == ARM_COLORS["gist"] and colors["m0"] == ARM_COLORS["mnrl"]
    assert colors["gistlab/minilm-l3"] == ARM_COLORS["base"]
    lighter = [int(colors["g1"][i:i + 2], 16) for i in (1, 3, 5)]
    assert all(c1 >= c0 for c1, c0 in zip(lighter, [int(ARM_COLORS["gist"][i:i + 2], 16) for i in (1, 3, 5)]))
    assert colors["g1"] != colors["g0"]
