"""core.training.evaluate: mteb result JSON on disk, reuse, overwrite, offline skips and bad input, with the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from core.errors import GistlabError
from core.training.evaluate import EncodeMemo, evaluate, resolve_tasks, run_dir_of
from core.training.events import EVENTS_ENV, Kind, read_events


def toy_sts_task(name: str = "ToySTS"):
    """A four-pair STS task that loads in memory: mteb runs it fully offline in a second."""
    import datasets
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    class ToySTS(AbsTaskSTS):
        metadata = TaskMetadata(
            name=name, description="Four sentence pairs for tests.",
            dataset={"path": "gistlab/toy-sts", "revision": "1"}, type="STS", category="t2t",
            modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"],
            main_score="cosine_spearman",
        )
        min_score, max_score = 0, 5

        def load_data(self, **kwargs):
            self.dataset = {"default": {"test": datasets.Dataset.from_dict({
                "sentence1": ["a cat sleeps", "a dog barks", "a red car", "the blue sky"],
                "sentence2": ["a kitten naps", "a puppy yelps", "a lorry", "an ocean wave"],
                "score": [5.0, 4.0, 2.0, 1.0],
            })}}
            self.data_loaded = True

    return ToySTS()


def evaluate_toy(model_dir, out, **kwargs):
    return evaluate(str(model_dir), [toy_sts_task()], out=out, **kwargs)


def test_eval_writes_result_cache_json(tiny_model_dir, tmp_path):
    report = evaluate_toy(tiny_model_dir, tmp_path)
    assert report.computed == ["ToySTS"] and not report.reused and not report.skipped
    [file] = report.result_files
    assert file.parent.parent.parent == tmp_path / "results"  # <root>/results/<model>/<revision>/
    data = json.loads(file.read_text())
    assert data["task_name"] == "ToySTS"
    assert -1.0 <= data["scores"]["test"][0]["main_score"] <= 1.0
    meta = json.loads((file.parent / "model_meta.json").read_text())
    assert meta["name"] == report.model_name == "local/st"


def test_second_eval_reuses_and_overwrite_recomputes(tiny_model_dir, tmp_path, monkeypatch):
    first = evaluate_toy(tiny_model_dir, tmp_path)
    [file] = first.result_files
    before = file.stat().st_mtime_ns, file.read_bytes()

    lines: list[str] = []
    monkeypatch.setenv(EVENTS_ENV, str(tmp_path / "eval.events.jsonl"))
    again = evaluate(str(tiny_model_dir), [toy_sts_task()], out=tmp_path, log=lines.append)
    assert again.reused == ["ToySTS"] and again.computed == [] and again.texts_encoded == 0
    assert lines == ["evaluating 1 tasks of local/st, 1 already evaluated", "reused ToySTS"]  # for people
    events = read_events(tmp_path / "eval.events.jsonl")  # for a job's progress
    assert [(e.kind, e.task, e.total) for e in events] == [(Kind.TASKS, None, 1), (Kind.REUSED, "ToySTS", None)]
    assert (file.stat().st_mtime_ns, file.read_bytes()) == before

    forced = evaluate_toy(tiny_model_dir, tmp_path, overwrite=True)
    assert forced.computed == ["ToySTS"]
    assert file.stat().st_mtime_ns != before[0]


def test_texts_shared_by_tasks_are_embedded_once(tiny_model_dir, tmp_path):
    report = evaluate(str(tiny_model_dir), [toy_sts_task("ToyA"), toy_sts_task("ToyB")], out=tmp_path)
    assert report.computed == ["ToyA", "ToyB"]
    assert report.texts_encoded == 8  # four pairs of distinct texts, shared by both tasks


def test_encode_memo_matches_plain_encode(tiny_model):
    import numpy as np
    import torch

    plain = tiny_model.encode(["a cat", "a dog", "a cat"])
    memo = EncodeMemo(tiny_model).install()
    assert np.allclose(tiny_model.encode(["a cat", "a dog", "a cat"]), plain, atol=1e-6)
    assert memo.encoded == 2
    assert np.allclose(tiny_model.encode_query(["a dog"]), plain[1:2], atol=1e-6)
    assert np.allclose(tiny_model.encode_document(["a cat"]), plain[:1], atol=1e-6)
    assert memo.encoded == 2  # no prompts, no router: query/document vectors are the plain ones
    tiny_model.encode_query(["a fish"])
    assert memo.encoded == 3  # encode_query goes through the memo (so the hits above were hits)
    assert len(tiny_model.encode([])) == 0  # an empty call passes through (np.stack([]) would fail)
    assert isinstance(tiny_model.encode(["a cat"], convert_to_tensor=True), torch.Tensor)
    tiny_model.encode(["a bird"], prompt="query: ")
    tiny_model.encode(["a bird"])
    assert memo.encoded == 5  # a prompt changes the vector: its own entry


def test_result_for_other_data_revision_is_recomputed(tiny_model_dir, tmp_path):
    [file] = evaluate_toy(tiny_model_dir, tmp_path).result_files
    old = json.loads(file.read_text())
    file.write_text(json.dumps({**old, "dataset_revision": "0ld"}))
    report = evaluate_toy(tiny_model_dir, tmp_path)
    assert report.computed == ["ToySTS"] and report.reused == []
    assert json.loads(file.read_text())["dataset_revision"] == "1"
    assert json.loads(file.with_name("ToySTS.json.rev-0ld").read_text())["dataset_revision"] == "0ld"


def test_changed_weights_get_a_new_revision(tiny_model_dir, tmp_path):
    import torch
    from sentence_transformers import SentenceTransformer

    first = evaluate_toy(tiny_model_dir, tmp_path / "res")
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    changed = tmp_path / "st"
    model.save(str(changed))
    second = evaluate_toy(changed, tmp_path / "res")
    assert second.computed == ["ToySTS"] and second.revision != first.revision


def test_unknown_task_suggests_close_names():
    with pytest.raises(GistlabError, match="STSBenchmark") as info:
        resolve_tasks("bundled,STSBenchmarkk")
    assert "\n" not in str(info.value)


def test_task_spec_forms():
    names = [t.metadata.name for t in resolve_tasks("STSBenchmark, SciFact,STSBenchmark")]
    assert names == ["STSBenchmark", "SciFact"]
    sts = resolve_tasks("type:STS")
    assert len(sts) > 5 and {t.metadata.type for t in sts} == {"STS"}
    with pytest.raises(GistlabError, match="type"):
        resolve_tasks("type:NoSuchType")
    with pytest.raises(GistlabError, match="No task"):
        resolve_tasks(" , ")


def test_missing_model_path_is_one_line(tmp_path):
    with pytest.raises(GistlabError) as info:
        evaluate(str(tmp_path / "no" / "such" / "model"), [toy_sts_task()], out=tmp_path)
    assert "no/such/model" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_corrupt_result_stops_and_keeps_the_file(tiny_model_dir, tmp_path):
    [file] = evaluate_toy(tiny_model_dir, tmp_path).result_files
    file.write_text('{"task_name": "ToySTS", "scores": ')
    with pytest.raises(GistlabError, match="corrupt") as info:
        evaluate_toy(tiny_model_dir, tmp_path)
    assert "\n" not in str(info.value)
    assert file.read_text() == '{"task_name": "ToySTS", "scores": '

    report = evaluate_toy(tiny_model_dir, tmp_path, overwrite=True)
    assert report.computed == ["ToySTS"]
    json.loads(file.read_text())
    [aside] = list(file.parent.glob("ToySTS.json.corrupt-*"))
    assert aside.read_text() == '{"task_name": "ToySTS", "scores": '


@pytest.fixture
def make_read_only():
    """Make a folder unwritable even for root (chattr +i), undone after the test."""
    locked = []

    def lock(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
        elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root and chattr +i is not permitted: cannot make a read-only folder")
        locked.append(folder)

    yield lock
    for folder in locked:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        folder.chmod(0o755)


def test_read_only_results_folder_is_one_line(tiny_model_dir, tmp_path, make_read_only):
    [file] = evaluate_toy(tiny_model_dir, tmp_path).result_files
    before = file.read_bytes()
    make_read_only(tmp_path / "results")
    with pytest.raises(GistlabError, match="Cannot write") as info:
        evaluate_toy(tiny_model_dir, tmp_path, overwrite=True)
    assert "\n" not in str(info.value)
    assert file.read_bytes() == before


def test_interrupted_write_keeps_the_earlier_result(tiny_model_dir, tmp_path, monkeypatch):
    from mteb.results import TaskResult

    [file] = evaluate_toy(tiny_model_dir, tmp_path).result_files
    before = file.read_bytes()

    def crash(self, path):
        path.write_text('{"half a file')
        raise KeyboardInterrupt

    monkeypatch.setattr(TaskResult, "to_disk", crash)
    with pytest.raises(KeyboardInterrupt):
        evaluate_toy(tiny_model_dir, tmp_path, overwrite=True)
    assert file.read_bytes() == before
    assert not list((tmp_path / "results").glob(".staging-*"))


def test_offline_official_task_is_skipped_and_the_rest_run(tiny_model_dir, tmp_path, monkeypatch):
    """Even with HF_HUB_OFFLINE unset, an unreachable Hub means cache-only loading: no minute of retries."""
    import datasets.config
    from huggingface_hub import constants

    import core.training.evaluate

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(core.training.evaluate, "hub_unreachable", lambda: "no connection to huggingface.co")
    report = evaluate(str(tiny_model_dir), ["STSBenchmark", toy_sts_task()], out=tmp_path)
    assert report.computed == ["ToySTS"]
    [skipped] = report.skipped
    assert skipped.task == "STSBenchmark" and "not in the local Hugging Face cache" in skipped.reason
    assert "no connection" in skipped.reason
    assert constants.HF_HUB_OFFLINE is False  # the forced offline mode was undone


def test_run_dir_detection(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    assert run_dir_of(run) is None  # model/ still being written: no modules.json yet
    (run / "model" / "modules.json").write_text("[]")
    assert run_dir_of(run) == run
    (run / "config.json").unlink()
    assert run_dir_of(run) is None  # no config.json
    (run / "config.json").write_text("{}")
    assert run_dir_of(run / "model") == run
    assert run_dir_of(tmp_path) is None
