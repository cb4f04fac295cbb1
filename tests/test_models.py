"""Model specs: bundled models load offline, the derived student is real, bad specs fail in one line."""

import numpy as np
import pytest

from core.errors import GistlabError
from core.models import load_model


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
])
def test_hub_id_shape(spec, expected):
    from core.hub import looks_like_hub_id

    assert looks_like_hub_id(spec) is expected


def test_hub_unreachable_offline_flag():
    from core.hub import hub_unreachable

    assert hub_unreachable() == "HF_HUB_OFFLINE is set"  # conftest sets it; no network touched
