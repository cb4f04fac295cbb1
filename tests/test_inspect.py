"""The inspector's tables agree with guided_mask, re-masking never encodes, bad input is one line."""

import pandas as pd
import pytest
import torch

from core.cli import main
from core.analysis.inspect import Batch, embed_batch, encoder, inspect_batch, mask_batch, remask
from core.method.masking import BLOCKS, MarginSettings, guided_mask

ANCHORS = ["a cat sat on the mat", "dogs bark at night", "the stock market fell", "rain is wet",
           "a kitten on a rug", "the sun is hot"]
POSITIVES = ["feline resting", "canine noise", "shares dropped", "water from clouds",
             "young cat lying down", "our star is warm"]
NEGATIVES = ["a car engine", "a violin solo", "dogs bark at night", "a red apple", "cold ice",
             "a tax form"]


@pytest.fixture
def batch():
    return Batch(rows=[10, 11, 12, 13, 14, 15], anchors=ANCHORS, positives=POSITIVES,
                 negatives=[NEGATIVES], negative_names=["negative"])


class Counting:
    """An Embed that counts how many texts it was asked to encode."""

    def __init__(self, model):
        self.embed, self.texts = encoder(model), 0

    def __call__(self, texts):
        self.texts += len(texts)
        return self.embed(texts)


def test_batch_layout_matches_guided_mask_columns(batch):
    texts, roles, rows = batch.candidates("a-n")
    assert texts == NEGATIVES and roles == ["negative"] * 6 and rows == batch.rows
    assert batch.row_texts("p-p") == POSITIVES and batch.row_texts("a-n") == ANCHORS
    assert batch.texts()[:6] == ANCHORS and len(batch.texts()) == 18


def test_report_equals_fresh_guided_mask(tiny_model, batch):
    settings = MarginSettings("relative", 0.1)
    report = inspect_batch(batch, encoder(tiny_model), settings, student=encoder(tiny_model))
    emb = embed_batch(batch, encoder(tiny_model))
    fresh = guided_mask(emb.anchor, emb.positive, emb.negatives, settings,
                        anchor_texts=ANCHORS, positive_texts=POSITIVES, negative_texts=[NEGATIVES])
    for block in BLOCKS:
        assert torch.equal(report.mask.masked[block], fresh.masked[block])
        # one line per masked candidate cell, with the guide's score of that cell
        cells = report.pairs[report.pairs.block == block]
        assert len(cells) == int(fresh.masked_candidates(block).sum())
        for _, line in cells.iterrows():
            assert line.guide_score == pytest.approx(float(fresh.guide_scores[block][line.row, _col(batch, line)]))
    # same model as guide and student: the student's scores are the guide's
    assert (report.pairs.guide_score - report.pairs.student_score).abs().max() < 1e-5


def _col(batch, line):
    """The guided_mask column of a masked-pairs line, recovered from its candidate text."""
    texts, _, rows = batch.candidates(line.block)
    return next(c for c, (t, r) in enumerate(zip(texts, rows)) if t == line.candidate and r == line.candidate_row)


def test_identical_texts_are_listed_and_flagged(tiny_model, batch):
    # Row 2's negative is row 1's anchor text: masked for row 1 in a-n whatever the margin.
    report = inspect_batch(batch, encoder(tiny_model), MarginSettings(margin=-5.0))
    assert report.pairs[["block", "row", "candidate_row", "identical_text"]].values.tolist() == [
        ["a-n", 1, 12, True]
    ]


def test_counts_agree_with_pairs(tiny_model, batch):
    report = inspect_batch(batch, encoder(tiny_model), MarginSettings(margin=0.3))
    per_row = report.pairs.groupby("row").size().reindex(range(len(batch)), fill_value=0)
    assert report.counts["total"].tolist() == per_row.tolist()
    for block in report.mask.blocks:
        assert report.counts[block].sum() == (report.pairs.block == block).sum()
    assert ((report.pairs.guide_score > report.pairs.threshold) | report.pairs.identical_text).all()


