"""Glue shared by the analysis pages: cached loaders and the sidebar controls they all draw.

Models and datasets are ``st.cache_resource`` (one copy per server process, never pickled:
``st.cache_data`` would unpickle the 24,000-row bundled set on every rerun, ~30 ms). Work that can
take seconds (opening a guide cache, a run's batch, a UMAP fit, a student's embeddings) is kept in
:class:`Kept` stores instead, so it runs under a bar that counts it: inside an ``st.cache_*`` function
it could only show a spinner (the what-if page keeps its sweeps likewise). All are keyed by what they
were computed from, so a rerun caused by any widget never loads or encodes twice. A batch's report
is cached once per (data, rows, guide, student); a margin change only calls
``core.analysis.inspect.remask`` on it.

``GISTLAB_APP_GUIDE`` / ``GISTLAB_APP_STUDENT`` override the default models (tests point them at a
tiny model). Every ``GistlabError`` is shown with ``st.error`` by :func:`errors_shown`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import streamlit as st

from core.errors import GistlabError
from core.method.masking import BLOCK_HELP, STRATEGIES, MarginSettings

if TYPE_CHECKING:
    from core.guides.text_vectors import TextVectors

MAX_UPLOAD_MB = 50
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "parquet"]
SOURCES = ("Bundled WordNet pairs", "Upload a file", "Hugging Face dataset")
MIXED = "(all tasks mixed)"


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


@contextmanager
def errors_shown() -> Iterator[None]:
    """Show a GistlabError as one st.error line and end this run of the page there."""
    try:
        yield
    except GistlabError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()


# ---- cached loaders ----------------------------------------------------------------------------

T = TypeVar("T")


class Bar:
    """A progress bar drawn on its first update (work that never reports draws nothing)."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, fraction: float, text: str) -> None:
        if self._bar is None:
            self._bar = st.progress(fraction, text=text)
        else:
            self._bar.progress(fraction, text=text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.empty()

    def counting(self, describe: Callable[[int, int], str]) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for the engine: ``describe(done, total)`` on this bar
        while work remains (the final call, done == total, draws nothing: the bar is closed next)."""
        def report(done: int, total: int) -> None:
            if done < total:
                self(done / total, describe(done, total))

        return report


class Kept:
    """Results this server computed under a :class:`Bar`, at most ``limit`` (least recently used dropped).

    A hit draws nothing. The bar is removed only once the result is kept: a rerun that interrupts
    the page at that last update loses no work. One lock per key: two sessions asking for one key
    compute it once, and other keys do not wait.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict = OrderedDict()
        self._computing: dict = {}
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[Bar], T]) -> T:
        """The result kept for ``key``, else ``compute(bar)``'s, kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            bar = Bar()
            try:
                value = compute(bar)
                with self._lock:
                    self._items[key] = value
                    while len(self._items) > self.limit:
                        self._items.popitem(last=False)
            finally:  # a failed computation leaves no lock behind (one per key asked would pile up)
                with self._lock:
                    self._computing.pop(key, None)
            bar.close()
            return value


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


def map_columns(columns: list[str]) -> tuple[tuple[str, str], ...]:
    """Sidebar pickers for which column is the anchor, the positive and the negatives, shown only when
    the file has no ``anchor``/``positive`` columns; returns (target, source) pairs, () when not needed."""
    if {"anchor", "positive"} <= set(columns):
        return ()
    st.sidebar.warning(f"The file has no 'anchor' and 'positive' columns (found: {', '.join(columns)}): "
                       "pick which column is which.")
    anchor = st.sidebar.selectbox("Anchor column", columns, index=None, key="map_anchor")
    positive = st.sidebar.selectbox("Positive column", [c for c in columns if c != anchor], index=None,
                                    key="map_positive")
    negatives = st.sidebar.multiselect("Negative columns (optional)", [c for c in columns if c not in (anchor, positive)],
                                       key="map_negatives")
    if anchor is None or positive is None:
        st.info("This file names its columns differently: pick its anchor and positive columns in the sidebar.")
        st.stop()
    names = ["negative"] if len(negatives) == 1 else [f"negative_{k}" for k in range(1, len(negatives) + 1)]
    return (("anchor", anchor), ("positive", positive), *zip(names, negatives))


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
    bundled:minilm-l6"): a first visit waits seconds per model. Models already loaded draw nothing."""
    todo = [(role, spec) for role, spec in (("guide", guide), ("student", student))
            if spec and (role, spec) not in _LOADED]
    if not todo:
        return
    bar = st.progress(0.0)
    for k, (role, spec) in enumerate(todo):
        text = f"Loading model {k + 1} of {len(todo)}: the {role}, {spec}…"
        bar.progress(k / len(todo), text=text)
        if role == "student":
            model(spec)
        else:
            guide_cache(spec, rows_checked(bar, text, k / len(todo), 1 / len(todo)))
        _LOADED.add((role, spec))
    bar.empty()


