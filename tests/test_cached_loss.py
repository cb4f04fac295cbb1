"""CachedGISTLoss: parity with the library's CachedGISTEmbedLoss and with our GISTLoss, the guide
cache kept (no guide forward when warm), dropout replayed, the student's dtype, the trainer."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import CachedGISTEmbedLoss

from core.method.cached_loss import CachedGISTLoss
from core.errors import GistlabError
from core.guides.guide_cache import GuideCache
from core.method.loss import GISTLoss
from core.method.masking import MarginSettings
from tests.test_loss import ROWS, SETTINGS, features, loss_and_grads, pairs_dataset
from tests.test_loss import tiny_guide_cache  # noqa: F401 (a fixture)
from tests.test_train import pairs_csv  # noqa: F401 (a fixture)

MINI = 5  # 12 rows -> mini-batches of 5, 5, 2: uneven on purpose

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def student(tiny_model_dir):
    return SentenceTransformer(str(tiny_model_dir), device="cpu").eval()


def worst_relative_gap(want: dict, got: dict) -> float:
    """Largest |got - want| of any gradient tensor, relative to that tensor's largest entry.

    Tensors whose gradient is float noise (< 1e-6 of the largest entry of all, e.g. attention key
    biases, to which a softmax is invariant: ~1e-11 here) are measured against that floor instead.
    """
    assert want.keys() == got.keys() and want
    floor = 1e-6 * max(g.abs().max().item() for g in want.values())
    return max(((got[n] - g).abs().max() / max(g.abs().max().item(), floor)).item() for n, g in want.items())


def library_and_ours(student, cache, settings, negatives, seed=None):
    """(library loss, our loss, library grads, our grads, our loss object); ``seed`` reseeds
    torch before each, so a student in train mode draws the same dropout in both."""
    ds = pairs_dataset(ROWS, negatives)
    feats, labels = features(student, ds), torch.tensor(ds["label"])
    library = CachedGISTEmbedLoss(
        student, cache.guide, temperature=0.01, mini_batch_size=MINI, margin=settings.margin,
        margin_strategy=settings.margin_strategy, contrast_anchors=settings.contrast_anchors,
        contrast_positives=settings.contrast_positives,
    )
    assert not library.must_retokenize  # same tokenizer: both guides see the same tokens
    ours = CachedGISTLoss(student, cache, ds, temperature=0.01, settings=settings, mini_batch_size=MINI)
    results = []
    for loss in (library, ours):
        if seed is not None:
            torch.manual_seed(seed)
        results.append(loss_and_grads(loss, student, feats, labels))
    (want, want_grads), (got, got_grads) = results
    return want, got, want_grads, got_grads, ours


@pytest.mark.parametrize("negatives", [True, False], ids=["triplets", "pairs"])
@pytest.mark.parametrize("settings", SETTINGS[::3], ids=lambda s: f"{s.margin_strategy}-{s.margin}-{s.contrast_anchors}-{s.contrast_positives}")
def test_matches_sentence_transformers_cached_gist_embed_loss(student, tiny_guide_cache, settings, negatives):
    tiny_guide_cache.guide.eval()  # the library never sets it; our cache did (GUIDE.md pitfall)
    want, got, want_grads, got_grads, ours = library_and_ours(student, tiny_guide_cache, settings, negatives)
    assert abs(got - want) <= 1e-5
    assert worst_relative_gap(want_grads, got_grads) <= 1e-4
    if settings.margin > 0:  # only worth something if the guide masks
        assert 0 < ours.last_mask.masked_fraction() < 1


def test_dropout_is_replayed_like_the_library(tiny_model_dir, tiny_guide_cache):
    """Student in train mode: the backward re-embedding replays each mini-batch's dropout, so with
    the same seed both losses draw the same masks and agree; a different seed does not."""
    student = SentenceTransformer(str(tiny_model_dir), device="cpu").train()
    settings = MarginSettings(margin=0.05)
    want, got, want_grads, got_grads, _ = library_and_ours(student, tiny_guide_cache, settings, True, seed=3)
    assert abs(got - want) <= 1e-5 and worst_relative_gap(want_grads, got_grads) <= 1e-4
    _, other, *_ = library_and_ours(student, tiny_guide_cache, settings, True, seed=4)
    assert abs(other - got) > 1e-4


@pytest.mark.parametrize("negatives", [True, False], ids=["triplets", "pairs"])
@pytest.mark.parametrize("settings", [MarginSettings(margin=0.1), MarginSettings("relative", 0.05, True, False)],
                         ids=["absolute", "relative"])
def test_equals_uncached_gist_loss(student, tiny_guide_cache, settings, negatives):
    ds = pairs_dataset(ROWS, negatives)
    feats, labels = features(student, ds), torch.tensor(ds["label"])
    plain = GISTLoss(student, tiny_guide_cache, ds, settings=settings)
    cached = CachedGISTLoss(student, tiny_guide_cache, ds, settings=settings, mini_batch_size=MINI)
    want, want_grads = loss_and_grads(plain, student, feats, labels)
    got, got_grads = loss_and_grads(cached, student, feats, labels)
    assert abs(got - want) <= 1e-5 and worst_relative_gap(want_grads, got_grads) <= 1e-4
    for block in plain.last_mask.blocks:
        assert torch.equal(cached.last_mask.masked[block], plain.last_mask.masked[block])
    assert cached.last_rows.tolist() == plain.last_rows.tolist()
    with torch.no_grad():  # evaluation: no gradients to cache, same value
        assert cached([dict(f) for f in feats], labels).item() == pytest.approx(want, abs=1e-5)


def test_guide_is_the_cache_of_raw_texts_and_never_runs_when_warm(tiny_model_dir, tmp_path):
    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu").train()
    ds = pairs_dataset(ROWS, negatives=True)
    cache = GuideCache(guide, "tiny", root=tmp_path)
    loss = CachedGISTLoss(student, cache, ds, mini_batch_size=4)
    feats, labels = features(student, ds), torch.tensor(ds["label"])

    loss([dict(f) for f in feats], labels).backward()
    assert cache.texts_encoded == 3 * len(ROWS) and all(t in cache for t in ds["negative"])
    passes = cache.forward_passes
    loss([dict(f) for f in feats], labels).backward()  # warm: not one guide forward
    assert cache.forward_passes == passes and cache.texts_encoded == 3 * len(ROWS)
    assert not guide.training and all(p.grad is None for p in guide.parameters())
    assert loss.get_config_dict()["mini_batch_size"] == 4 and loss.uses_gradient_cache


def test_bfloat16_student_gets_a_float32_mask_on_its_device(student, tiny_guide_cache, tiny_model_dir):
    """The CPU stand-in for a bf16 GPU run: the cache's float32 rows are moved once to the
    student's device; the mask stays float32 (bf16 rounding would flip the strict '>'), so it
    equals the float32 student's mask, and the loss is finite."""
    cached = tiny_guide_cache.embed(ROWS[0][:2], device="cpu", dtype=torch.bfloat16)
    assert cached.dtype == torch.bfloat16 and tiny_guide_cache.embed(ROWS[0][:2]).dtype == torch.float32

    ds = pairs_dataset(ROWS, negatives=True)
    labels = torch.tensor(ds["label"])
    masks = []
    for model in (student, SentenceTransformer(str(tiny_model_dir), device="cpu").to(torch.bfloat16).eval()):
        loss = CachedGISTLoss(model, tiny_guide_cache, ds, settings=MarginSettings(margin=0.05), mini_batch_size=MINI)
        value = loss(features(model, ds), labels)
        value.backward()
        assert torch.isfinite(value)
        masks.append(loss.last_mask)
    assert masks[1].guide_scores["a-p"].dtype == torch.float32
    assert all(torch.equal(masks[0].masked[b], masks[1].masked[b]) for b in masks[0].blocks)


