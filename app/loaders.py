"""The analysis pages' cached loaders: models, datasets, batches, guide caches, reports, maps.

Models and datasets are ``st.cache_resource`` (one copy per server process, never pickled:
``st.cache_data`` would unpickle the 24,000-row bundled set on every rerun, ~30 ms). Work that can
take seconds is kept in :class:`app.cache.Kept` stores and counted on its bar. All are keyed by
what they were computed from, so a rerun caused by any widget never loads or encodes twice. A
batch's report is cached once per (data, rows, guide, student); a margin change only calls
``core.analysis.inspect.remask`` on it.

``GISTLAB_APP_GUIDE`` / ``GISTLAB_APP_STUDENT`` override the default models (tests point them at a
tiny model).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from app.cache import Bar, Kept

if TYPE_CHECKING:
    from core.guides.text_vectors import TextVectors


def default_guide() -> str:
    from core.guides.models import DEFAULT_GUIDE

    return os.environ.get("GISTLAB_APP_GUIDE") or DEFAULT_GUIDE


def default_student() -> str:
    from core.guides.models import DEFAULT_STUDENT

    return os.environ.get("GISTLAB_APP_STUDENT") or DEFAULT_STUDENT


def served(spec: str) -> str:
    """``spec`` if this server may open it: a server reachable from other machines refuses paths
    outside the workspace and the home folder (core.paths.check_served_path)."""
    from core.paths import check_served_path

    check_served_path(spec, st.get_option("server.address"))
    return spec


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def model(spec: str):
    from core.guides.models import load_model

    return load_model(spec)


_GUIDE_CACHES = Kept(4)


def guide_cache(spec: str, progress: Callable[[int, int], None] | None = None):
    """The guide's embedding cache, opened once per server; ``progress`` hears the rows its opening
    checks (GuideCache verifies every stored row: 0.2-4 s per 100k rows), as :func:`ready_models` shows."""
    from core.guides.guide_cache import GuideCache

    return _GUIDE_CACHES.get(spec, lambda bar: GuideCache(model(spec), spec, progress=progress))


@st.cache_resource(show_spinner="Loading data…", max_entries=8)
def dataset(spec: str, split: str = "train"):
    from core.corpus.data import load_pairs

    return load_pairs(spec, split=split)


@st.cache_resource(show_spinner="Reading the upload…", max_entries=4)
def uploaded_dataset(name: str, digest: str, _data: bytes, mapping: tuple[tuple[str, str], ...] = ()):
    """The upload as a dataset, keyed by its name and content hash (not by hashing the bytes again),
    its columns renamed by ``mapping`` (target, source) pairs when the file does not name them."""
    from core.corpus.data import load_pairs

    with tempfile.TemporaryDirectory(prefix="gistlab-upload-") as folder:
        path = Path(folder) / Path(name).name
        path.write_bytes(_data)
        return load_pairs(str(path), columns=dict(mapping) or None)


@st.cache_resource(show_spinner=False, max_entries=4)
def upload_columns(name: str, digest: str, _data: bytes) -> list[str]:
    """The upload's own column names (core.corpus.data.raw_columns), keyed like :func:`uploaded_dataset`."""
    from core.corpus.data import raw_columns

    with tempfile.TemporaryDirectory(prefix="gistlab-upload-") as folder:
        path = Path(folder) / Path(name).name
        path.write_bytes(_data)
        return raw_columns(str(path))


@st.cache_resource(show_spinner=False, max_entries=32)
def drawn_batch(data_key: str, size: int, seed: int, task: str | None, _ds, false_negatives: float = 0.0):
    """``Batch.draw`` once per (data, size, seed, task, false-negative rate): a margin change then
    redraws nothing (~60 ms)."""
    from core.analysis.inspect import Batch

    return Batch.draw(_ds, size, seed, task, false_negatives)


_RUN_BATCHES = Kept(16)


def run_batch(run: str, step: int):
    """The batch a run trained on at ``step`` and its config, without reloading its data on every rerun:
    kept by (run, step, config.json's mtime), so a run folder written again is read again. A first
    opening counts its stages ("step 2 of 3: loading its data"): a large data set loads for seconds."""
    from core.analysis.inspect import RUN_STAGES, open_run_batch

    config = Path(run) / "config.json"
    stamp = config.stat().st_mtime_ns if config.is_file() else 0

    def opened(bar: Bar):
        return open_run_batch(run, step, progress=bar.counting(
            lambda done, total: f"Opening the run's batch, step {done + 1} of {total}: {RUN_STAGES[done]}…"))

    return _RUN_BATCHES.get((run, step, stamp), opened)


_LOADED: set[tuple[str, str]] = set()  # (role, spec) this server process has loaded (kept by cache_resource)