def test_remask_reuses_embeddings_and_equals_fresh_inspect(tiny_model, batch):
    guide = Counting(tiny_model)
    report = inspect_batch(batch, guide, MarginSettings())
    encoded, threads = guide.texts, torch.get_num_threads()
    for settings in [MarginSettings("absolute", 0.2), MarginSettings("relative", 0.5, False, True),
                     MarginSettings("absolute", -0.1, True, False)]:
        again = remask(report, settings)
        fresh = mask_batch(batch, report.guide, settings)
        assert again.mask.blocks == fresh.blocks
        for block in fresh.blocks:
            assert torch.equal(again.mask.masked[block], fresh.masked[block])
        assert again.settings == settings and (again.pairs.margin == settings.margin).all()
    assert guide.texts == encoded == 18  # one encode of the 18 texts, never again
    assert torch.get_num_threads() == threads  # remask's one-thread section is undone


def test_student_prefers_column(tiny_model, minilm_l6, batch):
    report = inspect_batch(batch, encoder(minilm_l6), MarginSettings(margin=0.5),
                           student=encoder(tiny_model))
    pairs = report.pairs
    assert len(pairs) > 0
    assert (pairs.student_prefers == (pairs.student_score > pairs.student_positive_score)).all()


def test_without_student_columns_are_empty(tiny_model, batch):
    pairs = inspect_batch(batch, encoder(tiny_model), MarginSettings(margin=0.3)).pairs
    assert pairs.student_score.isna().all() and "student_prefers" in pairs.columns


@pytest.fixture
def pairs_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    rows = [(a, p, n) for a, p, n in zip(ANCHORS, POSITIVES, NEGATIVES)]
    pd.DataFrame(rows * 2, columns=["anchor", "positive", "negative"]).to_csv(path, index=False)
    return path


def test_cli_inspect_prints_and_writes_csv(tiny_model_dir, pairs_csv, tmp_path, capsys):
    out = tmp_path / "pairs_out.csv"
    code = main(["inspect", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--batch-size", "6",
                 "--margin", "0.2", "--csv", str(out)])
    printed = capsys.readouterr().out
    table = pd.read_csv(out)
    assert code == 0 and f"{len(table)} masked pairs" in printed and "absolute margin 0.2" in printed
    assert (table.margin == 0.2).all() and table.student_score.isna().all()


