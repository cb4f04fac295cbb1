"""Several processes on CPU (gloo): the global batch's loss, gradients, masks and guide cache, and
a torchrun training run that writes one run directory and stops on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from core.method import distributed
from core.cli import main
from core.corpus.data import epoch_batches, load_pairs
from core.guides.guide_cache import GuideCache
from core.method.loss import GISTLoss, gist_loss
from core.training.runs import read_status
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
WORLD, PER_RANK = 2, 8
# 16 rows, 8 per process. Texts repeat across the two halves, so the identical-text rule must see
# the global batch: row 10's positive is row 2's anchor, row 13's negative is row 0's positive,
# rows 6 and 14 share their anchor.
ROWS = [
    ("A dog barked at the mailman.", "The canine made a loud noise.", "A cat slept on the sofa."),
    ("The puppy chased its tail.", "A young dog ran in circles.", "The kitten drank milk."),
    ("My cat caught a mouse.", "The feline hunted a rodent.", "The dog buried a bone."),
    ("Wolves howl at night.", "Wild dogs cry out after dark.", "Owls hoot in the forest."),
    ("He drove his car to work.", "He took the automobile to the office.", "He rode a bike."),
    ("The truck carried logs.", "A lorry transported timber.", "The train carried people."),
    ("She parked the van outside.", "The vehicle was left on the street.", "She walked home."),
    ("The bus was late again.", "Public transport was not on time.", "The plane landed early."),
    ("It rained all afternoon.", "There was a downpour after lunch.", "The sun shone all day."),
    ("Snow covered the hills.", "The slopes were white.", "Grass covered the fields."),
    ("The hunt ended at dawn.", "My cat caught a mouse.", "The sea was calm."),
    ("The morning was foggy.", "Mist hung in the air at dawn.", "The evening was clear."),
    ("A storm hit the coast.", "Strong winds battered the shore.", "The lake froze."),
    ("The river flooded the town.", "Water filled the streets.", "The canine made a loud noise."),
    ("She parked the van outside.", "She left the car by the house.", "The shop was closed."),
    ("Leaves fell in October.", "Autumn stripped the trees.", "Flowers bloomed in May."),
]
TEXTS = [text for column in zip(*ROWS) for text in column]
COLUMNS = ("anchor", "positive", "negative")


def rows_dataset() -> Dataset:
    data = {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}
    return Dataset.from_dict({**data, "label": list(range(len(ROWS)))})


def features(model: SentenceTransformer, ds: Dataset) -> list[dict]:
    return [model.preprocess(ds[c]) for c in COLUMNS]


def fill_reference(guide, root: Path, first: list[str]) -> GuideCache:
    """A single-process cache: ``first`` cached earlier, then every text filled."""
    cache = GuideCache(guide, "tiny", root=root)
    cache.fill(first)
    cache.fill(TEXTS)
    return cache


PREFILLED_SHARED, PREFILLED_RANK1 = TEXTS[5:9], TEXTS[20:23]


def _worker(rank: int, port: int, tiny_dir: str, work: str) -> None:
    """One of two gloo processes: a gathered GIST loss and gradient on its 8 rows, two cache fills."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    work = Path(work)
    distributed.init_from_env()
    try:
        student = SentenceTransformer(tiny_dir, device="cpu").double().eval()
        guide = SentenceTransformer(tiny_dir, device="cpu").eval()
        ds = rows_dataset()
        loss_fn = GISTLoss(student, GuideCache(guide, "tiny", root=work / "lazy"), ds,
                           gather_across_devices=True)
        own = list(range(rank * PER_RANK, (rank + 1) * PER_RANK))
        loss = loss_fn(features(student, ds.select(own)), torch.tensor(own))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        for g in grads.values():  # what DDP does: average the processes' gradients
            dist.all_reduce(g)
            g /= WORLD
        heard = []
        encoded = {
            name: distributed.fill_guide_cache(GuideCache(guide, "tiny", root=work / name), TEXTS, chunk=5,
                                               progress=lambda done, total, name=name: heard.append((name, done, total)))
            for name in ("shared", f"local{rank}")
        }
        torch.save({"loss": loss.item(), "grads": grads, "rows": loss_fn.last_rows,
                    "mask": loss_fn.last_mask.masked, "encoded": encoded, "heard": heard}, work / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tiny_model_dir, tmp_path_factory):
    """Run the two gloo processes once; their saved results, by rank."""
    work = tmp_path_factory.mktemp("two-processes")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu").eval()
    GuideCache(guide, "tiny", root=work / "shared").fill(PREFILLED_SHARED)
    GuideCache(guide, "tiny", root=work / "local1").fill(PREFILLED_RANK1)
    mp.spawn(_worker, args=(free_port(), str(tiny_model_dir), str(work)), nprocs=WORLD, join=True)
    return work, [torch.load(work / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def single_process(tiny_model_dir, tmp_path_factory):
    """The same 16 rows as one batch in one process: loss, gradients, mask, embeddings."""
    student = SentenceTransformer(str(tiny_model_dir), device="cpu").double().eval()
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu").eval()
    ds = rows_dataset()
    loss_fn = GISTLoss(student, GuideCache(guide, "tiny", root=tmp_path_factory.mktemp("one")), ds)
    loss = loss_fn(features(student, ds), torch.tensor(ds["label"]))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    with torch.no_grad():
        embeddings = [student.encode(ds[c], convert_to_tensor=True) for c in COLUMNS]
    return {"loss": loss.item(), "grads": grads, "mask": loss_fn.last_mask, "embeddings": embeddings,
            "guide": guide}


@pytest.mark.slow  # starts two Python processes
def test_each_rank_gets_the_global_batch_loss_of_its_rows(two_process_results, single_process):
    """Process r's loss = mean of the single-process per-row losses over r's rows; so the mean over
    processes (what DDP optimises and the trainer logs) = the single-process loss of all 16 rows."""
    _, results = two_process_results
    a, p, n = single_process["embeddings"]
    mask = single_process["mask"]
    for rank, result in enumerate(results):
        own = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        expected = gist_loss(a, p, [n], mask, 0.01, rows=own).item()
        assert result["loss"] == pytest.approx(expected, rel=1e-9)
    mean = sum(r["loss"] for r in results) / WORLD
    assert mean == pytest.approx(single_process["loss"], rel=1e-9)
    assert single_process["loss"] > 0.1  # a real contrastive loss, not all rows masked away


@pytest.mark.slow  # starts two Python processes
def test_averaged_gradients_equal_the_single_process_gradients(two_process_results, single_process):
    _, results = two_process_results
    expected = single_process["grads"]
    for result in results:
        assert result["grads"].keys() == expected.keys()
        for name, grad in expected.items():
            torch.testing.assert_close(result["grads"][name], grad, rtol=1e-7, atol=1e-10)
    assert any(g.abs().sum() > 0 for g in expected.values())


@pytest.mark.slow  # starts two Python processes
def test_every_rank_masks_the_global_batch_with_identical_texts_across_ranks(
    two_process_results, single_process
):
    _, results = two_process_results
    mask = single_process["mask"]
    for result in results:
        assert result["rows"].tolist() == list(range(len(ROWS)))
        assert result["mask"].keys() == mask.masked.keys()
        for block, cells in mask.masked.items():
            assert torch.equal(result["mask"][block], cells), block
    # texts shared between the two halves are masked whatever the guide says
    assert mask.masked["a-p"][2, 10] and mask.masked["a-a"][10, 2]
    assert mask.masked["a-n"][0, 13]  # a-n column k * B + j is negative column k of row j
    assert mask.masked["a-a"][6, 14] and mask.masked["a-a"][14, 6]
    assert 0.05 < mask.masked_fraction() < 0.95  # the guide masks some candidates, not all


@pytest.mark.slow  # starts two Python processes
def test_cache_filled_by_two_processes_equals_one_filled_by_one(two_process_results, single_process, tmp_path):
    work, results = two_process_results
    guide = single_process["guide"]
    for name, first in (("shared", PREFILLED_SHARED), ("local0", []), ("local1", PREFILLED_RANK1)):
        two = GuideCache(guide, "tiny", root=work / name)
        one = fill_reference(guide, tmp_path / name, first)
        assert (two.path / "index.bin").read_bytes() == (one.path / "index.bin").read_bytes(), name
        np.testing.assert_allclose(two.embed(TEXTS).numpy(), one.embed(TEXTS).numpy(), atol=1e-6)
    distinct = len(set(TEXTS))
    # texts cached on rank 1 only are still encoded (once, shared out) so rank 0 gets them too
    assert [r["encoded"]["shared"] for r in results] == [distinct - len(PREFILLED_SHARED)] * WORLD
    assert results[0]["encoded"]["local0"] == results[1]["encoded"]["local1"] == distinct
    for r in results:  # progress counted after each round of chunk * WORLD texts, from what every rank had
        shared = [(done, total) for name, done, total in r["heard"] if name == "shared"]
        missing = distinct - len(PREFILLED_SHARED)
        done = [d for d, total in shared if total == distinct]
        assert len(done) == len(shared) and done[0] == distinct - missing and done[-1] == distinct
        assert all(0 < b - a <= 5 * WORLD for a, b in zip(done, done[1:]))  # one reading per round


def test_gist_loss_rows_average_the_chosen_rows(single_process):
    a, p, n = single_process["embeddings"]
    mask = single_process["mask"]
    per_row = [gist_loss(a, p, [n], mask, 0.01, rows=slice(i, i + 1)).item() for i in range(len(ROWS))]
    assert np.mean(per_row) == pytest.approx(gist_loss(a, p, [n], mask, 0.01).item(), rel=1e-9)
    assert np.mean(per_row[3:7]) == pytest.approx(gist_loss(a, p, [n], mask, 0.01, rows=slice(3, 7)).item(),
                                                  rel=1e-9)


def test_one_process_is_the_identity(tiny_model_dir, tmp_path):
    emb, guide, rows = [torch.ones(3, 2)], torch.zeros(2, 3, 4), torch.arange(3)
    assert distributed.gather_batch(emb, guide, rows) == (emb, guide, rows, slice(None))
    assert distributed.gather_rows(rows) == [0, 1, 2]
    assert distributed.on_main(lambda: 7) == 7 and distributed.is_main()
    assert distributed.trainer_options() == {}
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    cache = GuideCache(model, "tiny", root=tmp_path)
    assert distributed.fill_guide_cache(cache, TEXTS) == len(set(TEXTS)) == len(cache)


def test_cache_command_fills_the_workspace_cache(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in ROWS))
    assert main(["cache", "--guide", str(tiny_model_dir), "--data", str(data)]) == 0
    assert f"{len(set(TEXTS))} distinct texts" in capsys.readouterr().out
    cache = GuideCache(SentenceTransformer(str(tiny_model_dir), device="cpu"), "tiny")
    assert all(t in cache for t in TEXTS)


def test_gather_is_refused_for_the_library_arm(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(dict(zip(COLUMNS[:2], r))) + "\n" for r in ROWS))
    code = main(["train", "--data", str(data), "--loss", "gist-st", "--gather-across-devices",
                 "--student", str(tiny_model_dir), "--guide", str(tiny_model_dir), "--batch-size", "4",
                 "--steps", "1", "--out", str(tmp_path / "run")])
    assert code == 2 and "--loss gist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def still_student_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny BERT without dropout, so a training step's loss is reproducible outside the run."""
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    config = model[0].auto_model.config
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    out = tmp_path_factory.mktemp("still") / "student"
    model.save(str(out))
    return out


