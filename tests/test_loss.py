"""GISTLoss: parity with sentence-transformers' GISTEmbedLoss, the deliberate differences, training."""

from __future__ import annotations

import itertools

import pytest
import sentence_transformers
import torch
from datasets import Dataset
from packaging.version import Version
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss

from core.errors import GistlabError
from core.guides.guide_cache import GuideCache
from core.method.loss import GISTLoss, gist_loss
from core.method.masking import BatchMask, MarginSettings, guided_mask

LIBRARY_MASKS_SELF = Version(sentence_transformers.__version__) >= Version("6.3")
"""sentence-transformers 6.3 masks a_i-a_i and p_i-p_i itself ("no self-negative"); 6.2 kept them."""

# Three topics, so a real guide finds in-batch candidates that look like positives.
ROWS = [
    ("A dog barked at the mailman.", "The canine made a loud noise at the postman.", "A cat slept on the sofa."),
    ("The puppy chased its tail.", "A young dog ran in circles.", "The kitten drank some milk."),
    ("My cat caught a mouse.", "The feline hunted a small rodent.", "The dog buried a bone."),
    ("Wolves howl at night.", "Wild dogs cry out after dark.", "Owls hoot in the forest."),
    ("He drove his car to work.", "He took the automobile to the office.", "He rode a bike to school."),
    ("The truck carried heavy logs.", "A lorry transported timber.", "The train carried passengers."),
    ("She parked the van outside.", "The vehicle was left on the street.", "She walked to the shop."),
    ("The bus was late again.", "Public transport did not arrive on time.", "The plane landed early."),
    ("It rained all afternoon.", "There was a downpour after lunch.", "The sun shone all day."),
    ("Snow covered the hills.", "The slopes were white with snow.", "Grass covered the fields."),
    ("A storm hit the coast.", "Strong winds battered the shore.", "The sea was calm."),
    ("The morning was foggy.", "Mist hung in the air at dawn.", "The evening was clear."),
]
SETTINGS = [
    MarginSettings(strategy, margin, anchors, positives)
    for strategy, margin, anchors, positives in itertools.product(
        ("absolute", "relative"), (0.0, 0.05, 0.1), (True, False), (True, False)
    )
]


def pairs_dataset(rows, negatives: bool) -> Dataset:
    data = {"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows]}
    if negatives:
        data["negative"] = [r[2] for r in rows]
    data["label"] = list(range(len(rows)))
    return Dataset.from_dict(data)


def features(model: SentenceTransformer, ds: Dataset) -> list[dict]:
    return [model.preprocess(ds[c]) for c in ds.column_names if c != "label"]


def loss_and_grads(loss_fn, model, feats, labels) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss value and the student's gradients (fresh feature dicts: models write into them)."""
    model.zero_grad()
    loss = loss_fn([dict(f) for f in feats], labels)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def student(tiny_model_dir):
    """Tiny random BERT sharing MiniLM's tokenizer (max_seq_length 64 <= the guide's 256)."""
    return SentenceTransformer(str(tiny_model_dir), device="cpu").eval()


@pytest.fixture(scope="module")
def student64(tiny_model_dir):
    """The same student in float64, so that float32 rounding (amplified 100x by the temperature)
    cannot hide or fake a difference: any gap above 1e-5 is then a real one."""
    return SentenceTransformer(str(tiny_model_dir), device="cpu").double().eval()


@pytest.fixture(scope="module")
def guide(minilm_l6):
    return minilm_l6.eval()


@pytest.fixture(scope="module")
def cache(guide, tmp_path_factory):
    return GuideCache(guide, "bundled:minilm-l6", root=tmp_path_factory.mktemp("guide-cache"))


@pytest.fixture(scope="module")
def tiny_guide_cache(tiny_model_dir, tmp_path_factory):
    """Another tiny random BERT as guide (its weights shifted away from the student's): the
    library re-runs the guide in every case, and a tiny one keeps the 48-case grid fast."""
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu").eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=generator))
    return GuideCache(guide, "tiny-guide", root=tmp_path_factory.mktemp("tiny-guide-cache"))


def compare_with_library(student, guide, cache, settings, negatives):
    """(library loss, our loss, library grads, our grads, our loss object) on the parity batch."""
    ds = pairs_dataset(ROWS, negatives)
    feats, labels = features(student, ds), torch.tensor(ds["label"])
    library = GISTEmbedLoss(student, guide, temperature=0.01, **settings.library_options())
    assert not library.must_retokenize  # same tokenizer: both guides see the same tokens
    ours = GISTLoss(student, cache, ds, temperature=0.01, settings=settings)
    want, want_grads = loss_and_grads(library, student, feats, labels)
    got, got_grads = loss_and_grads(ours, student, feats, labels)
    assert want_grads.keys() == got_grads.keys() and want_grads
    return want, got, want_grads, got_grads, ours


@pytest.mark.parametrize("negatives", [True, False], ids=["triplets", "pairs"])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(map(str, s.to_dict().values())))
def test_matches_sentence_transformers_gist_embed_loss(student64, tiny_guide_cache, settings, negatives):
    guide, cache = tiny_guide_cache.guide, tiny_guide_cache
    want, got, want_grads, got_grads, ours = compare_with_library(
        student64, guide, cache, settings, negatives
    )
    assert abs(got - want) <= 1e-5
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-5, rtol=0, msg=name)
    if settings.margin > 0:  # the comparison is only worth something if the guide masks
        assert 0 < ours.last_mask.masked_fraction() < 1


