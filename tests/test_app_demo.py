"""Demo page: tells the story from precomputed files only, and says what to do when they are missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def make_demo(root: Path, seeds: int = 3, recorded_before: bool = False) -> Path:
    """A demo folder in the documented layout: two run dirs, a sample batch, results, the ladder's scores.

    ``recorded_before``: the files an experiment wrote before the false-negative definition of issue 22
    (relation ``same-meaning``, a masking ``precision`` that counted related hard negatives as backed)."""
    right = "same-meaning" if recorded_before else "false-negative"
    demo = root / "demo"
    guide = "bundled:mpnet-base"
    for arm, masked in (("gist", 0.12), ("mnrl", 0.0)):
        run = demo / arm
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"loss": arm, "steps": 5, "guide": guide,
                                                     "student": "bundled:minilm-l3"}))
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
    return demo


def run_demo(demo_dir: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(demo_dir))
    return AppTest.from_file(MAIN, default_timeout=30).run()


def test_demo_tells_the_story(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path), monkeypatch)
    assert not at.exception and not at.error
    assert at.title[0].value.startswith("What the guide removes")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["GIST · mpnet-base − MNRL"].startswith("+0.0300 ± 0.")
    assert "Mean score difference over the tasks, 3 seeds" in [c.value for c in at.caption]
    assert metrics["Candidates masked per step (3 seeds)"] == "13% ± 1%"
    assert metrics["Masks that were false negatives (3 seeds)"] == "80% ± 0%"
    captions = [c.value for c in at.caption if not c.value.startswith("Mean score difference")]
    # the batch's masks in the three-way split: 5 false negatives (3 look-alikes, 2 identical texts),
    # 4 related hard negatives, 1 unrelated (the weak row's)
    assert captions[0] == ("Of the 10 masked candidates: 5 false negatives (right answers: catches), 4 related hard "
                           "negatives and 1 unrelated (both costs); 5 of its 8 false negatives were caught.")
    assert captions[1].startswith("71 of 496 in-batch candidates were masked in this batch (step 3, 16 rows, "
                                  "guide `bundled:mpnet-base`); 1 of 16 rows were weak positives")
    explained = captions[2:8]
    assert any(e.startswith("A false negative caught") for e in explained)
    assert any(e.startswith("A cost: another sense of the same word") for e in explained)
    markdown = " ".join(m.value for m in at.markdown)
    assert "(false negative: a catch)" in markdown and "(related hard negative: a cost)" in markdown
    assert any(e.startswith("Weak positive: the guide scores this row's own positive only 0.05") for e in explained)
    assert sum("the very same text" in e for e in explained) == 1  # one duplicate at most
    markdown = " ".join(m.value for m in at.markdown)
    assert "**Its own positive** · its positive 0" in markdown and "guide score **0.70**" in markdown
    assert any("Each loss on its own axis" in c for c in captions)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    ladder = charts[0]
    assert [t["name"] for t in ladder["data"]][:2] == ["GIST · mpnet-base (3 seeds)", "GIST · self-guide (3 seeds)"]
    assert any(t.get("error_x") for t in ladder["data"])  # 3 seeds: a spread is drawn
    titles = [c["layout"]["title"]["text"] for c in charts[2:4]]
    assert titles == ["MNRL (no guide): training loss", "GIST · mpnet-base: training loss"]  # one axis each
    assert charts[2]["layout"]["xaxis"]["title"]["text"] == "training step"


def test_files_recorded_before_the_definition_are_read_not_misread(tmp_path, monkeypatch):
    """An older demo folder: its 'precision' counted related hard negatives as backed, so the headline
    says it was not recorded; its 'same-meaning' pairs are false negatives by the current names."""
    at = run_demo(make_demo(tmp_path, recorded_before=True), monkeypatch)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Masks that were false negatives"] == "not recorded"
    captions = [c.value for c in at.caption if not c.value.startswith("Mean score difference")]
    assert captions[0].startswith("Of the 10 masked candidates: 5 false negatives (right answers: catches), 4 related")
    assert any(c.startswith("A false negative caught") for c in captions)


def test_one_seed_says_so_and_draws_no_spread(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path, seeds=1), monkeypatch)
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["GIST · mpnet-base − MNRL"] == "+0.0200"
    assert "Mean score difference over the tasks, 1 seed" in [c.value for c in at.caption]
    assert metrics["Candidates masked per step (1 seed)"] == "12%"
    ladder = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not any(t.get("error_x") for t in ladder["data"])
    assert "GIST · mpnet-base (1 seed)" in [t["name"] for t in ladder["data"]]


def test_missing_demo_folder_says_what_to_do(tmp_path, monkeypatch):
    at = run_demo(tmp_path / "nowhere", monkeypatch)
    assert not at.exception
    assert "demo files are missing" in at.error[0].value and "Inspect page" in at.error[0].value


def test_partial_demo_folder_shows_what_it_has(tmp_path, monkeypatch):
    demo = make_demo(tmp_path)
    (demo / "results.csv").unlink()
    (demo / "sample_batch.parquet").unlink()
    at = run_demo(demo, monkeypatch)
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == ["No sample batch in the demo files."]
    for name in ("ladder_scores.csv", "ladder_masking.csv"):
        (demo / name).unlink()
    at = run_demo(demo, monkeypatch)
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == ["No sample batch in the demo files.",
                                          "No results of the guide ladder in the demo files."]
    assert len(at.get("plotly_chart")) == 4 and not at.metric  # the paired run's curves only


def test_demo_loads_no_model(tmp_path):
    """Nothing is computed: the page never imports torch (a fresh interpreter proves it)."""
    demo = make_demo(tmp_path)
    code = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\n"
        f"import os\nos.environ['GISTLAB_DEMO_DIR'] = {str(demo)!r}\n"
        f"at = AppTest.from_file({MAIN!r}, default_timeout=30).run()\n"
        "assert not at.exception and len(at.get('plotly_chart')) == 6\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