def rows_checked(bar, text: str, start: float, share: float) -> Callable[[int, int], None]:
    """Progress of a guide cache's opening on ``bar`` (its ``share`` from ``start``): the rows checked,
    when there is more than one chunk of them (one is checked in a blink)."""
    from core.guides.guide_cache import VERIFY_CHUNK

    def checked(done: int, total: int) -> None:
        if total > VERIFY_CHUNK:
            bar.progress(start + share * done / total, text=f"{text} checking its stored embeddings: "
                                                            f"{done:,} of {total:,} rows")

    return checked


GUIDE_CHUNK = 64  # texts the guide (or the student) encodes between two progress updates (~1-2 s on 2 busy cores)


def embed_counted(who: str, missing: Sequence[str], fill: Callable[[Sequence[str]], object]) -> None:
    """``fill`` the texts in chunks under a bar that counts them ("The student embeds the batch: text
    65 of 384…"); one chunk or less is left to the report, which encodes it in a second or two."""
    if len(missing) <= GUIDE_CHUNK:
        return
    bar = st.progress(0.0)
    for start in range(0, len(missing), GUIDE_CHUNK):
        bar.progress(start / len(missing), text=f"The {who} embeds the batch: text {start + 1} of {len(missing)}…")
        fill(missing[start:start + GUIDE_CHUNK])
    bar.empty()


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

    return inspect_batch(_batch, _guide, MarginSettings(), _student)


_PROJECTIONS = Kept(16)


