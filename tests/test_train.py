"""Training runs: the run directory a real (tiny) run writes, paired batches, clean stops, refusals."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from core.training import runs
from core.corpus.data import epoch_batches, load_pairs
from core.errors import GistlabError
from core.method.masking import MarginSettings, guided_mask
from core.training.config import LOSSES
from core.training.train import LibraryMaskProbe, RunRecorder, TrainConfig, build_loss, run_training

ROWS = 48


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory):
    """48 short triplets in 3 tasks; positives repeat every 12 rows, so identical texts meet in a batch."""
    path = tmp_path_factory.mktemp("data") / "pairs.csv"
    pd.DataFrame({
        "anchor": [f"sentence {i} about thing {i % 7}" for i in range(ROWS)],
        "positive": [f"a gloss of thing {i % 12}" for i in range(ROWS)],
        "negative": [f"something else entirely, number {i}" for i in range(ROWS)],
        "task": [f"task{i % 3}" for i in range(ROWS)],
    }).to_csv(path, index=False)
    return path


def tiny_config(pairs_csv, tiny_model_dir, out, **overrides) -> TrainConfig:
    settings = dict(data=str(pairs_csv), student=str(tiny_model_dir), guide=str(tiny_model_dir),
                    batch_size=8, steps=3, out=str(out))
    return TrainConfig.from_dict({**settings, **overrides})  # flat margin keys, as config.json has them


@pytest.fixture(scope="module")
def arm_runs(pairs_csv, tiny_model_dir, tmp_path_factory):
    """One 3-step run per loss arm, same seed: the tiny model as student and guide."""
    root = tmp_path_factory.mktemp("runs")
    return {arm: run_training(tiny_config(pairs_csv, tiny_model_dir, root / arm, loss=arm)) for arm in LOSSES}


def test_config_round_trip_and_bad_settings(tmp_path):
    config = TrainConfig(data="x.csv", loss="mnrl", steps=7, masking=MarginSettings(margin=0.05, contrast_positives=False),
                         data_columns={"anchor": "q"}, max_seq_length=64, out=str(tmp_path))
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["margin"], saved["contrast_positives"], "masking" in saved) == (0.05, False, False)  # flat keys
    assert TrainConfig().epochs == 1.0 and TrainConfig(steps=5).epochs is None
    for bad in ({"loss": "triplet"}, {"steps": 3, "epochs": 1}, {"batch_size": 1},
                {"margin_strategy": "sideways"}, {"warmup_ratio": 1.0}, {"temperature": 0},
                {"hardness_mode": "hardest"}, {"hardness_strength": -1.0}, {"judge_margin": float("nan")},
                {"loss": "self-judge", "judge_margin": -1.5}):
        with pytest.raises(GistlabError) as err:
            TrainConfig.from_dict(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(GistlabError, match="Unknown training settings colour"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_gist_run_writes_a_consistent_run_directory(arm_runs, pairs_csv):
    out = arm_runs["gist"]
    status = runs.read_status(out)
    assert status.state == "completed" and status.steps_done == status.total_steps == 3
    assert status.error is None and status.ended >= status.started
    assert runs.read_config(out)["loss"] == "gist"

    metrics = runs.read_metrics(out)
    assert list(metrics["step"]) == [1, 2, 3]
    for column in ("loss", "lr", "masked_fraction", "masked_a-p", "masked_a-a", "masked_p-p",
                   "masked_a-n", "step_seconds", "elapsed"):
        assert metrics[column].notna().all(), column
    assert (metrics["masked_fraction"] > 0).all() and (metrics["step_seconds"] > 0).all()

    masks = runs.read_masks(out)
    ds = load_pairs(str(pairs_csv))
    for step in (1, 2, 3):
        rows = runs.read_batch(out, step)
        cells = masks[masks["step"] == step]
        assert len(rows) == 8 and len(cells) > 0
        assert set(cells["anchor_row"]) <= set(rows) and set(cells["candidate_row"]) <= set(rows)
        assert (cells["anchor_row"].to_numpy() == np.asarray(rows)[cells["row"]]).all()
    # Each cell's recorded texts explain why it was masked: above threshold, or an identical text.
    for cell in masks.itertuples():
        candidate = ds[int(cell.candidate_row)][cell.candidate_column]
        own = ds[int(cell.anchor_row)]
        identical = candidate in (own["anchor"], own["positive"])
        assert cell.guide_score > cell.threshold - 1e-6 or identical
        assert cell.candidate_column == {"a-p": "positive", "a-a": "anchor", "p-p": "positive",
                                         "a-n": "negative"}[cell.block]
    assert (out / "model" / "README.md").is_file() and (out / "model" / "modules.json").is_file()
    assert not (out / "STOP").exists()


def test_masked_fraction_matches_the_masks_file(arm_runs):
    out = arm_runs["gist"]
    masks, metrics = runs.read_masks(out), runs.read_metrics(out).set_index("step")
    b = 8  # batch; blocks a-p (B-1 candidates per row), a-a, p-p (B-1), a-n (B)
    candidates = b * (b - 1) * 3 + b * b
    counted = masks.groupby("step").size() / candidates
    assert np.allclose(counted.to_numpy(), metrics.loc[counted.index, "masked_fraction"].to_numpy())


def test_every_arm_sees_the_same_batches_in_the_same_order(arm_runs, pairs_csv):
    batches = {arm: [runs.read_batch(out, s) for s in (1, 2, 3)] for arm, out in arm_runs.items()}
    assert all(batches[arm] == batches["gist"] for arm in LOSSES)
    planned = epoch_batches(load_pairs(str(pairs_csv)), 8, seed=0, epoch=0)[:3]
    assert batches["gist"] == planned


def test_mnrl_masks_nothing_and_gist_st_reports_the_library_rule(arm_runs):
    mnrl = runs.read_metrics(arm_runs["mnrl"])
    assert (mnrl["masked_fraction"] == 0).all() and runs.read_masks(arm_runs["mnrl"]).empty
    gist_st = runs.read_metrics(arm_runs["gist-st"])
    assert gist_st["masked_fraction"].between(0, 1).all() and (gist_st["masked_fraction"] > 0).all()
    assert not runs.read_masks(arm_runs["gist-st"]).empty


def test_library_mask_probe_equals_the_rule_on_the_guides_embeddings(tiny_model_dir):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss

    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    settings = MarginSettings(margin=0.01)
    probe = LibraryMaskProbe(guide, 3, settings)
    loss = GISTEmbedLoss(student, guide, margin=0.01)
    texts = [[f"anchor {i}" for i in range(6)], [f"positive {i}" for i in range(6)], [f"neg {i}" for i in range(6)]]
    loss([student.preprocess(t) for t in texts], None)
    mask = probe.take()
    assert probe.take() is None  # consumed: the next step starts empty
    encoded = [guide.encode(t, convert_to_tensor=True) for t in texts]
    expected = guided_mask(encoded[0], encoded[1], [encoded[2]], settings)
    for block in expected.blocks:
        assert torch.equal(mask.masked[block], expected.masked[block]), block


def test_mnrl_arm_is_gist_without_the_mask(tiny_model_dir, pairs_csv):
    """With nothing masked (margin far below) and distinct texts, the two arms give the same loss."""
    from sentence_transformers import SentenceTransformer

    ds = load_pairs(str(pairs_csv)).select(range(12)).select_columns(["anchor", "positive"])
    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    features = [student.preprocess(ds[c]) for c in ("anchor", "positive")]
    labels = torch.arange(len(ds))
    values, masks = {}, {}
    for arm in ("gist", "mnrl"):
        config = TrainConfig(loss=arm, guide=str(tiny_model_dir), masking=MarginSettings(margin=-10.0), temperature=0.05)
        loss, step_mask = build_loss(config, student, ds)
        values[arm] = loss([dict(f) for f in features], labels).item()
        masks[arm] = step_mask()
    assert values["gist"] == pytest.approx(values["mnrl"], rel=1e-5)
    assert masks["gist"].masked_fraction() == 0  # the gist arm ran its mask, and it masked nothing
    assert masks["mnrl"] is None


def test_homogeneous_batches_follow_the_plan_across_epochs(pairs_csv, tiny_model_dir, tmp_path):
    out = run_training(tiny_config(pairs_csv, tiny_model_dir, tmp_path / "homo", loss="mnrl",
                                   homogeneous=True, steps=8, batch_size=8))
    ds = load_pairs(str(pairs_csv))
    per_epoch = epoch_batches(ds, 8, seed=0, epoch=0, homogeneous=True)
    assert len(per_epoch) == 6  # 3 tasks x 16 rows / 8: step 7 starts the second epoch
    recorded = [runs.read_batch(out, s) for s in range(1, 9)]
    assert recorded == per_epoch + epoch_batches(ds, 8, seed=0, epoch=1, homogeneous=True)[:2]
    for rows in recorded:
        assert len({ds[r]["task"] for r in rows}) == 1


def test_epochs_instead_of_steps(pairs_csv, tiny_model_dir, tmp_path):
    out = run_training(tiny_config(pairs_csv, tiny_model_dir, tmp_path / "epoch", loss="mnrl",
                                   steps=None, epochs=1, batch_size=16))
    assert runs.read_status(out).total_steps == 3 and len(runs.read_metrics(out)) == 3  # 48 rows / 16


def test_stop_file_ends_the_run_cleanly(pairs_csv, tiny_model_dir, tmp_path):
    out = tmp_path / "stopped"
    out.mkdir()
    (out / "train.log").write_text("the job's log\n")
    (out / "STOP").touch()  # written before the first step: honoured after step 1
    run_training(tiny_config(pairs_csv, tiny_model_dir, out, loss="gist", steps=5))
    status = runs.read_status(out)
    assert status.state == "stopped" and status.steps_done == 1
    assert len(runs.read_metrics(out)) == 1 and not runs.read_masks(out).empty
    assert (out / "model" / "modules.json").is_file() and not (out / "STOP").exists()
    assert (out / "train.log").read_text() == "the job's log\n"  # others' files are kept


def test_ctrl_c_ends_the_run_cleanly(pairs_csv, tiny_model_dir, tmp_path, monkeypatch):
    original = RunRecorder.on_step_end

    def interrupt_at_step_2(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if state.global_step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunRecorder, "on_step_end", interrupt_at_step_2)
    out = run_training(tiny_config(pairs_csv, tiny_model_dir, tmp_path / "ctrl-c", loss="gist", steps=5))
    status = runs.read_status(out)
    assert status.state == "interrupted" and status.steps_done == 1
    assert (out / "model" / "modules.json").is_file()
    assert set(runs.read_masks(out)["step"]) == {1}


def test_failure_is_recorded_in_one_line(pairs_csv, tmp_path):
    with pytest.raises(GistlabError):
        run_training(TrainConfig(data=str(pairs_csv), student="bundled:nope", loss="mnrl",
                                 batch_size=8, steps=2, out=str(tmp_path / "bad")))
    status = runs.read_status(tmp_path / "bad")
    assert status.state == "failed" and "Unknown bundled model" in status.error
    assert "\n" not in status.error


def test_finished_runs_are_never_overwritten_by_accident(arm_runs, pairs_csv, tiny_model_dir, tmp_path):
    with pytest.raises(GistlabError, match="already holds a completed run.*--overwrite"):
        run_training(tiny_config(pairs_csv, tiny_model_dir, arm_runs["mnrl"], loss="mnrl"))
    assert runs.read_status(arm_runs["mnrl"]).steps_done == 3  # untouched
    out = tmp_path / "again"
    run_training(tiny_config(pairs_csv, tiny_model_dir, out, loss="mnrl", steps=2))
    run_training(tiny_config(pairs_csv, tiny_model_dir, out, loss="mnrl", steps=1), overwrite=True)
    assert runs.read_status(out).steps_done == 1 and len(runs.read_metrics(out)) == 1
    (out / "status.json").write_text(json.dumps({**runs.read_status(out).to_dict(), "state": "running",
                                                 "pid": os.getpid()}))
    with pytest.raises(GistlabError, match="still training"):
        run_training(tiny_config(pairs_csv, tiny_model_dir, out, loss="mnrl"), overwrite=True)


@pytest.mark.parametrize("overrides,needle", [
    ({"batch_size": 64}, "fewer than the batch size 64"),
    ({"homogeneous": True, "batch_size": 20}, "No task has 20 rows"),
])
def test_preflight_refuses_before_anything_is_written(pairs_csv, tiny_model_dir, tmp_path, overrides, needle):
    out = tmp_path / "never"
    with pytest.raises(GistlabError, match=needle):
        run_training(tiny_config(pairs_csv, tiny_model_dir, out, loss="mnrl", **overrides))
    assert not out.exists()


def test_preflight_gist_st_takes_one_negative_column(tiny_model_dir, tmp_path):
    path = tmp_path / "two_negatives.csv"
    pd.DataFrame({c: [f"{c} {i}" for i in range(8)] for c in
                  ("anchor", "positive", "negative_1", "negative_2")}).to_csv(path, index=False)
    with pytest.raises(GistlabError, match="at most one negative column"):
        run_training(tiny_config(path, tiny_model_dir, tmp_path / "st", loss="gist-st", batch_size=4))


@pytest.mark.slow
def test_bundled_student_and_guide_smoke(tmp_path):
    """The real path: bundled WordNet data, minilm-l3 student, minilm-l6 guide, a few steps."""
    out = run_training(TrainConfig(data="bundled", loss="gist", steps=2, batch_size=8,
                                   max_seq_length=32, out=str(tmp_path / "real")))
    status, metrics = runs.read_status(out), runs.read_metrics(out)
    assert status.state == "completed" and list(metrics["step"]) == [1, 2]
    assert np.isfinite(metrics["loss"]).all() and (metrics["masked_fraction"] < 0.9).all()
    assert (out / "model" / "README.md").is_file()


def truth_data(pairs_csv, tmp_path) -> tuple[pd.DataFrame, object]:
    """The pairs with WordNet-style provenance columns (a false negative: a shared synset), and their parquet."""
    data = pd.read_csv(pairs_csv)
    for role, shift in (("anchor", 0), ("positive", 0), ("negative", 1)):  # a negative: the next meaning's word
        data[f"{role}_synset"] = [f"n{i}" if shift else f"s{i % 12}" for i in range(ROWS)]
        data[f"{role}_lemmas"] = [[f"w{(i + shift) % 12}"] for i in range(ROWS)]
        data[f"{role}_category"] = [f"c{(i + 2 * shift) % 5}" for i in range(ROWS)]
    path = tmp_path / "truth.parquet"
    data.to_parquet(path)
    return data, path


def test_metrics_record_weak_rows_and_mask_quality(pairs_csv, tiny_model_dir, tmp_path, arm_runs):
    """With ground truth (WordNet-style provenance columns) every step logs the mask's false negatives,
    precision, recall and cost shares, and the masks file gives the same figures; the loss honours the
    positive floor. The tasks here are not bundled ones, so a false negative is a shared synset."""
    data, path = truth_data(pairs_csv, tmp_path)
    out = run_training(tiny_config(path, tiny_model_dir, tmp_path / "truth", loss="gist",
                                   margin=0.05, positive_floor=0.3))
    metrics = runs.read_metrics(out).set_index("step")
    masks = runs.read_masks(out)
    assert (masks["threshold"] >= 0.3 - 1e-6).all()  # the loss honours the floor
    role = {"a-p": "positive", "p-p": "positive", "a-a": "anchor", "a-n": "negative"}
    for step, cells in masks.groupby("step"):
        def kind(r: int, block: str, j: int) -> str:
            """The candidate (row j's text in ``block``'s column) against row r: a false negative (same
            synset), a related hard negative (same word or category), or unrelated."""
            c = role[block]
            if data.at[j, f"{c}_synset"] in {data.at[r, "anchor_synset"], data.at[r, "positive_synset"]}:
                return "fn"
            if (set(data.at[j, f"{c}_lemmas"]) & {*data.at[r, "anchor_lemmas"], *data.at[r, "positive_lemmas"]}
                    or data.at[j, f"{c}_category"] in {data.at[r, "anchor_category"], data.at[r, "positive_category"]}):
                return "related"
            return "unrelated"

        kinds = pd.Series([kind(r, b, j)
                           for r, b, j in zip(cells["anchor_row"], cells["block"], cells["candidate_row"])])
        assert metrics.loc[step, "fn_precision"] == pytest.approx((kinds == "fn").mean(), abs=1e-4)
        assert metrics.loc[step, "related_share"] == pytest.approx((kinds == "related").mean(), abs=1e-4)
        assert metrics.loc[step, "fn_caught"] == (kinds == "fn").sum()
        row_share = cells.groupby("row").size() / (4 * 8 - 3)  # 4 blocks of 8, minus target and 2 diagonals
        assert metrics.loc[step, "weak_rows"] == int((row_share >= 0.9).sum())
    recall = metrics["fn_recall"].dropna()
    assert len(recall) and recall.between(0, 1).all() and "fn_precision_a-n" in metrics
    assert (metrics["fn_present"] >= metrics["fn_caught"]).all()
    plain = runs.read_metrics(arm_runs["gist"])  # no ground truth: counted, but no precision keys
    assert plain["weak_rows"].notna().all() and "fn_precision" not in plain
    assert TrainConfig.from_dict(TrainConfig.from_dict({"positive_floor": 0.3}).to_dict()).masking.positive_floor == 0.3
    with pytest.raises(GistlabError, match="positive-floor"):
        run_training(tiny_config(path, tiny_model_dir, tmp_path / "st", loss="gist-st", positive_floor=0.3))


def test_masks_are_flushed_in_parts_and_memory_keeps_only_the_unflushed(pairs_csv, tiny_model_dir, tmp_path,
                                                                         monkeypatch):
    """Each flush appends one part (not a rewrite of every step so far) and empties the recorder;
    the reader sees the union, one step at a time when asked, and a part being written stays hidden."""
    import core.training.recorder as recorder_module

    kept = []
    original = RunRecorder.flush

    def flush_every_step(self):
        kept.append(len(self.masks))
        original(self)
        assert self.masks == []

    monkeypatch.setattr(recorder_module, "FLUSH_SECONDS", -1.0)  # a flush after every step
    monkeypatch.setattr(RunRecorder, "flush", flush_every_step)
    out = run_training(tiny_config(pairs_csv, tiny_model_dir, tmp_path / "parts", loss="gist", steps=3))
    parts = sorted(p.name for p in (out / "masks.parquet").iterdir())
    assert kept == [1, 1, 1, 0] and parts == [f"part-0000{k}.parquet" for k in range(3)]
    whole = runs.read_masks(out)
    assert sorted(set(whole["step"])) == [1, 2, 3]
    assert runs.read_masks(out, step=2).equals(whole[whole["step"] == 2].reset_index(drop=True))
    (out / "masks.parquet" / ".part-00003.parquet.tmp").write_bytes(b"half a file")
    assert len(runs.read_masks(out)) == len(whole)


def test_a_masks_file_of_older_runs_still_reads(arm_runs, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(arm_runs["gist"], old)
    masks = runs.read_masks(old)
    shutil.rmtree(old / "masks.parquet")
    masks.to_parquet(old / "masks.parquet", index=False)
    assert runs.read_masks(old).equals(masks) and runs.read_masks(old, step=1).equals(
        masks[masks["step"] == 1].reset_index(drop=True))


def test_arms_trained_in_one_process_match_arms_trained_alone(arm_runs, pairs_csv, tiny_model_dir, tmp_path):
    """train_arms shares the data and the guide, reloads the student per arm: each arm's run folder holds
    what the arm writes alone (gist-st first: its mask probe must leave the shared guide unhooked)."""
    from core.training.train import train_arms

    arms = ("gist-st", "mnrl", "gist")
    configs = [tiny_config(pairs_csv, tiny_model_dir, tmp_path / "pair-{loss}", loss=arm) for arm in arms]
    outs = list(train_arms(configs))
    assert outs == [tmp_path / f"pair-{arm}" for arm in arms]
    timing = ["step_seconds", "elapsed"]
    for arm, out in zip(arms, outs):
        alone = arm_runs[arm]
        assert runs.read_status(out).state == "completed"
        pd.testing.assert_frame_equal(runs.read_metrics(out).drop(columns=timing),
                                      runs.read_metrics(alone).drop(columns=timing))
        assert (out / runs.BATCHES).read_text() == (alone / runs.BATCHES).read_text()
        pd.testing.assert_frame_equal(runs.read_masks(out), runs.read_masks(alone))
        assert runs.read_config(out) == {**runs.read_config(alone), "out": str(out)}
        assert (out / "model" / "modules.json").is_file()


def test_a_later_arm_that_cannot_train_fails_before_the_first_trains(tiny_model_dir, tmp_path):
    from core.training.train import train_arms

    data = tmp_path / "two-negatives.csv"
    pd.DataFrame({"anchor": [f"a {i}" for i in range(16)], "positive": [f"p {i}" for i in range(16)],
                  "negative_1": [f"n {i}" for i in range(16)], "negative_2": [f"m {i}" for i in range(16)]}).to_csv(data)
    configs = [tiny_config(data, tiny_model_dir, tmp_path / "r-{loss}", loss=arm) for arm in ("gist", "gist-st")]
    with pytest.raises(GistlabError, match="gist-st .* takes at most one negative column"):
        next(train_arms(configs))
    assert not (tmp_path / "r-gist").exists()
    with pytest.raises(GistlabError, match=r"put \{loss\} in --out"):
        next(train_arms([tiny_config(data, tiny_model_dir, tmp_path / "same", loss=a) for a in ("gist", "mnrl")]))


def test_library_mask_probe_unhooks_when_training_ends(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    probe = LibraryMaskProbe(guide, 2, MarginSettings())
    guide.encode(["a text"])
    assert len(probe.outputs) == 1
    probe.on_train_end(None, None, None)
    guide.encode(["another text"])
    assert probe.outputs == [] and probe.take() is None  # a later arm's use of the shared guide feeds nothing


def test_self_judge_run_records_what_the_student_masked(arm_runs, pairs_csv):
    """The self-judge arm writes its masks like GIST: each cell above its row's threshold (the student's
    own positive cosine + 0.1) or an identical text, the masked fraction matching the file."""
    out = arm_runs["self-judge"]
    config = runs.read_config(out)
    assert (config["loss"], config["judge_margin"]) == ("self-judge", 0.1)
    masks, metrics = runs.read_masks(out), runs.read_metrics(out).set_index("step")
    assert not masks.empty and (metrics["masked_fraction"] > 0).any()  # a random student: not every step
    counted = masks.groupby("step").size() / (8 * 7 * 3 + 8 * 8)
    assert np.allclose(counted.to_numpy(), metrics.loc[counted.index, "masked_fraction"].to_numpy())
    ds = load_pairs(str(pairs_csv))
    for cell in masks.itertuples():
        own = ds[int(cell.anchor_row)]
        identical = ds[int(cell.candidate_row)][cell.candidate_column] in (own["anchor"], own["positive"])
        assert cell.guide_score > cell.threshold - 1e-6 or identical


def test_self_judge_loads_no_guide_and_masks_with_the_student(tiny_model_dir, pairs_csv):
    """No guide is loaded (a guide spec that cannot load is never read); the step's mask is the rule on
    the student's own cosines with threshold s_ii + judge_margin."""
    from sentence_transformers import SentenceTransformer

    ds = load_pairs(str(pairs_csv)).select(range(8)).select_columns(["anchor", "positive"])
    student = SentenceTransformer(str(tiny_model_dir), device="cpu").eval()
    config = TrainConfig(loss="self-judge", guide="/no/such/guide", judge_margin=0.02, temperature=0.05)
    loss, step_mask = build_loss(config, student, ds)
    loss([dict(student.preprocess(ds[c])) for c in ("anchor", "positive")], torch.arange(len(ds)))
    mask = step_mask()
    assert torch.allclose(mask.thresholds, mask.positive_scores + 0.02)
    assert loss.guide_cache is None


