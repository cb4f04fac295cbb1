"""Demo page: tells the story from precomputed files only, and says what to do when they are missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


def make_demo(root: Path) -> Path:
    """A demo folder in the documented layout: two run dirs, a sample batch, a results table."""
    demo = root / "demo"
    for arm, masked in (("gist", 0.12), ("mnrl", 0.0)):
        run = demo / arm
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"loss": arm, "steps": 5}))
        lines = [{"step": s, "loss": 2.0 - 0.1 * s, "masked_fraction": masked, "step_seconds": 0.4}
                 for s in range(1, 6)]
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    looks = [(f"usage {i}", f"a look-alike {i}", 0.9 - i / 100, False, i % 2 == 0) for i in range(7)]
    pairs = pd.DataFrame(
        [*looks, ("a bank of the river", "a bank of the river", 1.0, True, False),
         ("the same again", "the same again", 1.0, True, False)],
        columns=["text", "candidate", "guide_score", "identical_text", "student_prefers"])
    pairs = pairs.assign(candidate_role="positive", positive_score=0.7, threshold=0.7,
                         beats_positive_by=pairs["guide_score"] - 0.7, step=3)
    pairs.to_parquet(demo / "sample_batch.parquet")
    pd.DataFrame({
        "model": ["gistlab/minilm-l3", "gistlab-run/g", "gistlab-run/m"] * 2,
        "loss": [None, "gist", "mnrl"] * 2, "seed": [None, 0, 0] * 2,
        "task": ["WordNetSTS"] * 3 + ["WordNetClassification"] * 3,
        "overlaps_gist_training": [False] * 6, "main_score": [0.5, 0.6, 0.55, 0.4, 0.5, 0.45],
    }).to_csv(demo / "results.csv", index=False)
    return demo


def run_demo(demo_dir: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(demo_dir))
    return AppTest.from_file(MAIN, default_timeout=30).run()


def test_demo_tells_the_story(tmp_path, monkeypatch):
    at = run_demo(make_demo(tmp_path), monkeypatch)
    assert not at.exception and not at.error
    assert at.title[0].value.startswith("What the guide removes")
    captions = [c.value for c in at.caption]
    assert captions[0] == "9 candidates were masked in this batch (step 3) of the GIST run; the 6 the guide finds most alike:"
    explained = captions[1:7]
    assert explained[0].startswith("The guide scores this positive at 0.90, above the row's threshold 0.70")
    assert "The student, too, ranks it above the positive" in explained[0]
    assert "The student" not in explained[1]
    assert sum("the very same text" in e for e in explained) == 1  # one duplicate at most
    assert not any("overlap data GIST" in c for c in captions)  # the bundled tasks overlap nothing
    metrics = {m.label: (m.value, m.delta) for m in at.metric}
    assert metrics["Candidates the guide masked"][0] == "12%"
    assert metrics["Benchmark mean, GIST vs MNRL"] == ("0.550", "+0.050")
    assert len(at.get("plotly_chart")) == 3  # loss, masked fraction, scores per task


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
    assert [i.value for i in at.info] == ["No sample batch in the demo files.", "No results in the demo files."]
    assert len(at.get("plotly_chart")) == 2


def test_demo_loads_no_model(tmp_path):
    """Nothing is computed: the page never imports torch (a fresh interpreter proves it)."""
    demo = make_demo(tmp_path)
    code = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\n"
        f"import os\nos.environ['GISTLAB_DEMO_DIR'] = {str(demo)!r}\n"
        f"at = AppTest.from_file({MAIN!r}, default_timeout=30).run()\n"
        "assert not at.exception and len(at.get('plotly_chart')) == 3\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
