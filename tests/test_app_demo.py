"""Demo page: tells the story from precomputed files only (a verdict from experiment.json, a caught false
negative beside a cost, per-task differences on one scale, the jargon below), and says what to do when
files are missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.test_demo_story import make_summary

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def make_demo(root: Path, seeds: int = 3, recorded_before: bool = False, summary: dict | None = None) -> Path:
    """A demo folder in the documented layout: two run dirs, a sample batch, results, the ladder's scores.

    ``recorded_before``: the files an experiment wrote before the false-negative definition of issue 22
    (relation ``same-meaning``, a masking ``precision`` that counted related hard negatives as backed)."""
    right = "same-meaning" if recorded_before else "false-negative"
    demo = root / "demo"
    guide = "bundled:mpnet-base"
    for arm, masked in (("gist", 0.12), ("mnrl", 0.0)):
        run = demo / arm
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"loss": arm, "steps": 5, "guide": guide, "seed": 0,
                                                     "student": "bundled:minilm-l3", "false_negatives": 0.1}))
        lines = [{"step": s, "loss": 2.0 - 0.1 * s, "masked_fraction": masked, "weak_rows": 1, "step_seconds": 0.4}
                 for s in range(1, 6)]
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    looks = [(f"usage {i}", f"its positive {i}", f"a look-alike {i}", 0.9 - i / 100, False, i % 2 == 0,
              [right, "same-word", "same-category"][i % 3], False) for i in range(7)]
    weak = [("a pair the guide doubts", "a far positive", "something else", 0.30, False, False, "unrelated", True)]
    same = [("a bank of the river", "shore", "a bank of the river", 1.0, True, False, right, False),
            ("the same again", "again", "the same again", 1.0, True, False, right, False)]
    pairs = pd.DataFrame([*looks, *weak, *same], columns=[
        "text", "positive", "candidate", "guide_score", "identical_text", "student_prefers", "relation", "weak_row"])
    pairs = pairs.assign(candidate_role="positive", positive_score=0.7, threshold=0.7,
                         beats_positive_by=pairs["guide_score"] - 0.7, step=3)
    pairs.loc[pairs["weak_row"], ["positive_score", "threshold"]] = 0.05
    pairs.to_parquet(demo / "sample_batch.parquet")
    sample = {"step": 3, "guide": guide, "rows": 16, "candidates": 496, "masked": 71, "weak_rows": 1, "precision": 0.8}
    if not recorded_before:
        sample |= {"false_negatives": 8, "caught": 5, "related": 4, "unrelated": 1}
    (demo / "sample_batch.json").write_text(json.dumps(sample))
    pd.DataFrame({
        "model": ["gistlab/minilm-l3", "gistlab-run/g", "gistlab-run/m"] * 2,
        "loss": [None, "gist", "mnrl"] * 2, "seed": [None, 0, 0] * 2,
        "task": ["WordNetSTS"] * 3 + ["WordNetClassification"] * 3,
        "overlaps_gist_training": [False] * 6, "main_score": [0.5, 0.6, 0.55, 0.4, 0.5, 0.45],
    }).to_csv(demo / "results.csv", index=False)
    rows = [("bundled:minilm-l3", "base", -1, task, 0.5) for task in ("WordNetSTS", "WordNetRetrieval")]
    for seed in range(seeds):
        for task, base in (("WordNetSTS", 0.6), ("WordNetRetrieval", 0.2)):
            rows += [("bundled:minilm-l3", "none", seed, task, base + seed / 100),
                     ("bundled:minilm-l3", guide, seed, task, base + 0.02 + seed / 50),
                     ("bundled:minilm-l3", "self", seed, task, base - 0.01)]
    scores = pd.DataFrame(rows, columns=["student", "arm", "seed", "task", "main_score"])
    scores.assign(metric=scores["task"].map({"WordNetSTS": "Spearman (cosine)", "WordNetRetrieval": "nDCG@10"}),
                  split="test").to_csv(demo / "ladder_scores.csv", index=False)
    quality = {"precision": 0.8} if recorded_before else {"fn_precision": 0.8, "fn_recall": 0.5}
    pd.DataFrame([{"student": "bundled:minilm-l3", "arm": guide, "seed": seed, "steps": 5,
                   "masked": 0.12 + seed / 100, **quality, "weak_rows": 1.0} for seed in range(seeds)]
                 ).to_csv(demo / "ladder_masking.csv", index=False)
    (demo / "experiment.json").write_text(json.dumps(summary or make_summary(seeds=seeds)))
    return demo


def run_demo(demo_dir: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(demo_dir))
    return AppTest.from_file(MAIN, default_timeout=30).run()


def texts(at: AppTest) -> tuple[list[str], list[str]]:
    return [m.value for m in at.markdown], [c.value for c in at.caption]


def test_demo_opens_with_the_verdict_then_the_story(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path), monkeypatch)
    assert not at.exception and not at.error
    assert at.title[0].value.startswith("What the guide removes")
    markdown, captions = texts(at)
    assert markdown[1] == ("**minilm-l3 trained with GIST · mpnet-base scored +1.20 ± 0.20 points above MNRL** on "
                           "the bundled benchmark's mean over 2 tasks, higher in 3 of 3 seeds, at a false-negative "
                           "rate of 10%.")
    assert captions[0].startswith("Points: the paired difference (arm − MNRL, same seed, so the same batches) of "
                                  "the mean score over the 2 bundled tasks, x100; ± is the std of the per-seed "
                                  "differences over 3 seeds.")
    assert markdown[2].startswith("A cheaper guide did as well: at 10%, GIST · minilm-l6 gained +1.10 ± 0.10 points")
    assert captions[1].startswith("GIST · mpnet-base's mask at 10%, over 3 seeds x 50 steps: it caught 240 of the "
                                  "360 false negatives present (recall 67%)")
    assert captions[2].startswith("Best arm at each false-negative rate: 0%: GIST · mpnet-base +0.20 ± 0.10 points")
    assert markdown[3].startswith("**At scale** · Published, not measured here: on MTEB STSBenchmark")
    assert "84.40 against all-MiniLM-L6-v2's 82.03" in markdown[3]
    assert captions[3].startswith("Source: the MTEB results published with the models")


def test_a_caught_false_negative_beside_a_cost_with_numbers_that_agree(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path), monkeypatch)
    markdown, captions = texts(at)
    card = markdown.index("**Caught: a false negative (a right answer) left out of the loss**")
    assert markdown[card + 1:card + 4] == [
        "Row · usage 0  \nIts own positive · its positive 0",
        "Masked positive (false negative: a catch) · a look-alike 0",
        "guide score **0.90** vs the row's own positive **0.70** (threshold 0.70)"]
    assert markdown[card + 4] == "**Cost: a hard negative removed**"
    assert markdown[card + 6] == "Masked positive (related hard negative: a cost) · a look-alike 1"
    assert markdown[card + 7] == "guide score **0.89** vs the row's own positive **0.70** (threshold 0.70)"
    caught = next(c for c in captions if c.startswith("A false negative caught"))
    assert "the guide scores it 0.90, the row's own positive 0.70 (threshold 0.70)" in caught
    cost = next(c for c in captions if c.startswith("A cost: another sense of the same word"))
    assert "the guide scores it 0.89, the row's own positive 0.70" in cost
    assert ("From step 3 of the demo's GIST run (guide bundled:mpnet-base, seed 0, false-negative rate 10%): of its "
            "10 masked candidates, 5 are false negatives (catches), 4 related hard negatives and 1 unrelated "
            "(costs); 5 of the 8 false negatives present were caught.") in captions


def test_per_task_differences_in_words_on_one_scale(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path), monkeypatch)
    assert at.radio(key="demo_rate").value == 0.1  # the verdict's rate first
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["xaxis"]["title"]["text"] == ("Score difference against MNRL, points (same seed, same "
                                                         "batches): mean ± std over seeds")
    low, high = chart["layout"]["xaxis"]["range"]
    assert low == -high and high > 1.4  # symmetric around zero, room for +1.20 ± 0.20
    assert any(shape["x0"] == 0 == shape["x1"] for shape in chart["layout"]["shapes"])  # the zero line
    hover = {text for trace in chart["data"] for text in trace["hovertext"]}
    assert "GIST · minilm-l6 − MNRL on WordNetSTS: +1.10 ± 0.10 points (3 seeds, higher in 3/3)" in hover
    assert all(trace["error_x"]["array"] for trace in chart["data"])
    assert any(c.startswith("Mean score difference over the tasks, 3 seeds, and per task") for c in texts(at)[1])
    at.radio(key="demo_rate").set_value(0.0).run()
    other = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert other["layout"]["xaxis"]["range"] == chart["layout"]["xaxis"]["range"]  # one scale for every rate
    assert "rate of 0%" in other["layout"]["title"]["text"]


def test_nothing_beats_mnrl_is_the_verdict_when_so(tmp_path, monkeypatch):
    losing = make_summary(deltas={(0.0, "self"): (-0.004, 0.001), (0.0, "bundled:mpnet-base"): (-0.002, 0.001),
                                  (0.0, "bundled:minilm-l6"): (-0.001, 0.002)})
    at = run_demo(make_demo(tmp_path, summary=losing), monkeypatch)
    assert not at.exception and not at.error
    markdown, _ = texts(at)
    assert markdown[1].startswith("**Nothing beat MNRL here.** The best arm, GIST · minilm-l6 at a false-negative "
                                  "rate of 0%, scored -0.10 ± 0.20 points")
    assert any(m.startswith("A cheaper guide did as well: at 0%, GIST · minilm-l6") for m in markdown)  # both lost


def test_missing_or_garbled_summary_is_a_caption_not_a_traceback(tmp_path, monkeypatch):
    demo = make_demo(tmp_path)
    (demo / "experiment.json").unlink()
    at = run_demo(demo, monkeypatch)
    assert not at.exception and not at.error
    captions = texts(at)[1]
    assert captions[0].startswith("No verdict: No experiment summary at ") and "gistlab experiment" in captions[0]
    assert "**Caught: a false negative (a right answer) left out of the loss**" in texts(at)[0]  # the batch still shows
    (demo / "experiment.json").write_text("{garbled")
    at = run_demo(demo, monkeypatch)
    assert not at.exception and not at.error
    assert "Not an experiment summary" in texts(at)[1][0]


def test_files_recorded_before_the_definition_are_read_not_misread(tmp_path, monkeypatch):
    """An older demo folder: its 'same-meaning' pairs are false negatives by the current names."""
    at = run_demo(make_demo(tmp_path, recorded_before=True), monkeypatch)
    assert not at.exception and not at.error
    markdown, captions = texts(at)
    assert "**Caught: a false negative (a right answer) left out of the loss**" in markdown
    split = next(c for c in captions if c.startswith("From step 3"))
    assert "of its 10 masked candidates, 5 are false negatives (catches), 4 related" in split
    assert split.endswith("(costs).")  # no false-negative count recorded: none claimed


def test_a_batch_without_a_catch_says_so(tmp_path, monkeypatch):
    demo = make_demo(tmp_path)
    pairs = pd.read_parquet(demo / "sample_batch.parquet")
    pairs[pairs["relation"] != "false-negative"].to_parquet(demo / "sample_batch.parquet")
    at = run_demo(demo, monkeypatch)
    assert not at.exception and not at.error
    assert at.info[0].value.startswith("No false negative was caught in the demo's batch (step 3 of the demo's GIST "
                                       "run")
    assert "**Cost: a hard negative removed**" in texts(at)[0]


def test_one_seed_says_so_and_draws_no_spread(tmp_path, monkeypatch):
    one = make_summary(seeds=1, deltas={(0.1, "bundled:mpnet-base"): (0.012, 0.0), (0.1, "self"): (0.004, 0.0)})
    at = run_demo(make_demo(tmp_path, seeds=1, summary=one), monkeypatch)
    assert not at.exception and not at.error
    markdown, captions = texts(at)
    assert markdown[1].startswith("**No arm beat MNRL in every seed.** The closest: GIST · mpnet-base at a "
                                  "false-negative rate of 10%, +1.20 points (1 seed: no spread)")
    assert any(c.startswith("Mean score difference over the tasks, 1 seed") for c in captions)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not any(t.get("error_x") for t in chart["data"])
    assert "GIST · mpnet-base (1 seed)" in [t["name"] for t in chart["data"]]


def test_the_jargon_waits_below_the_story(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path), monkeypatch)
    expander = at.expander[0]
    assert expander.label == "Under the hood: blocks, weak rows, raw losses, every masked pair"
    inside = [c.value for c in expander.caption]
    assert any(c.startswith("71 of 496 in-batch candidates were masked in this batch") for c in inside)
    assert any(c.startswith("The paired runs' raw losses, each on its own axis") for c in inside)
    assert "weak_rows" not in " ".join(texts(at)[1][:4])  # the story above speaks without raw names
    table = expander.dataframe[0].value
    assert {"false-negative rate", "arm", "precision", "recall", "related hard negatives"} <= set(table.columns)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [c["layout"]["title"]["text"] for c in charts[1:3]]
    assert titles == ["MNRL (no guide): training loss", "GIST · mpnet-base: training loss"]  # one axis each
    assert charts[1]["layout"]["xaxis"]["title"]["text"] == "training step"


def test_missing_demo_folder_says_what_to_do(tmp_path, monkeypatch):
    at = run_demo(tmp_path / "nowhere", monkeypatch)
    assert not at.exception
    assert "demo files are missing" in at.error[0].value and "Inspect page" in at.error[0].value


def test_partial_demo_folder_shows_what_it_has(tmp_path, monkeypatch):
    demo = make_demo(tmp_path)
    for name in ("results.csv", "sample_batch.parquet", "ladder_scores.csv", "ladder_masking.csv"):
        (demo / name).unlink()
    at = run_demo(demo, monkeypatch)
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == ["No sample batch in the demo files."]
    assert texts(at)[0][1].startswith("**minilm-l3 trained with GIST · mpnet-base")
    assert len(at.get("plotly_chart")) == 5  # the per-task differences and the paired run's curves


def test_demo_loads_no_model(tmp_path):
    """Nothing is computed: the page never imports torch (a fresh interpreter proves it)."""
    demo = make_demo(tmp_path)
    code = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\n"
        f"import os\nos.environ['GISTLAB_DEMO_DIR'] = {str(demo)!r}\n"
        f"at = AppTest.from_file({MAIN!r}, default_timeout=30).run()\n"
        "assert not at.exception and len(at.get('plotly_chart')) == 5\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