@pytest.mark.parametrize("settings", SETTINGS[::5], ids=lambda s: "-".join(map(str, s.to_dict().values())))
def test_matches_library_in_float32_with_the_real_guide(student, guide, cache, settings):
    """all-MiniLM-L6-v2 as guide, float32 student: the two differ only by rounding (cosines are
    computed in another order, then scaled by 1/temperature), so gradients agree to 1e-5 of each
    tensor's largest entry."""
    want, got, want_grads, got_grads, _ = compare_with_library(student, guide, cache, settings, True)
    assert abs(got - want) <= 1e-5
    for name, grad in want_grads.items():
        scale = max(grad.abs().max().item(), 1.0)
        assert (got_grads[name] - grad).abs().max().item() <= 1e-5 * scale, name


def test_parity_batch_masks_more_as_margin_grows(student, cache):
    ds = pairs_dataset(ROWS, negatives=True)
    fractions = []
    for margin in (0.0, 0.05, 0.1):
        loss = GISTLoss(student, cache, ds, settings=MarginSettings(margin=margin))
        loss(features(student, ds), torch.tensor(ds["label"]))
        fractions.append(loss.last_mask.masked_fraction())
    assert fractions == sorted(fractions) and fractions[-1] > fractions[0]


def library_self_masked(mask: BatchMask) -> BatchMask:
    """What the installed library masks itself whatever the margin: since sentence-transformers 6.3
    the self cells a_i-a_i and p_i-p_i ("no self-negative"), before it nothing."""
    masked = {b: torch.zeros_like(m) for b, m in mask.masked.items()}
    if LIBRARY_MASKS_SELF:
        for block in ("a-a", "p-p"):
            masked[block].fill_diagonal_(True)
    return BatchMask(masked, mask.guide_scores, mask.candidates, mask.positive_scores, mask.thresholds)


def loss_with_mask(student, feats, mask: BatchMask) -> float:
    with torch.no_grad():
        embeddings = [student(dict(f))["sentence_embedding"] for f in feats]
        return gist_loss(embeddings[0], embeddings[1], embeddings[2:], mask, 0.01).item()