def ready_models(guide: str, student: str | None = None) -> None:
    """Load a page's guide and student first, under a bar that counts them ("model 1 of 2: the guide,
    bundled:minilm-l6") and, within a guide, the stored rows its cache checks when there is more than
    one chunk of them: a first visit waits seconds per model. Models already loaded draw nothing."""
    from core.guides.guide_cache import VERIFY_CHUNK

    todo = [(role, spec) for role, spec in (("guide", guide), ("student", student))
            if spec and (role, spec) not in _LOADED]

    def named(k: int) -> str:
        return f"Loading model {k + 1} of {len(todo)}: the {todo[k][0]}, {todo[k][1]}…"

    bar = Bar()
    loading = bar.counting(lambda done, total: named(done))
    for k, (role, spec) in enumerate(todo):
        loading(k, len(todo))
        if role == "student":
            model(spec)
        else:
            guide_cache(spec, bar.counting(
                lambda done, total: f"{named(k)} checking its stored embeddings: {done:,} of {total:,} rows",
                start=k / len(todo), share=1 / len(todo), more_than=VERIFY_CHUNK))
        _LOADED.add((role, spec))
    bar.close()


GUIDE_CHUNK = 64  # texts the guide (or the student) encodes between two progress updates (~1-2 s on 2 busy cores)


def embed_counted(who: str, missing: Sequence[str], fill: Callable[[Sequence[str]], object]) -> None:
    """``fill`` the texts in chunks under a bar that counts them ("The student embeds the batch: text
    65 of 384…"); one chunk or less is left to the report, which encodes it in a second or two."""
    if len(missing) <= GUIDE_CHUNK:
        return
    bar = Bar()
    report = bar.counting(lambda done, total: f"The {who} embeds the batch: text {done + 1} of {total}…")
    for start in range(0, len(missing), GUIDE_CHUNK):
        report(start, len(missing))
        fill(missing[start:start + GUIDE_CHUNK])
    bar.close()


_STUDENT_VECTORS = Kept(4)


def student_vectors(spec: str) -> TextVectors:
    """The student's :class:`TextVectors`, one per server and student."""
    from core.analysis.inspect import encoder
    from core.guides.text_vectors import TextVectors

    return _STUDENT_VECTORS.get(spec, lambda bar: TextVectors(encoder(model(spec))))


def batch_report(data_key: str, rows: tuple[int, ...], guide: str, student: str | None, batch):
    """The batch's report at default settings; pages re-mask it. Its models are loaded first, and
    texts the guide has not cached, then texts the student has not embedded, are encoded under
    bars that count them (a new batch of 128 is 384 texts, several seconds each), before the report
    is built from what they keep: the cached report itself draws nothing."""
    ready_models(guide, student)
    cache = guide_cache(guide)
    embed_counted("guide", [t for t in dict.fromkeys(batch.texts()) if t not in cache], cache.fill)
    vectors = student_vectors(student) if student else None
    if vectors is not None:
        embed_counted("student", vectors.missing(batch.texts()), vectors.embed)
    return _batch_report(data_key, rows, guide, student, batch, cache.embed, vectors.embed if vectors else None)


@st.cache_resource(show_spinner=False, max_entries=16)
def _batch_report(data_key: str, rows: tuple[int, ...], guide: str, student: str | None, _batch, _guide,
                  _student):
    """Cached by data_key + rows (which name ``_batch``), guide and student (which name the Embeds)."""
    from core.analysis.inspect import inspect_batch
    from core.method.masking import MarginSettings

    return inspect_batch(_batch, _guide, MarginSettings(), _student)


_PROJECTIONS = Kept(16)


def projected(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2D coordinates of ``vectors``, kept by their digest, method and seed. A UMAP fit counts its
    steps: loading UMAP (numba compiles for ~20 s, once per server), then fitting the points."""
    from core.analysis.projection import load_umap, project, umap_loaded

    def fitted(bar: Bar) -> np.ndarray:
        if method == "umap":
            steps = [*([] if umap_loaded() else ["loading it (once per server, ~20 s)"]),
                     f"fitting {len(vectors):,} points"]
            report = bar.counting(lambda done, total: f"UMAP, step {done + 1} of {total}: {steps[done]}…"
                                  if total > 1 else f"UMAP: {steps[done]}…")
            if len(steps) > 1:
                report(0, len(steps))
                load_umap()
            report(len(steps) - 1, len(steps))
        return project(vectors, method, seed)

    digest = hashlib.blake2b(np.ascontiguousarray(vectors).tobytes(), digest_size=16).hexdigest()
    return _PROJECTIONS.get((digest, vectors.shape, method, seed), fitted)


def saved_upload(name: str, digest: str, data: bytes, mapping: tuple[tuple[str, str], ...] = ()) -> str:
    """The upload (mapped) as a Parquet file in the workspace's ``uploads`` folder, for background jobs
    (training, audits) that read their data from a path; written once per content and mapping."""
    from core.workspace import subdir

    tag = hashlib.sha1(repr(mapping).encode()).hexdigest()[:8]
    path = subdir("uploads") / f"{Path(name).stem}-{digest[:12]}-{tag}.parquet"
    if not path.is_file():
        partial = path.with_suffix(".partial")
        uploaded_dataset(name, digest, data, mapping).to_parquet(str(partial))
        partial.replace(path)
    return str(path)
