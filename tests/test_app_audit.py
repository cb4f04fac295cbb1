"""Audit page: findings listed side by side, decisions persisted (a reload keeps them), export, a real audit job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from streamlit.testing.v1 import AppTest

from core.training import jobs
from core.analysis.audit import AuditSettings, audit

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
VECTORS = {"kitten": [1, 0, 0, 0], "cat": [1, 0.1, 0, 0], "a cat": [1, 0.05, 0, 0],
           "dog": [0, 1, 0, 0], "a dog": [0, 1, 0.2, 0], "hound": [0, 1, 0.6, 0], "a hound": [0, 0.6, 1, 0],
           "tree": [0, 0, 0, 1], "a fish": [0.2, 0.1, 0.2, -1], "sun": [0.3, 0.3, 0.3, 0.3],
           "a star": [0.3, 0.3, 0.3, 0.31]}
ROWS = {"anchor": ["kitten", "cat", "dog", "hound", "tree", "sun"],
        "positive": ["a cat", "a cat", "a dog", "a hound", "a fish", "a star"]}


@pytest.fixture
def home(job_home):
    return job_home


@pytest.fixture
def finished_audit(home, tmp_path):
    """An audit in the workspace of a 6-row CSV: one false negative, one duplicate group, one suspect."""
    data = tmp_path / "pairs.csv"
    pd.DataFrame(ROWS).to_csv(data, index=False)
    embed = lambda texts: torch.tensor([VECTORS[t] for t in texts], dtype=torch.float32)  # noqa: E731
    report = audit(Dataset.from_dict(ROWS), embed, AuditSettings(max_above=2), about={"data": str(data), "guide": "table"})
    folder = report.save(home / "audits" / "20250101-000000")
    return folder


def open_audit() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    return at.switch_page("views/audit.py").run()


def test_empty_workspace_says_how_to_start(home):
    at = open_audit()
    assert not at.exception and not at.error
    assert any("No audit yet" in i.value for i in at.info)
    assert at.form_submit_button[0].label == "Start the audit"


def test_findings_decisions_persist_across_a_reload_and_export(finished_audit):
    at = open_audit()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric] == ["1", "1", "1"]
    assert any("no ground truth" in c.value.lower() for c in at.caption)
    markdown = " ".join(m.value for m in at.markdown)
    assert "hound" in markdown and "a dog" in markdown  # the false negative's texts, side by side
    assert [len(g.options) for g in at.segmented_control] == [3, 3, 2]
    at.segmented_control[0].set_value("merge into group").run()
    at.segmented_control[2].set_value("drop row").run()
    saved = json.loads((finished_audit / "decisions.json").read_text())["decisions"]
    assert saved == {"fn:3:2": "merge", "pos:4": "drop"}

    again = open_audit()  # a reload (or a second tab): a new session reads the same decisions
    assert [g.value for g in again.segmented_control] == ["merge into group", None, "drop row"]
    again.selectbox(key="export_format").set_value("CSV").run()
    next(b for b in again.button if b.label == "Export").click().run()
    assert not again.error and again.success
    download = again.get("download_button")[0]
    assert download.proto.label == "Download cleaned.csv"  # a real download, beside the server path
    cleaned = pd.read_csv(finished_audit / "cleaned.csv")
    assert len(cleaned) == 5 and "group" in cleaned and "tree" not in set(cleaned.anchor)
    groups = dict(zip(cleaned.anchor, cleaned.group))
    assert groups["dog"] == groups["hound"] and groups["kitten"] == groups["cat"]


def test_undecided_filter_hides_decided_findings(finished_audit):
    at = open_audit()
    at.segmented_control[0].set_value("keep").run()
    at.toggle(key="undecided_fn").set_value(True).run()
    assert len(at.segmented_control) == 2  # the decided false negative is hidden
    at.toggle(key="undecided_fn").set_value(False).run()
    assert len(at.segmented_control) == 3


def test_start_runs_a_real_audit_job(home, tmp_path, tiny_model_dir):
    data = tmp_path / "pairs.csv"
    pd.DataFrame({k: v * 2 for k, v in ROWS.items()}).to_csv(data, index=False)
    at = open_audit()
    at.text_input[0].set_value(str(data))
    at.text_input[1].set_value(str(tiny_model_dir))
    at.number_input[0].set_value(0)
    at.slider[0].set_value(1.0)  # a random guide finds everything alike: exact copies only
    at.form_submit_button[0].click().run()
    assert not at.error and not at.exception
    job = jobs.last_job()
    assert job is not None and job.kind == "audit" and "--config" in job.steps[0].command
    deadline = time.monotonic() + 180
    while jobs.current_job() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    folder = Path(job.steps[0].log).parent
    assert (folder / "summary.json").is_file(), (folder / "audit.log").read_text()[-2000:]
    at = open_audit()
    assert not at.error and len(at.metric) == 3
    assert at.metric[1].value == "5"  # every row of the doubled data has a copy: one group per positive text


def test_a_failed_audit_is_one_error_line(home, tmp_path):
    at = open_audit()
    at.text_input[0].set_value(str(tmp_path / "missing.csv"))
    at.form_submit_button[0].click().run()
    deadline = time.monotonic() + 120
    while jobs.current_job() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    at = open_audit()
    assert any("No such file" in e.value for e in at.error)


def test_load_report_counts_its_tables(finished_audit):
    from core.analysis.audit import load_report

    heard = []
    report = load_report(finished_audit, progress=lambda *call: heard.append(call))
    assert heard == [(0, 3), (1, 3), (2, 3), (3, 3)] and report.counts() == {"fn": 1, "dup": 1, "pos": 1}


def test_the_audit_is_read_whole_only_to_export_under_a_bar_counting_its_tables(finished_audit, monkeypatch):
    from test_app_cache import Recorder

    texts = []
    monkeypatch.setattr("streamlit.progress", lambda value, text=None: Recorder(texts, text))
    at = open_audit()
    assert not at.exception and [m.value for m in at.metric] == ["1", "1", "1"]
    assert texts == []  # findings are paged from the stored tables: nothing is loaded whole
    next(b for b in at.button if b.label == "Export").click().run()
    assert texts == [f"Reading the audit: table {k} of 3…" for k in (1, 2, 3)] and at.success


@pytest.fixture
def large_audit(home):
    """An audit of 120 random rows in the workspace: dozens of false negatives, more than one page."""
    rng = np.random.default_rng(0)
    n, d = 120, 6
    a = rng.normal(size=(n, d))
    p = a + rng.normal(scale=0.8, size=(n, d))
    anchors, positives = [f"anchor {k}" for k in range(n)], [f"positive {k}" for k in range(n)]
    vectors = dict(zip(anchors, a)) | dict(zip(positives, p))
    embed = lambda texts: torch.tensor(np.stack([vectors[t] for t in texts]), dtype=torch.float32)  # noqa: E731
    report = audit(Dataset.from_dict({"anchor": anchors, "positive": positives}), embed, AuditSettings(),
                   about={"data": "bundled", "guide": "table"})
    return report, report.save(home / "audits" / "20250101-000000")


def test_findings_are_paged_and_filtered_from_the_stored_report(large_audit):
    report, _ = large_audit
    fn = report.false_negatives
    assert len(fn) > 20
    at = open_audit()
    page = at.number_input(key="page_fn")
    assert f"of {-(-len(fn) // 10)}," in page.label and f"{len(fn)} findings" in page.label
    first = [m.value for m in at.markdown if m.value.startswith("`fn:")]
    assert first == [m for m in first if any(f"`{x}`" in m for x in fn["finding"].head(10))] and len(first) == 10
    at.number_input(key="page_fn").set_value(2).run()
    second = [m.value for m in at.markdown if m.value.startswith("`fn:")]
    assert all(any(f"`{x}`" in m for x in fn["finding"].iloc[10:20]) for m in second) and len(second) == 10
    wanted = fn[(fn["anchor"] == "anchor 7") | (fn["other_anchor"] == "anchor 7")]
    at.text_input(key="find_fn").set_value("ANCHOR 7").run()
    shown = [m.value for m in at.markdown if m.value.startswith("`fn:")]
    matching = fn[fn[["anchor", "positive", "other_positive", "other_anchor"]].apply(
        lambda r: any("anchor 7" in t for t in r), axis=1)]
    assert len(shown) == min(10, len(matching)) and len(wanted) <= len(matching)
    assert all(any(f"`{x}`" in m for x in matching["finding"]) for m in shown)
    at.text_input(key="find_fn").set_value("no such text").run()
    assert any("pass these filters" in i.value for i in at.info)


def test_the_whole_set_is_the_default_once_an_audit_covered_it(large_audit, monkeypatch):
    from app import loaders, sidebar
    from core.analysis.audit import audited_whole

    assert audited_whole("bundled", "table") and not audited_whole("bundled", "another guide")
    for module in (loaders, sidebar):  # the form starts from the shared settings' guide, the default one
        monkeypatch.setattr(module, "default_guide", lambda: "table")
    assert open_audit().number_input[0].value == 0  # all rows


def test_ground_truth_labels_say_catch_or_cost(home, tmp_path):
    """With a group column, a finding's relation is named with its share of the three-way split."""
    from core.analysis.audit import dataset_relations

    rows = {**ROWS, "group": ["cat", "cat", "dog", "dog", None, None]}
    data = tmp_path / "grouped.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    ds = Dataset.from_dict(rows)
    embed = lambda texts: torch.tensor([VECTORS[t] for t in texts], dtype=torch.float32)  # noqa: E731
    report = audit(ds, embed, AuditSettings(max_above=2), relations=dataset_relations(ds),
                   about={"data": str(data), "guide": "table"})
    report.save(home / "audits" / "20250101-000001")
    at = open_audit()
    assert not at.exception and not at.error
    markdown = " ".join(m.value for m in at.markdown)
    assert "ground truth: **false-negative** (false negative)" in markdown  # hound's row vs a dog: one group
    assert "precision 100%" in [c.value for c in at.caption]  # a caption, not a delta arrow