def test_rejects_bad_settings(student, tiny_guide_cache):
    ds = pairs_dataset(ROWS[:4], negatives=False)
    with pytest.raises(GistlabError, match="at least 1"):
        CachedGISTLoss(student, tiny_guide_cache, ds, mini_batch_size=0)
    loss = CachedGISTLoss(student, tiny_guide_cache, ds)
    with pytest.raises(ValueError, match="label"):
        loss(features(student, ds), None)


def test_mini_batch_runs_are_deterministic_and_mask_like_default_runs(pairs_csv, tiny_model_dir, tmp_path):
    """--mini-batch-size trains with CachedGISTLoss; one seed gives identical runs; the guide's
    masks (a function of the batch and the guide only) equal the default run's, step by step."""
    from core.training import runs
    from core.training.train import run_training
    from tests.test_train import tiny_config

    def train(name, **overrides):
        out = run_training(tiny_config(pairs_csv, tiny_model_dir, tmp_path / name, margin=0.05, **overrides))
        return runs.read_metrics(out), runs.read_masks(out)

    first, first_masks = train("a", mini_batch_size=3)
    again, again_masks = train("b", mini_batch_size=3)
    plain, plain_masks = train("plain")
    assert first["loss"].tolist() == again["loss"].tolist() and first_masks.equals(again_masks)
    assert first_masks.equals(plain_masks) and len(first_masks) > 0
    assert first["masked_fraction"].tolist() == plain["masked_fraction"].tolist()


