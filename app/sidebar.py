"""The sidebar controls the analysis pages share, bound to the one :class:`app.settings.LabSettings`.

The settings live in Session State under :data:`LAB`, not in the widgets: a widget's own state is
dropped on any run that does not draw it (a page that stops early, another page), which made the
sidebar show values the page no longer used. Each run puts the setting into the widget's key before
drawing it, and the widget's ``on_change`` writes the user's change back; so every widget shows what
the page computes with, on every page. :func:`start` applies a link's query parameters and writes the
settings into the URL. Widget keys stay named after what they show (``data_source``, ``guide_spec``,
``batch_seed``, ``margin``...), so a test can drive them; a choice that cannot be used yet stops the
page with a line that says what to pick.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import streamlit as st

from app.loaders import (dataset, default_guide, default_student, saved_upload, served, upload_columns,
                         uploaded_dataset)
from app.settings import FLOOR_RANGE, MARGIN_RANGE, PARAMS, LabSettings, clamped, describe, from_params, to_params
from core.errors import GistlabError
from core.method.masking import BLOCK_HELP, STRATEGIES, MarginSettings

MAX_UPLOAD_MB = 50
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "parquet"]
SOURCES = {"bundled": "Bundled WordNet pairs", "upload": "Upload a file", "hub": "Hugging Face dataset"}
MIXED = "(all tasks mixed)"
LAB = "lab_settings"  # the session's LabSettings: the one source of truth
RUN_LAB = "run_settings"  # Inspect's run mode: the run's own margin settings, reset when another run opens
UPLOAD = "lab_upload"  # the session's upload (kept when the uploader is not drawn)
URL_SEEN = "lab_url"  # the query parameters last written (a different URL is a link to apply)


@dataclass(frozen=True)
class Upload:
    name: str
    digest: str
    data: bytes


def lab(store: str = LAB) -> LabSettings:
    """The session's settings (``store`` RUN_LAB: those of the run Inspect shows)."""
    if LAB not in st.session_state:
        st.session_state[LAB] = LabSettings(guide=default_guide(), student=default_student())
    return st.session_state.get(store) or st.session_state[LAB]


def update(store: str = LAB, **changes) -> None:
    st.session_state[store] = clamped(replace(lab(store), **changes))


def bind(key: str, field: str, shown=None, convert=lambda value: value, store: str = LAB):
    """Show the setting ``field`` (or ``shown``, what is in use) in the widget ``key`` drawn next; returns
    its ``on_change``, which writes the widget's new value back (``convert``-ed) into the settings."""
    st.session_state[key] = getattr(lab(store), field) if shown is None else shown
    return lambda: update(store, **{field: convert(st.session_state[key])})


MARGIN_PARAMS = ("strategy", "margin", "aa", "pp", "floor")


def start() -> None:
    """Apply a link's settings (a URL this session did not write) and write the settings into the URL.
    A link to a run's step (Inspect) with margin settings opens the run at those, not at the run's own."""
    asked = {name: st.query_params[name] for name in PARAMS if name in st.query_params}
    if asked and asked != st.session_state.get(URL_SEEN):
        settings, problems = from_params(asked, lab())
        st.session_state[LAB] = settings
        if "run" in st.query_params and set(asked) & set(MARGIN_PARAMS):
            st.session_state[RUN_LAB] = settings
            st.session_state["run_scope"] = "link"  # kept when the run named by the link opens
        for problem in problems:
            st.warning(f"This link's {problem}.", icon=":material/link:")
    publish()


def publish(store: str = LAB) -> None:
    """Write the settings into the URL (other parameters, such as Inspect's run and step, kept); the margin
    settings from ``store`` (RUN_LAB: those Inspect uses on a run's step)."""
    wanted = to_params(lab())
    margins = to_params(lab(store))
    wanted |= {name: margins[name] for name in MARGIN_PARAMS}
    for name in PARAMS:
        if name not in wanted:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != wanted[name]:
            st.query_params[name] = wanted[name]
    st.session_state[URL_SEEN] = wanted


def data_label(settings: LabSettings | None = None) -> str:
    """The data as the settings line names it."""
    s = settings or lab()
    if s.source == "upload":
        kept = st.session_state.get(UPLOAD)
        return f"upload {kept.name}" if kept else "an upload (none yet)"
    return f"{s.hub_id} ({s.hub_split})" if s.source == "hub" else "bundled WordNet pairs"


def show_current(size: int | None = None, student: bool = True, data: str | None = None, store: str = LAB) -> None:
    """The one "current settings" line (what the page computes with; the URL holds the same)."""
    st.caption(f":material/tune: **Current settings:** {describe(lab(store), data or data_label(), size, student)}",
               help="Shared by the analysis pages and kept in the page's URL: copy it to share this view.")


def _take_upload() -> None:
    if st.session_state.get("data_upload") is None:  # the user removed the file
        st.session_state.pop(UPLOAD, None)