def test_identical_texts_with_negative_margin_differ_from_library_on_purpose(student, guide, cache):
    """Row 1 repeats row 0's anchor. With margin -1 the threshold g_i + 1 exceeds every guide
    score, so the rule keeps everything; gistlab still masks a_0 vs itself and vs its duplicate (a
    text cannot be ranked below itself), and nothing else. The library keeps the duplicate in
    every version (and, up to 6.2, the self cells too), so its loss is higher by those cells."""
    rows = [ROWS[0], (ROWS[0][0], *ROWS[1][1:]), *ROWS[2:6]]
    settings = MarginSettings(margin=-1.0)
    ds = pairs_dataset(rows, negatives=True)
    feats, labels = features(student, ds), torch.tensor(ds["label"])
    library = GISTEmbedLoss(student, guide, **settings.library_options())
    ours = GISTLoss(student, cache, ds, settings=settings)

    want, _ = loss_and_grads(library, student, feats, labels)
    got, _ = loss_and_grads(ours, student, feats, labels)

    mask = ours.last_mask
    assert mask.masked["a-a"][0, 1] and mask.masked["a-a"][1, 0]  # the duplicated anchor
    assert mask.masked["a-a"].diagonal().all() and mask.masked["p-p"].diagonal().all()
    assert mask.masked_candidates("a-a").sum() == 2 and mask.masked_candidates("a-n").sum() == 0
    assert got < want - 0.1  # the library's logits include cos(a_0, a_1) / 0.01, about 100
    # The library's value is exactly the softmax without the cells it masks itself: nothing else differs.
    assert loss_with_mask(student, feats, library_self_masked(mask)) == pytest.approx(want, abs=1e-4)


def test_negative_margin_without_duplicates_matches_the_library_from_6_3(student, guide, cache):
    """Margin -1, no repeated text: gistlab masks only the self cells. sentence-transformers 6.3+
    masks them too, so the two agree; up to 6.2 the library kept them and its loss is higher."""
    settings = MarginSettings(margin=-1.0)
    ds = pairs_dataset(ROWS[:6], negatives=True)
    feats, labels = features(student, ds), torch.tensor(ds["label"])
    want, want_grads = loss_and_grads(GISTEmbedLoss(student, guide, **settings.library_options()), student, feats, labels)
    ours = GISTLoss(student, cache, ds, settings=settings)
    got, got_grads = loss_and_grads(ours, student, feats, labels)
    assert ours.last_mask.masked_candidates("a-a").sum() == 0  # only the diagonal, which is not a candidate
    if LIBRARY_MASKS_SELF:
        assert abs(got - want) <= 1e-5
        for name, grad in want_grads.items():
            assert (got_grads[name] - grad).abs().max().item() <= 1e-5 * max(grad.abs().max().item(), 1.0), name
    else:
        assert got < want - 0.1
        assert loss_with_mask(student, feats, library_self_masked(ours.last_mask)) == pytest.approx(want, abs=1e-4)


def reference_row_losses(anchor, positive, negatives, mask, temperature) -> list[float]:
    """Per-row cross-entropy written out cell by cell, for checking :func:`gist_loss`."""
    a, p = torch.nn.functional.normalize(anchor, dim=1), torch.nn.functional.normalize(positive, dim=1)
    n = torch.nn.functional.normalize(torch.cat(negatives), dim=1) if negatives else None
    pairs = {"a-p": (a, p), "a-a": (a, a), "p-p": (p, p), "a-n": (a, n)}
    losses = []
    for i in range(len(a)):
        kept = [
            rows[i] @ cols[j]
            for block, (rows, cols) in pairs.items() if block in mask.masked
            for j in range(len(cols)) if not mask.masked[block][i, j]
        ]
        losses.append(float(torch.logsumexp(torch.stack(kept) / temperature, 0) - a[i] @ p[i] / temperature))
    return losses


def test_gist_loss_is_cross_entropy_over_unmasked_cells():
    torch.manual_seed(1)
    anchor, positive, negative = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 8)
    for settings in (MarginSettings(contrast_positives=False), MarginSettings(margin=-0.2)):
        mask = guided_mask(anchor, positive, [negative], settings)
        mask.masked["a-p"][1, 2] = True
        loss = gist_loss(anchor, positive, [negative], mask, temperature=0.5)
        expected = reference_row_losses(anchor, positive, [negative], mask, 0.5)
        assert loss.item() == pytest.approx(sum(expected) / 5, abs=1e-5)