@pytest.mark.parametrize("arm", ["gist", "mnrl", "gist-st"])
def test_build_loss_picks_the_gradcache_form_only_with_a_mini_batch(arm, pairs_csv, tiny_model_dir):
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss, GISTEmbedLoss, MultipleNegativesRankingLoss,
    )

    from core.corpus.data import load_pairs
    from core.training.train import build_loss
    from tests.test_train import tiny_config

    ds = load_pairs(str(pairs_csv))
    cached = {"gist": CachedGISTLoss, "mnrl": CachedMultipleNegativesRankingLoss, "gist-st": CachedGISTEmbedLoss}
    plain = {"gist": GISTLoss, "mnrl": MultipleNegativesRankingLoss, "gist-st": GISTEmbedLoss}
    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    loss, step_mask = build_loss(tiny_config(pairs_csv, tiny_model_dir, None, loss=arm, mini_batch_size=3), student, ds)
    assert type(loss) is cached[arm] and loss.mini_batch_size == 3
    default, _ = build_loss(tiny_config(pairs_csv, tiny_model_dir, None, loss=arm), student, ds)
    assert type(default) is plain[arm]  # default runs are unchanged
    if arm == "gist-st":  # the mask probe reads the library's guide outputs, mini-batch by mini-batch
        batch = ds.select(range(8))
        feats = [student.preprocess(batch[c]) for c in ("anchor", "positive", "negative")]
        loss(feats, None).backward()
        mask = step_mask()
        guide = loss.guide.encode(batch["anchor"], convert_to_tensor=True)
        positive = loss.guide.encode(batch["positive"], convert_to_tensor=True)
        expected = torch.nn.functional.normalize(guide, dim=1) @ torch.nn.functional.normalize(positive, dim=1).T
        torch.testing.assert_close(mask.guide_scores["a-p"], expected, atol=1e-5, rtol=0)


def test_bf16_cached_run_on_cpu_and_fp16_refused(pairs_csv, tiny_model_dir, tmp_path, capsys):
    """The CPU test of the mixed-precision path: bf16 reaches the trainer (CPU autocast) and trains;
    fp16 without CUDA is one clear line before anything is written."""
    from core.training import runs
    from core.cli import main
    from core.training.train import precision_options, run_training
    from tests.test_train import tiny_config

    assert precision_options(True, False) == {"bf16": True, "fp16": False, "use_cpu": True}
    out = run_training(tiny_config(pairs_csv, tiny_model_dir, tmp_path / "bf16", steps=2, bf16=True,
                                   mini_batch_size=3))
    assert runs.read_status(out).state == "completed" and runs.read_config(out)["bf16"] is True
    assert runs.read_metrics(out)["loss"].notna().all()

    capsys.readouterr()
    code = main(["train", "--data", str(pairs_csv), "--student", str(tiny_model_dir), "--guide", str(tiny_model_dir),
                 "--steps", "1", "--batch-size", "8", "--mini-batch-size", "4", "--fp16", "--out", str(tmp_path / "fp16")])
    err = capsys.readouterr().err
    assert code == 2 and "--fp16 needs a CUDA GPU" in err and err.count("\n") == 1
    assert not (tmp_path / "fp16" / "config.json").exists()
    with pytest.raises(GistlabError, match="not both"):
        tiny_config(pairs_csv, tiny_model_dir, None, bf16=True, fp16=True)
    with pytest.raises(GistlabError, match="mini-batch size"):
        tiny_config(pairs_csv, tiny_model_dir, None, mini_batch_size=0)


def test_live_judge_and_hardness_equal_the_uncached_loss(student):
    """The self-judge (no guide cache) and GIST + hardness in mini-batches: same value, mask and gradients."""
    ds = pairs_dataset(ROWS, negatives=True)
    feats, labels = features(student, ds), torch.tensor(ds["label"])
    options = dict(settings=MarginSettings(margin=0.0), hardness_mode="all_negatives", hardness_strength=5.0)
    plain = GISTLoss(student, None, ds, **options)
    cached = CachedGISTLoss(student, None, ds, mini_batch_size=MINI, **options)
    want, want_grads = loss_and_grads(plain, student, feats, labels)
    got, got_grads = loss_and_grads(cached, student, feats, labels)
    assert abs(got - want) <= 1e-5 and worst_relative_gap(want_grads, got_grads) <= 1e-4
    assert 0 < plain.last_mask.masked_fraction() < 1
    for block in plain.last_mask.blocks:
        assert torch.equal(cached.last_mask.masked[block], plain.last_mask.masked[block])
