"""The sidebar controls the analysis pages share: data source, models, batch, margin settings.

Widget keys are named after what they hold (``data_source``, ``guide_spec``, ``batch_seed``,
``margin``...), so a page, a link or a test can set them; a choice that cannot be used yet stops
the page with a line that says what to pick.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from app.loaders import dataset, default_guide, default_student, served, upload_columns, uploaded_dataset
from core.errors import GistlabError
from core.method.masking import BLOCK_HELP, STRATEGIES, MarginSettings

MAX_UPLOAD_MB = 50
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "parquet"]
SOURCES = ("Bundled WordNet pairs", "Upload a file", "Hugging Face dataset")
MIXED = "(all tasks mixed)"


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