def test_cli_bad_input_is_one_line(tiny_model_dir, pairs_csv, capsys):
    assert main(["inspect", "--data", str(pairs_csv), "--guide", str(tiny_model_dir),
                 "--batch-size", "50"]) == 2
    assert "fewer than the batch size" in capsys.readouterr().err
    assert main(["inspect", "--run", "no-such-run"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_run_batch_matches_the_masks_training_recorded(tiny_model_dir, pairs_csv, tmp_path):
    """Opening a run's step shows the very cells training masked at that step (masks.parquet)."""
    from core.guides.guide_cache import GuideCache
    from core.analysis.inspect import open_run_batch, run_student
    from core.guides.models import load_model
    from core.training.runs import read_masks
    from core.training.train import TrainConfig, run_training

    config = TrainConfig(data=str(pairs_csv), student=str(tiny_model_dir), guide=str(tiny_model_dir), steps=2,
                         batch_size=4, masking=MarginSettings("relative", 0.1), out=str(tmp_path / "run"))
    run = run_training(config)
    batch, opened = open_run_batch(run, 2)
    assert opened.masking == config.masking and opened.guide == str(tiny_model_dir)
    assert run_student(run) == str(run / "model")
    guide = GuideCache(load_model(opened.guide), opened.guide).embed
    pairs = inspect_batch(batch, guide, opened.masking).pairs
    recorded = read_masks(run, step=2)
    key = ["row", "block", "candidate_row"]
    assert len(pairs) > 0
    assert sorted(map(tuple, pairs[key].values.tolist())) == sorted(map(tuple, recorded[key].values.tolist()))


def test_one_thread_blocks_may_overlap_and_restore_the_default():
    """Two sessions re-masking at once (interleaved, not nested) must not leave torch on one thread."""
    from core.analysis.inspect import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so "restored" differs from "stuck at one" on any machine
    first, second = one_thread(), one_thread()
    first.__enter__()
    second.__enter__()
    assert torch.get_num_threads() == 1
    first.__exit__(None, None, None)  # the first leaves while the second still runs
    assert torch.get_num_threads() == 1
    second.__exit__(None, None, None)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)


def test_filter_pairs_by_block_student_and_text():
    from core.analysis.inspect import filter_pairs

    pairs = pd.DataFrame({"block": ["a-p", "a-n", "a-n"], "text": ["A cat", "a dog", "a bird"],
                          "candidate": ["x", "Cat food", "y"], "student_prefers": [True, None, True]})
    assert filter_pairs(pairs).equals(pairs)
    assert filter_pairs(pairs, ["a-n"])["text"].tolist() == ["a dog", "a bird"]
    assert filter_pairs(pairs, student_prefers=True)["text"].tolist() == ["A cat", "a bird"]
    assert filter_pairs(pairs, text="CAT")["text"].tolist() == ["A cat", "a dog"]  # row text or candidate
    assert filter_pairs(pairs, ["a-n"], True, "bird")["text"].tolist() == ["a bird"]


def test_cli_inspect_prints_mask_quality_and_weak_rows(tiny_model_dir, pairs_csv, capsys):
    """Bundled data: the precision/recall table and the weak rows, as inspect_batch computes them;
    data without ground truth says so instead of printing zeros."""
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.method.masking import MarginSettings
    from core.guides.models import load_model

    argv = ["inspect", "--data", "bundled", "--guide", str(tiny_model_dir), "--batch-size", "16",
            "--margin", "0.1", "--show", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    batch = Batch.draw(load_pairs("bundled"), 16, seed=0)
    report = inspect_batch(batch, GuideCache(load_model(str(tiny_model_dir)), str(tiny_model_dir)).embed,
                           MarginSettings(margin=0.1))
    pooled = report.quality.set_index(["task", "block"]).loc[("all", "all")]
    line = next(x for x in printed.splitlines() if x.split()[:2] == ["all", "all"])
    # masked, false negatives present, caught, missed, precision (caught / masked)
    assert line.split()[2:7] == [str(int(pooled.masked)), str(int(pooled.false_negatives)), str(int(pooled.caught)),
                                 str(int(pooled.missed)), f"{pooled.precision:.3f}"]
    assert pooled.precision == pytest.approx(pooled.caught / pooled.masked)
    assert f"{report.mask.weak_row_count()} weak-positive rows" in printed
    assert "relation" in printed and "no ground truth" not in printed
    assert main(["inspect", "--data", str(pairs_csv), "--guide", str(tiny_model_dir), "--batch-size", "6"]) == 0
    assert "no ground truth in this data" in capsys.readouterr().out


def test_cli_inspect_counts_false_negatives_at_a_set_rate(tiny_model_dir, capsys):
    """This random batch of a definition task holds no false negative (such batches of 16 seldom do,
    0.2% of rows: assets/README.md), and says so (recall undefined); at
    --false-negatives 0.25 every row has about 4 of its 16 in-batch positives as right answers,
    counted as present, caught and missed, with the precision, recall and cost shares beside them."""
    base = ["inspect", "--data", "bundled", "--guide", str(tiny_model_dir), "--batch-size", "16",
            "--task", "example_definition", "--show", "0"]
    assert main(base) == 0
    assert "no false negatives in this batch: recall undefined" in capsys.readouterr().out
    assert main([*base, "--false-negatives", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "at false-negative rate 0.25" in printed
    head = next(x for x in printed.splitlines() if x.startswith("false negatives: "))
    present = int(head.split()[2])
    caught, missed = int(head.split()[4]), int(head.split()[6])
    assert present == caught + missed and present >= 16 * 3 * 3  # ~4 per row in a-p, a-a and p-p each
    assert "precision" in head and "related hard negatives" in head and "unrelated" in head
    # the identical texts of repeated pairs are always masked: some are caught whatever the guide
    assert caught > 0


def test_opening_a_run_batch_counts_its_stages(pairs_csv, tmp_path):
    """open_run_batch reports (stages done, 3) as each stage starts and at the end, and finds the recorded rows."""
    from core.analysis.inspect import RUN_STAGES, open_run_batch
    from core.training.train import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(data=str(pairs_csv), student="s", guide="g", batch_size=2, out=str(run)).save(run / "config.json")
    (run / "batches.jsonl").write_text('{"step": 1, "rows": [2, 0]}\n')
    heard = []
    batch, config = open_run_batch(run, 1, progress=lambda *call: heard.append(call))
    assert heard == [(0, 3), (1, 3), (2, 3), (3, 3)] and len(RUN_STAGES) == 3
    assert batch.rows == [2, 0] and config.guide == "g"