@pytest.mark.slow  # starts two Python processes
def test_torchrun_training_writes_one_run_and_stops_every_rank(still_student_dir, tiny_model_dir, tmp_path):
    data, run = tmp_path / "pairs.jsonl", tmp_path / "run"
    data.write_text("".join(json.dumps(dict(zip(COLUMNS, r))) + "\n" for r in ROWS))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
           "--master_port", str(free_port()), "-m", "core.cli", "train", "--data", str(data),
           "--student", str(still_student_dir), "--guide", str(tiny_model_dir), "--batch-size", "4",
           "--steps", "5000", "--gather-across-devices", "--lr", "1e-4", "--out", str(run)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count("\n") >= 3:
            (run / "STOP").write_text("")
            break
        time.sleep(0.2)
    output = proc.communicate(timeout=max(deadline - time.monotonic(), 1))[0]
    assert proc.returncode == 0, output[-3000:]
    assert output.count("stopped after") == 1  # rank 0 reports; rank 1 stays quiet

    status = read_status(run)
    assert status.state == "stopped" and status.processes == WORLD
    done = status.steps_done
    assert 3 <= done < 5000  # past the end of the first epoch (2 steps)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, done + 1))  # one writer: rank 0
    assert (run / "model" / "modules.json").is_file() and not (run / "STOP").exists()

    # Both ranks followed the planned order: step s trains planned batches 2s-2 and 2s-1 together.
    ds = load_pairs(str(data))
    plan = [b for epoch in range(done) for b in epoch_batches(ds, 4, 0, epoch)]
    batches = [json.loads(line)["rows"] for line in (run / "batches.jsonl").read_text().splitlines()]
    assert batches == [plan[2 * i] + plan[2 * i + 1] for i in range(done)]

    # The logged loss of step 1 (mean over ranks, before any update) is the global batch's loss.
    student = SentenceTransformer(str(still_student_dir), device="cpu")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu").eval()
    one = rows_dataset().select(batches[0])
    loss_fn = GISTLoss(student, GuideCache(guide, "tiny", root=tmp_path / "cache"), rows_dataset())
    expected = loss_fn(features(student, one), torch.tensor(batches[0])).item()
    assert metrics[0]["loss"] == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert metrics[0]["masked_fraction"] == pytest.approx(loss_fn.last_mask.masked_fraction())