def test_an_upload_fills_the_data_field(home):
    at = open_audit()
    at.get("file_uploader")[0].set_value(("pairs.csv", b"anchor,positive\ncat,a cat\ndog,a dog\n", "text/plain")).run()
    assert not at.exception and not at.error
    data = at.text_input[0].value
    assert data.endswith(".parquet") and pd.read_parquet(data)["anchor"].tolist() == ["cat", "dog"]
    at.get("file_uploader")[0].set_value(("bad.csv", b"anchor,positive\n\xff\xfe,x\n", "text/plain")).run()
    assert "not UTF-8" in at.error[0].value  # the analysis pages' checks


def test_a_running_audit_shows_its_bar_without_no_audit_yet(home, tmp_path):
    import sys

    jobs.start_job("audit", [jobs.Step([sys.executable, "-c", "import time; time.sleep(30)"], str(tmp_path / "a.log"))])
    at = open_audit()
    assert not at.exception and not at.error
    assert "loading its libraries, then the data and the guide" in at.get("progress")[0].proto.text
    assert at.get("progress")[0].proto.text.endswith(" s so far")  # no count yet: the time it has taken
    assert not any("No audit yet" in i.value for i in at.info)
    from core.analysis.audit import LOADING, progress_writer

    progress_writer(tmp_path)(LOADING, 1, 3)  # the audit's command counts its loading steps
    bar = at.run().get("progress")[0].proto
    assert "loading the guide (step 2 of 3)" in bar.text and bar.value == 33
    assert not any("No audit yet" in i.value for i in at.info)


