"""Demo page: tells the story from precomputed files only, and says what to do when they are missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
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
    pd.DataFrame({
        "text": ["the dog barked all night", "a bank of the river"],
        "candidate": ["a domestic canine", "a bank of the river"],
        "candidate_role": ["positive", "anchor"],
        "guide_score": [0.81, 1.0], "threshold": [0.74, 0.7], "positive_score": [0.74, 0.7],
        "identical_text": [False, True], "beats_positive_by": [0.07, 0.3],
    }).to_parquet(demo / "sample_batch.parquet")
    pd.DataFrame({"model": ["base", "mnrl", "gist"], "task": ["WordNetSTS"] * 3,
                  "main_score": [0.5, 0.55, 0.6]}).to_csv(demo / "results.csv", index=False)
    return demo


def run_demo(demo_dir: Path) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.session_state["demo_dir"] = str(demo_dir)
    return at.run()


def test_demo_tells_the_story(tmp_path):
    at = run_demo(make_demo(tmp_path))
    assert not at.exception and not at.error
    assert at.title[0].value.startswith("What the guide removes")
    text = " ".join(c.value for c in at.caption)
    assert "scores this positive at 0.81, above the row's threshold 0.74" in text
    assert "the very same text as this row's own anchor or positive" in text
    assert "overlap data GIST models were trained on" in text
    assert len(at.get("plotly_chart")) == 3  # loss, masked fraction, scores per task


def test_missing_demo_folder_says_what_to_do(tmp_path):
    at = run_demo(tmp_path / "nowhere")
    assert not at.exception
    assert "demo files are missing" in at.error[0].value and "Inspect page" in at.error[0].value


def test_partial_demo_folder_shows_what_it_has(tmp_path):
    demo = make_demo(tmp_path)
    (demo / "results.csv").unlink()
    (demo / "sample_batch.parquet").unlink()
    at = run_demo(demo)
    assert not at.exception and not at.error
    assert [i.value for i in at.info] == ["No sample batch in the demo files.", "No results in the demo files."]
    assert len(at.get("plotly_chart")) == 2


def test_demo_loads_no_model(tmp_path):
    """Nothing is computed: the page never imports torch (a fresh interpreter proves it)."""
    demo = make_demo(tmp_path)
    code = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({MAIN!r}, default_timeout=30)\n"
        f"at.session_state['demo_dir'] = {str(demo)!r}\nat.run()\n"
        "assert not at.exception and len(at.get('plotly_chart')) == 3\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