def upload_input(container=st.sidebar, keep: bool = True) -> Upload | None:
    """The file uploader; the session's upload (this one, or, with ``keep``, one made earlier on any page), checked."""
    file = container.file_uploader(
        f"Pairs file ({', '.join(UPLOAD_TYPES)}; up to {MAX_UPLOAD_MB} MB)", type=UPLOAD_TYPES,
        key="data_upload", on_change=_take_upload,
        help="Columns anchor, positive, optional negative or negative_1.., optional task.",
    )
    if file is not None:
        if file.size > MAX_UPLOAD_MB * 2**20:
            raise GistlabError(f"{file.name} is {file.size / 2**20:.0f} MB, over the {MAX_UPLOAD_MB} MB limit: "
                               "upload a sample of it.")
        data = file.getvalue()
        kept = st.session_state.get(UPLOAD)
        if kept is None or kept.data != data:
            st.session_state[UPLOAD] = Upload(file.name, hashlib.sha1(data).hexdigest(), data)
        update(source="upload")
    elif not keep:
        return None
    kept = st.session_state.get(UPLOAD)
    if kept is not None and file is None:
        container.caption(f"Using {kept.name}, uploaded earlier in this session; upload another file to replace it.")
    return kept


def _take_columns() -> None:
    state = st.session_state
    update(columns=(state.get("map_anchor") or "", state.get("map_positive") or "", *state.get("map_negatives", [])))


def map_columns(columns: list[str], container=st.sidebar, stop: bool = True) -> tuple[tuple[str, str], ...] | None:
    """Pickers for which column is the anchor, the positive and the negatives, shown only when the file
    has no ``anchor``/``positive`` columns; returns (target, source) pairs, () when not needed, None
    (or a stopped page, with ``stop``) until anchor and positive are picked."""
    if {"anchor", "positive"} <= set(columns):
        return ()
    container.warning(f"The file has no 'anchor' and 'positive' columns (found: {', '.join(columns)}): "
                      "pick which column is which.")
    picked = lab().columns
    anchor = picked[0] if picked and picked[0] in columns else None
    st.session_state["map_anchor"] = anchor
    anchor = container.selectbox("Anchor column", columns, index=None, key="map_anchor", on_change=_take_columns)
    others = [c for c in columns if c != anchor]
    positive = picked[1] if len(picked) > 1 and picked[1] in others else None
    st.session_state["map_positive"] = positive
    positive = container.selectbox("Positive column", others, index=None, key="map_positive", on_change=_take_columns)
    rest = [c for c in columns if c not in (anchor, positive)]
    st.session_state["map_negatives"] = [c for c in picked[2:] if c in rest]
    negatives = container.multiselect("Negative columns (optional)", rest, key="map_negatives", on_change=_take_columns)
    if anchor is None or positive is None:
        if not stop:
            return None
        st.info("This file names its columns differently: pick its anchor and positive columns in the sidebar.")
        st.stop()
    return replace(lab(), columns=(anchor, positive, *negatives)).mapping()


def uploaded(upload: Upload, container=st.sidebar, stop: bool = True):
    """The upload as (dataset, a key naming it, its mapping), mapped through :func:`map_columns`."""
    mapping = map_columns(upload_columns(upload.name, upload.digest, upload.data), container, stop)
    if mapping is None:
        return None, None, None
    key = f"upload:{upload.digest}" + (f":{dict(mapping)}" if mapping else "")
    return uploaded_dataset(upload.name, upload.digest, upload.data, mapping), key, mapping


def job_data(container) -> str | None:
    """For pages that start a background job on a data path (Train, Audit): the uploader and its column
    mapping in ``container``, with the analysis pages' checks, and the data the job's form starts at: the
    upload (saved as a file the job reads), else the shared data ("bundled", a Hub id). None while an
    upload's columns are not mapped yet, or when it cannot be read (said in ``container``)."""
    try:
        upload = upload_input(container, keep=lab().source == "upload")
        if upload is None:
            s = lab()
            return s.hub_id if s.source == "hub" and s.hub_id else "bundled"
        ds, _, mapping = uploaded(upload, container, stop=False)
    except GistlabError as exc:
        container.error(str(exc), icon=":material/error:")
        return None
    if ds is None:
        container.info("Pick the file's anchor and positive columns to use it.")
        return None
    return saved_upload(upload.name, upload.digest, upload.data, mapping)


def choose_data() -> tuple[object, str]:
    """The data source widgets; returns (dataset, a key naming it). Stops the page until chosen."""
    keys = list(SOURCES)
    source = st.sidebar.radio("Data", list(SOURCES.values()), key="data_source", on_change=bind(
        "data_source", "source", SOURCES[lab().source], lambda label: keys[list(SOURCES.values()).index(label)]))
    if source == SOURCES["bundled"]:
        return dataset("bundled"), "bundled"
    if source == SOURCES["upload"]:
        upload = upload_input()
        if upload is None:
            st.info("Upload a pairs file in the sidebar: columns anchor, positive, optional negative(s).")
            st.stop()
        ds, key, _ = uploaded(upload)
        return ds, key
    hub_id = st.sidebar.text_input("Dataset id", key="data_hub_id", placeholder="org/name",
                                   on_change=bind("data_hub_id", "hub_id", convert=str.strip))
    split = st.sidebar.text_input("Split", key="data_hub_split", on_change=bind("data_hub_split", "hub_split",
                                                                                  convert=str.strip))
    if not hub_id.strip():
        st.info("Name a Hugging Face dataset in the sidebar (needs the network or a cached copy).")
        st.stop()
    return dataset(served(hub_id.strip()), split.strip()), f"hub:{hub_id.strip()}:{split.strip()}"