def test_self_judge_writes_false_negative_metrics(pairs_csv, tiny_model_dir, tmp_path):
    _, path = truth_data(pairs_csv, tmp_path)
    out = run_training(tiny_config(path, tiny_model_dir, tmp_path / "judge", loss="self-judge", steps=2))
    metrics = runs.read_metrics(out)
    assert metrics["fn_present"].notna().all() and metrics["fn_caught"].notna().all()
    assert (metrics["fn_present"] >= metrics["fn_caught"]).all() and metrics["fn_caught"].sum() > 0
    assert metrics["fn_recall"].dropna().between(0, 1).all() and "fn_precision" in metrics


def test_mnrl_hard_is_the_librarys_hardness_loss_on_the_same_batches(arm_runs, tiny_model_dir, pairs_csv):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    ds = load_pairs(str(pairs_csv)).select(range(8))
    config = TrainConfig(loss="mnrl-hard", hardness_mode="all_negatives", hardness_strength=5.0)
    loss, step_mask = build_loss(config, student, ds)
    assert isinstance(loss, MultipleNegativesRankingLoss) and step_mask() is None
    assert (loss.hardness_mode, loss.hardness_strength) == ("all_negatives", 5.0)
    saved = runs.read_config(arm_runs["mnrl-hard"])
    assert (saved["hardness_mode"], saved["hardness_strength"]) == ("in_batch_negatives", 9.0)
    assert runs.read_masks(arm_runs["mnrl-hard"]).empty
    first = {arm: runs.read_metrics(arm_runs[arm])["loss"].iloc[0] for arm in ("mnrl", "mnrl-hard", "gist", "gist-hard")}
    assert first["mnrl-hard"] != first["mnrl"] and first["gist-hard"] != first["gist"]  # same batch, weighted
    gist, gist_hard = (runs.read_masks(arm_runs[arm]) for arm in ("gist", "gist-hard"))
    assert gist.equals(gist_hard)  # gist-hard masks with the guide first, exactly as gist