def test_row_with_all_candidates_masked_contributes_zero():
    torch.manual_seed(0)
    anchor = torch.randn(4, 8, requires_grad=True)
    positive, negative = torch.randn(4, 8), torch.randn(4, 8)
    mask = guided_mask(anchor.detach(), positive, [negative], MarginSettings())
    for block in mask.masked:  # row 0: every cell masked but its target
        mask.masked[block][0] = True
    mask.masked["a-p"][0, 0] = False

    loss = gist_loss(anchor, positive, [negative], mask, temperature=0.01)
    loss.backward()

    rows = reference_row_losses(anchor.detach(), positive, [negative], mask, 0.01)
    assert rows[0] == 0.0 and loss.item() == pytest.approx(sum(rows) / 4, rel=1e-5)
    assert torch.isfinite(anchor.grad).all()

    anchor.grad = None  # every row fully masked: loss 0 and nothing to learn, not NaN
    everything = guided_mask(anchor.detach(), positive, [negative], MarginSettings(margin=3.0))
    loss = gist_loss(anchor, positive, [negative], everything, 0.01)
    loss.backward()
    assert loss.item() == 0.0 and anchor.grad.abs().max() == 0


def test_guide_stays_frozen_and_in_eval_mode(tiny_model_dir, tmp_path):
    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu").train()
    ds = pairs_dataset(ROWS[:4], negatives=True)
    loss = GISTLoss(student, GuideCache(guide, "tiny", root=tmp_path), ds)
    loss.train()

    value = loss(features(student, ds), torch.tensor(ds["label"]))
    value.backward()

    assert not guide.training
    assert all(p.grad is None for p in guide.parameters())
    assert any(p.grad is not None for p in student.parameters())
    guide_weights = {id(p) for p in guide.parameters()}
    assert guide_weights.isdisjoint(id(p) for p in loss.parameters())  # the trainer never sees them
    cached = loss.guide_cache.embed(ds["anchor"])  # dropout was off when the guide encoded
    torch.testing.assert_close(cached, guide.encode(ds["anchor"], convert_to_tensor=True))


def test_last_rows_and_mask_describe_the_batch(student, cache):
    ds = pairs_dataset(ROWS, negatives=True)
    loss = GISTLoss(student, cache, ds)
    batch = ds.select([7, 2, 5])
    loss(features(student, batch), torch.tensor(batch["label"]))
    assert loss.last_rows.tolist() == [7, 2, 5]
    assert set(loss.last_mask.blocks) == {"a-p", "a-a", "p-p", "a-n"}
    assert loss.last_mask.masked["a-n"].shape == (3, 3)


def test_rejects_bad_wiring(student, cache, tiny_model_dir, tmp_path):
    ds = pairs_dataset(ROWS[:4], negatives=True)
    loss = GISTLoss(student, cache, ds)
    with pytest.raises(ValueError, match="label"):
        loss(features(student, ds), None)
    with pytest.raises(ValueError, match="expected 3"):
        loss(features(student, ds)[:2], torch.tensor(ds["label"]))
    with pytest.raises(GistlabError, match="positive"):
        GISTLoss(student, cache, ds.remove_columns("positive"))
    with pytest.raises(ValueError, match="row's index"):
        GISTLoss(student, cache, ds.select([2, 0, 1, 3]))  # labels no longer match the rows
    same = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with pytest.raises(GistlabError, match="student itself"):
        GISTLoss(same, GuideCache(same, "tiny", root=tmp_path), ds)


def test_config_and_citation(student, cache):
    loss = GISTLoss(student, cache, pairs_dataset(ROWS[:4], False), settings=MarginSettings(margin=0.1))
    assert loss.get_config_dict() == {
        "guide": "bundled:minilm-l6", "temperature": 0.01, "margin_strategy": "absolute",
        "margin": 0.1, "contrast_anchors": True, "contrast_positives": True, "positive_floor": None,
    }
    assert "2402.16829" in loss.citation