def choose_models(student: bool = True) -> tuple[str, str | None]:
    """Guide and (optionally) student model specs from the sidebar; a blank student means none."""
    from core.guides.models import GUIDE_SPECS, guide_model_spec

    help_text = "bundled:minilm-l6, bundled:minilm-l3, a model folder, or a Hub id (online)"
    guide = st.sidebar.text_input("Guide model", key="guide_spec", help=GUIDE_SPECS,
                                  on_change=bind("guide_spec", "guide", convert=str.strip))
    if not guide.strip():
        raise GistlabError("Name a guide model in the sidebar, e.g. bundled:minilm-l6.")
    served(guide.strip())
    if not student:
        return guide_model_spec(guide, default_student()), None
    chosen = st.sidebar.text_input("Student model (blank: none)", key="student_spec", help=help_text,
                                   on_change=bind("student_spec", "student", convert=str.strip))
    return guide_model_spec(guide, served(chosen.strip()) or default_student()), chosen.strip() or None


def choose_batch(ds, max_size: int = 512) -> tuple[int, int, str | None]:
    """Batch size (at most the data's rows: the widget shows the size in use), seed (with a button that
    draws the next one) and task."""
    max_size = max(2, min(max_size, len(ds)))  # an upload of 8 rows: batches of at most 8
    s = lab()
    size = st.sidebar.number_input("Batch size", 2, max_size, key="batch_size",
                                   help=f"At most the data's {len(ds):,} rows",
                                   on_change=bind("batch_size", "batch_size", min(s.batch_size, max_size)))
    seed = st.sidebar.number_input("Seed", 0, 2**31 - 1, key="batch_seed", on_change=bind("batch_seed", "seed"))
    st.sidebar.button("Draw another batch", key="draw_batch", on_click=lambda: update(seed=lab().seed + 1))
    tasks = sorted(ds.unique("task")) if "task" in ds.column_names else []  # Arrow: ms, not a row loop
    if s.task is not None and s.task not in tasks:
        update(task=None)  # a task of other data
    task = MIXED
    if tasks:
        task = st.sidebar.selectbox("Task", [MIXED, *tasks], key="batch_task", on_change=bind(
            "batch_task", "task", lab().task or MIXED, lambda t: None if t == MIXED else t))
    return int(size), int(seed), None if task == MIXED else task


def choose_settings(run_defaults: MarginSettings | None = None, scope: str = "") -> MarginSettings:
    """Margin strategy, margin and contrast options, from the sidebar: the shared settings, or with
    ``run_defaults`` the settings of the run ``scope`` names (reset to its own when another run opens)."""
    store = LAB
    if run_defaults is not None:
        store = RUN_LAB
        if st.session_state.get("run_scope") == "link" and RUN_LAB in st.session_state:
            st.session_state["run_scope"] = scope  # a link's margin settings for this run (see start)
        elif st.session_state.get("run_scope") != scope or RUN_LAB not in st.session_state:
            st.session_state["run_scope"] = scope
            st.session_state[RUN_LAB] = lab().with_margin(run_defaults)
    s = lab(store)
    st.sidebar.radio("Margin strategy", STRATEGIES, horizontal=True, key="margin_strategy",
                     help="absolute: t = g - margin; relative: t = g - |g| * margin",
                     on_change=bind("margin_strategy", "margin_strategy", store=store))
    st.sidebar.slider("Margin", MARGIN_RANGE[0], MARGIN_RANGE[1], step=MARGIN_RANGE[2], key="margin",
                      help="A candidate is masked when the guide scores it above t (g: its positive's score)",
                      on_change=bind("margin", "margin", store=store))
    st.sidebar.checkbox("Contrast anchors (a-a block)", key="contrast_anchors", help=BLOCK_HELP["a-a"],
                        on_change=bind("contrast_anchors", "contrast_anchors", store=store))
    st.sidebar.checkbox("Contrast positives (p-p block)", key="contrast_positives", help=BLOCK_HELP["p-p"],
                        on_change=bind("contrast_positives", "contrast_positives", store=store))
    st.sidebar.checkbox("Positive floor", key="floor_on", on_change=bind("floor_on", "floor_on", store=store),
                        help="A weak positive (the guide scores the row's own pair low) masks nearly every "
                             "candidate; with a floor its threshold is raised to the floor, t = max(t, floor), "
                             "so only candidates the guide finds genuinely close are masked. Off = the library's rule.")
    st.sidebar.slider("Floor (cosine)", FLOOR_RANGE[0], FLOOR_RANGE[1], step=FLOOR_RANGE[2], key="positive_floor",
                      disabled=not s.floor_on,
                      on_change=bind("positive_floor", "positive_floor", store=store))
    return s.margin_settings()
