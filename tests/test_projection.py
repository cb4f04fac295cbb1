"""PCA shapes and stability, UMAP never imported by importing the module, points and segments line up."""

import subprocess
import sys

import numpy as np
import pytest

from core.errors import GistlabError
from core.analysis.inspect import Batch, encoder, inspect_batch
from core.method.masking import MarginSettings
from core.analysis.projection import map_points, mask_segments, neighbours, pca_2d, project, selection_table


def test_importing_projection_does_not_import_umap():
    code = "import sys, core.analysis.projection; print('umap' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_pca_recovers_main_axis():
    rng = np.random.default_rng(0)
    x = np.zeros((50, 8))
    x[:, 3] = np.linspace(-10, 10, 50)  # the dominant direction
    x += rng.normal(scale=0.01, size=x.shape)
    coords = pca_2d(x)
    assert coords.shape == (50, 2)
    assert abs(np.corrcoef(coords[:, 0], x[:, 3])[0, 1]) > 0.999
    assert np.allclose(pca_2d(x), coords)  # deterministic, signs fixed
    assert pca_2d(x[:1]).shape == (1, 2)


@pytest.mark.slow
def test_umap_runs_and_is_seeded():
    x = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    coords = project(x, "umap", seed=3)
    assert coords.shape == (40, 2) and np.isfinite(coords).all()
    assert np.allclose(project(x, "umap", seed=3), coords)  # the same seed, the same map


def test_unknown_method_and_tiny_umap_are_user_errors():
    with pytest.raises(GistlabError, match="Unknown projection"):
        project(np.zeros((5, 3)), "tsne")
    with pytest.raises(GistlabError, match="at least 4"):
        project(np.zeros((3, 3)), "umap")


def test_points_and_segments_follow_the_mask(tiny_model):
    a, p, n = ["x one", "y two", "z three"], ["x 1", "y 2", "z 3"], ["y two", "q", "r"]
    batch = Batch([5, 6, 7], a, p, [n], ["negative"])
    report = inspect_batch(batch, encoder(tiny_model), MarginSettings(margin=0.2))
    emb = report.guide.all().numpy()
    points = map_points(batch, project(emb, "pca"))
    assert points.role.tolist() == ["anchor"] * 3 + ["positive"] * 3 + ["negative"] * 3
    assert points.text.tolist() == batch.texts() and points.dataset_row.tolist() == [5, 6, 7] * 3
    assert "row 6" in points.hover[1] and "y two" in points.hover[1]
    segments = mask_segments(batch, report.mask, points)
    assert len(segments) == len(report.pairs)
    # every segment starts at its row's text and ends at the masked candidate's text
    for seg, (_, pair) in zip(segments.itertuples(), report.pairs.iterrows()):
        assert points.text[seg.source] == pair.text and points.text[seg.target] == pair.candidate
        assert (seg.x0, seg.y1) == (points.x[seg.source], points.y[seg.target])
    assert np.allclose(segments.guide_score, report.pairs.guide_score)  # the guide's score of each pair


def test_neighbours_are_nearest_in_the_original_space_and_say_what_the_guide_does(tiny_model):
    a, p, n = ["x one", "y two", "z three"], ["x 1", "y 2", "z 3"], ["y two", "q", "r"]
    batch = Batch([5, 6, 7], a, p, [n], ["negative"], tasks=["t1", "t1", "t2"])
    report = inspect_batch(batch, encoder(tiny_model), MarginSettings(margin=0.01))
    vectors = report.guide.all().numpy()
    points = map_points(batch, project(vectors, "pca"))
    assert points.task.tolist() == ["t1", "t1", "t2"] * 3
    segments = mask_segments(batch, report.mask, points)
    near = neighbours(vectors, points, segments, 1, k=8)  # anchor "y two"
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = [q for q in np.argsort(-(unit @ unit[1])) if q != 1][:8]
    assert near.text.tolist() == [points.text[q] for q in expected]  # nearest by full-space cosine, itself left out
    assert near.cosine.is_monotonic_decreasing and near["rank"].tolist() == list(range(1, 9))
    by_text = dict(zip(near.text, near.guide))
    assert by_text["y 2"] == "its positive"
    assert by_text["y two"] == "masked (a-n)"  # the negative with the anchor's own text is always masked
    masked = set(segments.target[segments.source == 1]) | set(segments.source[segments.target == 1])
    for q, verdict in zip(expected, near.guide):
        assert verdict.startswith("masked") == (q in masked) or verdict == "its positive"
    table = selection_table(points, segments, [1, 8], shown=10)
    assert table.positive.tolist() == ["y 2", "z 3"]  # the row's own positive, for an anchor and a negative
    assert table.masked_partners[0] == len(masked) and "y two" in table.masked_examples[0]


class FakeUmap:
    """Stands in for the ``umap`` module (a fast test never imports the real one): records each fit."""

    def __init__(self) -> None:
        self.fits = []

    def UMAP(self, **settings):  # noqa: N802 (the module's name)
        fits = self.fits

        class Reducer:
            def fit_transform(self, x):
                fits.append((len(x), settings))
                return x[:, :2]

        return Reducer()


@pytest.fixture
def fake_umap(monkeypatch):
    import core.analysis.projection

    fake = FakeUmap()
    monkeypatch.setitem(sys.modules, "umap", fake)
    core.analysis.projection.load_umap.cache_clear()
    yield fake
    core.analysis.projection.load_umap.cache_clear()  # the real module is loaded afresh when next asked for


def test_umap_is_loaded_once_with_a_warm_up_fit_and_fits_on_one_thread(fake_umap):
    from core.analysis.projection import load_umap, umap_loaded

    assert not umap_loaded()
    assert load_umap() is fake_umap and umap_loaded()
    assert [n for n, _ in fake_umap.fits] == [64]  # the warm-up fit compiles numba's code
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    assert project(x, "umap", seed=7).shape == (20, 2)
    assert [n for n, _ in fake_umap.fits] == [64, 20]  # no second warm-up
    settings = fake_umap.fits[1][1]
    assert settings["n_jobs"] == 1 and settings["random_state"] == 7 and settings["metric"] == "cosine"