def test_two_steps_in_sentence_transformer_trainer(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    student = SentenceTransformer(str(tiny_model_dir), device="cpu")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    ds = pairs_dataset(ROWS, negatives=True)
    cache = GuideCache(guide, "tiny", root=tmp_path / "cache")
    loss = GISTLoss(student, cache, ds, settings=MarginSettings(margin=0.05))
    before = [p.detach().clone() for p in student.parameters()]
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
        learning_rate=1e-3, report_to=[], save_strategy="no", logging_steps=1, use_cpu=True,
        seed=0, dataloader_drop_last=True,
    )
    trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=ds, loss=loss)
    result = trainer.train()

    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    assert all(p.grad is None for p in guide.parameters())
    rows = loss.last_rows.tolist()
    assert len(rows) == 4 and all(0 <= r < len(ds) for r in rows)
    assert cache.texts_encoded == 3 * 8  # two batches of 4 rows, three columns: nothing else
    assert all(ds[r]["anchor"] in cache for r in rows)


# --- the later recipes as options of the same loss: the live self-judge, hardness weighting ---


def test_self_judge_mask_is_the_rule_on_the_students_detached_cosines(student64):
    """Qwen3-Embedding's rule: the mask is guided_mask over this forward's student embeddings with
    the absolute margin -0.1 (threshold s_ii + 0.1), plus the identical-text rule."""
    from sentence_transformers.base.losses.merged_forward import embed_columns

    from core.method.margin import judge_settings

    rows = [*ROWS[:6], (ROWS[6][0], ROWS[0][1], ROWS[6][2])]  # row 6 repeats row 0's positive text
    ds = pairs_dataset(rows, negatives=True)
    feats, labels = features(student64, ds), torch.tensor(ds["label"])
    settings = judge_settings(MarginSettings(), 0.1)
    assert (settings.margin_strategy, settings.margin) == ("absolute", -0.1)
    loss = GISTLoss(student64, None, ds, temperature=0.05, settings=settings)
    loss([dict(f) for f in feats], labels)
    with torch.no_grad():
        emb = embed_columns(student64, [dict(f) for f in feats])
    texts = dict(anchor_texts=ds["anchor"], positive_texts=ds["positive"], negative_texts=[ds["negative"]])
    want = guided_mask(emb[0], emb[1], emb[2:], settings, **texts)
    got = loss.last_mask
    for block in want.blocks:
        assert torch.equal(got.masked[block], want.masked[block]), block
        torch.testing.assert_close(got.guide_scores[block], want.guide_scores[block])
        assert not got.guide_scores[block].requires_grad
    torch.testing.assert_close(got.thresholds, got.positive_scores + 0.1)
    assert got.masked["a-p"][6, 0] and got.masked["a-p"][0, 6]  # the same positive text is masked
    assert loss.get_config_dict()["guide"] == "live student (self-judge)"


def test_self_judge_sends_no_gradient_through_the_decision(student64):
    """The gradients equal those of gist_loss with the step's mask held fixed: the decision is a constant."""
    from sentence_transformers.base.losses.merged_forward import embed_columns

    ds = pairs_dataset(ROWS, negatives=False)
    feats, labels = features(student64, ds), torch.tensor(ds["label"])
    loss = GISTLoss(student64, None, ds, temperature=0.05, settings=MarginSettings(margin=0.0))
    got, got_grads = loss_and_grads(loss, student64, feats, labels)
    mask = loss.last_mask
    assert 0 < mask.masked_fraction() < 1  # the judge decided something

    def fixed(features_, _labels):
        emb = embed_columns(student64, features_)
        return gist_loss(emb[0], emb[1], emb[2:], mask, 0.05)

    want, want_grads = loss_and_grads(fixed, student64, feats, labels)
    assert got == pytest.approx(want, abs=1e-9)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-9, rtol=0, msg=name)