def test_a_cache_fill_starts_from_the_page_and_then_the_whole_set_is_the_default(home, tmp_path, tiny_model_dir,
                                                                               monkeypatch):
    from app import loaders, sidebar
    from core.training.cache_job import filled

    data = tmp_path / "pairs.csv"
    pd.DataFrame(ROWS).to_csv(data, index=False)
    at = open_audit()
    at.text_input(key="cache_data").set_value(str(data))
    at.text_input(key="cache_guide").set_value(str(tiny_model_dir))
    at.button(key="start_cache_fill").click().run()
    assert not at.error and not at.exception
    job = jobs.last_job()
    assert job is not None and job.kind == "cache"
    deadline = time.monotonic() + 180
    while jobs.current_job() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.steps[0].settings["data"] == str(data) and filled(str(data), str(tiny_model_dir)), \
        Path(job.steps[0].log).read_text()[-2000:]
    for module in (loaders, sidebar):  # the audit form starts from this guide
        monkeypatch.setattr(module, "default_guide", lambda: str(tiny_model_dir))
    at = open_audit()
    at.text_input(key="cache_data").set_value(str(data)).run()
    assert any("holds every text of this data" in s.value for s in at.success)
    assert at.number_input[0].value == 2000  # the form's data is still "bundled": not filled, a sample
    from core.training.cache_job import SUMMARY, fills_root

    (fills_root() / "bundled-fill").mkdir()
    (fills_root() / "bundled-fill" / SUMMARY).write_text(json.dumps({"data": "bundled", "guide": str(tiny_model_dir)}))
    assert open_audit().number_input[0].value == 0  # a finished fill of the form's data and guide: all rows


def test_a_running_cache_fill_shows_its_counted_progress_and_stop(home, tmp_path):
    import sys

    from core.training.cache_job import LOG, fills_root
    from core.training.events import events_file

    folder = fills_root() / "20250101-000000"
    folder.mkdir(parents=True)
    now = time.time()
    with open(events_file(folder / LOG), "w") as f:
        for t, done in ((now - 10, 0), (now, 100)):
            f.write(json.dumps({"kind": "progress", "task": "encoding", "done": done, "total": 400, "time": t}) + "\n")
    jobs.start_job("cache", [jobs.Step([sys.executable, "-c", "import time; time.sleep(30)"], str(folder / LOG))])
    at = open_audit()
    assert not at.exception and not at.error
    bar = at.get("progress")[0].proto
    assert bar.text == "encoding texts with the guide: 100 of 400 texts stored · about 30 s left" and bar.value == 25
    at.button(key="stop_cache_fill").click().run()
    assert jobs.stop_requested()