def projected(vectors: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2D coordinates of ``vectors``, kept by their digest, method and seed. A UMAP fit counts its
    steps: loading UMAP (numba compiles for ~20 s, once per server), then fitting the points."""
    from core.analysis.projection import load_umap, project, umap_loaded

    def fitted(bar: Bar) -> np.ndarray:
        if method == "umap" and not umap_loaded():
            bar(0.0, "UMAP, step 1 of 2: loading it (once per server, ~20 s)…")
            load_umap()
            bar(0.5, f"UMAP, step 2 of 2: fitting {len(vectors):,} points…")
        elif method == "umap":
            bar(0.0, f"UMAP: fitting {len(vectors):,} points…")
        return project(vectors, method, seed)

    digest = hashlib.blake2b(np.ascontiguousarray(vectors).tobytes(), digest_size=16).hexdigest()
    return _PROJECTIONS.get((digest, vectors.shape, method, seed), fitted)


# ---- sidebar controls ----------------------------------------------------------------------------


def choose_data() -> tuple[object, str]:
    """The data source widgets; returns (dataset, a key naming it). Stops the page until chosen."""
    source = st.sidebar.radio("Data", SOURCES, key="data_source")
    if source == SOURCES[0]:
        return dataset("bundled"), "bundled"
    if source == SOURCES[1]:
        upload = st.sidebar.file_uploader(
            f"Pairs file ({', '.join(UPLOAD_TYPES)}; up to {MAX_UPLOAD_MB} MB)", type=UPLOAD_TYPES,
            key="data_upload", help="Columns anchor, positive, optional negative or negative_1.., optional task.",
        )
        if upload is None:
            st.info("Upload a pairs file in the sidebar: columns anchor, positive, optional negative(s).")
            st.stop()
        if upload.size > MAX_UPLOAD_MB * 2**20:
            raise GistlabError(
                f"{upload.name} is {upload.size / 2**20:.0f} MB, over the {MAX_UPLOAD_MB} MB limit: "
                "upload a sample of it."
            )
        data = upload.getvalue()
        digest = hashlib.sha1(data).hexdigest()
        mapping = map_columns(upload_columns(upload.name, digest, data))
        key = f"upload:{digest}" + (f":{dict(mapping)}" if mapping else "")
        return uploaded_dataset(upload.name, digest, data, mapping), key
    hub_id = st.sidebar.text_input("Dataset id", key="data_hub_id", placeholder="org/name")
    split = st.sidebar.text_input("Split", "train", key="data_hub_split")
    if not hub_id.strip():
        st.info("Name a Hugging Face dataset in the sidebar (needs the network or a cached copy).")
        st.stop()
    return dataset(served(hub_id.strip()), split.strip()), f"hub:{hub_id.strip()}:{split.strip()}"


def choose_models(student: bool = True) -> tuple[str, str | None]:
    """Guide and (optionally) student model specs from the sidebar; a blank student means none."""
    from core.guides.models import GUIDE_SPECS, guide_model_spec

    help_text = "bundled:minilm-l6, bundled:minilm-l3, a model folder, or a Hub id (online)"
    guide = st.sidebar.text_input("Guide model", default_guide(), key="guide_spec", help=GUIDE_SPECS)
    if not guide.strip():
        raise GistlabError("Name a guide model in the sidebar, e.g. bundled:minilm-l6.")
    served(guide.strip())
    if not student:
        return guide_model_spec(guide, default_student()), None
    chosen = st.sidebar.text_input("Student model (blank: none)", default_student(), key="student_spec",
                                   help=help_text)
    return guide_model_spec(guide, served(chosen.strip()) or default_student()), chosen.strip() or None


def choose_batch(ds, max_size: int = 512, default_size: int = 32) -> tuple[int, int, str | None]:
    """Batch size (at most the data's rows), seed (with a button that draws the next one) and task.

    Defaults go through Session State, not the widgets' ``value``: the button's callback sets the
    seed, and a widget given both logs a Streamlit warning on every draw.
    """
    max_size = max(2, min(max_size, len(ds)))  # an upload of 8 rows: batches of at most 8
    state = st.session_state
    state["batch_size"] = min(int(state.get("batch_size", min(default_size, max_size))), max_size)
    state.setdefault("batch_seed", 0)
    size = st.sidebar.number_input("Batch size", 2, max_size, key="batch_size",
                                   help=f"At most the data's {len(ds):,} rows")
    seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, key="batch_seed")
    st.sidebar.button("Draw another batch", key="draw_batch", on_click=_next_seed)
    tasks = sorted(ds.unique("task")) if "task" in ds.column_names else []  # Arrow: ms, not a row loop
    task = st.sidebar.selectbox("Task", [MIXED, *tasks], key="batch_task") if tasks else MIXED
    return int(size), int(seed), None if task == MIXED else task


def _next_seed() -> None:
    st.session_state["batch_seed"] = int(st.session_state.get("batch_seed", 0)) + 1


def choose_settings(defaults: MarginSettings = MarginSettings(), scope: str = "") -> MarginSettings:
    """Margin strategy, margin and contrast options, from the sidebar.

    The widgets start at ``defaults`` and return to them whenever ``scope`` changes (e.g. another
    run is opened, whose own settings are the defaults); otherwise they keep what the user chose.
    """
    keys = ("margin_strategy", "margin", "contrast_anchors", "contrast_positives")
    if st.session_state.get("settings_scope") != scope or any(
            k not in st.session_state for k in (*keys, "floor_on", "positive_floor")):
        st.session_state["settings_scope"] = scope
        st.session_state.update({k: getattr(defaults, k) for k in keys})
        st.session_state["floor_on"] = defaults.positive_floor is not None
        st.session_state["positive_floor"] = defaults.positive_floor if defaults.positive_floor is not None else 0.3
    strategy = st.sidebar.radio("Margin strategy", STRATEGIES, horizontal=True, key="margin_strategy",
                                help="absolute: t = g - margin; relative: t = g - |g| * margin")
    margin = st.sidebar.slider("Margin", -0.2, 0.5, step=0.01, key="margin",
                               help="A candidate is masked when the guide scores it above t (g: its positive's score)")
    anchors = st.sidebar.checkbox("Contrast anchors (a-a block)", key="contrast_anchors", help=BLOCK_HELP["a-a"])
    positives = st.sidebar.checkbox("Contrast positives (p-p block)", key="contrast_positives", help=BLOCK_HELP["p-p"])
    floor_on = st.sidebar.checkbox("Positive floor", key="floor_on",
                                   help="A weak positive (the guide scores the row's own pair low) masks nearly every "
                                        "candidate; with a floor its threshold is raised to the floor, t = max(t, floor), "
                                        "so only candidates the guide finds genuinely close are masked. Off = the library's rule.")
    floor = st.sidebar.slider("Floor (cosine)", -0.2, 1.0, step=0.05, key="positive_floor", disabled=not floor_on)
    return MarginSettings(strategy, margin, anchors, positives, floor if floor_on else None)