def test_gist_hardness_at_strength_zero_is_gist(student64, tiny_guide_cache):
    ds = pairs_dataset(ROWS, negatives=True)
    feats, labels = features(student64, ds), torch.tensor(ds["label"])
    settings = MarginSettings(margin=0.05)
    plain, plain_grads = loss_and_grads(GISTLoss(student64, tiny_guide_cache, ds, settings=settings),
                                        student64, feats, labels)
    for mode in ("in_batch_negatives", "hard_negatives", "all_negatives"):
        hard = GISTLoss(student64, tiny_guide_cache, ds, settings=settings, hardness_mode=mode, hardness_strength=0.0)
        got, grads = loss_and_grads(hard, student64, feats, labels)
        assert got == plain
        for name, grad in plain_grads.items():
            assert torch.equal(grads[name], grad), name
    stronger = GISTLoss(student64, tiny_guide_cache, ds, settings=settings, hardness_mode="all_negatives",
                        hardness_strength=5.0)
    assert loss_and_grads(stronger, student64, feats, labels)[0] > plain  # the weighting does something


@pytest.mark.parametrize("negatives", [True, False], ids=["triplets", "pairs"])
@pytest.mark.parametrize("mode", ["in_batch_negatives", "hard_negatives", "all_negatives"])
def test_gist_hardness_with_an_empty_mask_is_the_librarys_mnrl_hardness(student64, mode, negatives):
    """Nothing masked (margin far below every cosine, distinct texts): GIST + hardness is the library's
    MultipleNegativesRankingLoss with the same hardness options, value and gradients, on the same
    blocks (with negatives the library's doc_to_doc also contrasts negatives, so p-p is left out)."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    ds = pairs_dataset(ROWS, negatives)
    feats, labels = features(student64, ds), torch.tensor(ds["label"])
    directions = ("query_to_doc", "query_to_query") + (() if negatives else ("doc_to_doc",))
    library = MultipleNegativesRankingLoss(student64, scale=20.0, directions=directions,
                                           hardness_mode=mode, hardness_strength=5.0)
    ours = GISTLoss(student64, None, ds, temperature=0.05,
                    settings=MarginSettings(margin=-10.0, contrast_positives=not negatives),
                    hardness_mode=mode, hardness_strength=5.0)
    want, want_grads = loss_and_grads(library, student64, feats, labels)
    got, got_grads = loss_and_grads(ours, student64, feats, labels)
    assert ours.last_mask.masked_fraction() == 0
    assert got == pytest.approx(want, abs=1e-9)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-9, rtol=0, msg=name)
    if mode != "hard_negatives" or negatives:  # the mode weights something here: not plain MNRL
        plain = MultipleNegativesRankingLoss(student64, scale=20.0, directions=directions)
        assert abs(loss_and_grads(plain, student64, feats, labels)[0] - want) > 1e-6


@pytest.mark.parametrize("mode", ["in_batch_negatives", "hard_negatives", "all_negatives"])
def test_gist_hardness_with_two_negative_columns_is_the_librarys_mnrl_hardness(student64, mode):
    """Two negative columns: the a-n block is B x 2B wide while a-p stays B x B, so row i's own cells
    differ per block (a crash before); with nothing masked GIST + hardness equals the library's MNRL."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    ds = pairs_dataset(ROWS, negatives=True)
    ds = ds.rename_column("negative", "negative_1").add_column("negative_2", [r[2] for r in ROWS[1:] + ROWS[:1]])
    ds = ds.select_columns(["anchor", "positive", "negative_1", "negative_2", "label"])
    feats, labels = features(student64, ds), torch.tensor(ds["label"])
    directions = ("query_to_doc", "query_to_query")
    library = MultipleNegativesRankingLoss(student64, scale=20.0, directions=directions,
                                           hardness_mode=mode, hardness_strength=5.0)
    ours = GISTLoss(student64, None, ds, temperature=0.05,
                    settings=MarginSettings(margin=-10.0, contrast_positives=False),
                    hardness_mode=mode, hardness_strength=5.0)
    want, want_grads = loss_and_grads(library, student64, feats, labels)
    got, got_grads = loss_and_grads(ours, student64, feats, labels)
    assert got == pytest.approx(want, abs=1e-9)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-9, rtol=0, msg=name)
