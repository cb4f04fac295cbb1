"""Audit: the guide reviews a whole data set; a person decides on each finding and exports cleaned data.

The audit runs as the workspace's background job (core.analysis.audit.start_audit, the same machinery as
Train), so it survives reruns and closed tabs; this page polls its progress file. Findings are
listed with their texts side by side, a page at a time, filtered and read from the stored report
(core.analysis.audit_pages: a whole-data-set audit is never loaded whole); each decision is written
to the audit's decisions.json at once (core.analysis.cleaning.decide), so a reload or a second tab shows the same marks. Export applies them.
"""

import io
import json
import time
import zipfile
from pathlib import Path

import streamlit as st

from app import cache, loaders, sidebar
from app.views import errors_shown
from core.training import jobs
from core.training.events import step_error
from core.analysis.audit import (KINDS, LOADING, LOADING_STEPS, SUMMARY, AuditSettings, audited_whole, list_audits,
                                 load_report, read_progress, start_audit)
from core.analysis.audit_pages import finding_ids, finding_rows, relations
from core.analysis.neighbours import search_line
from core.analysis.cleaning import DECISIONS, decide, export, read_decisions
from core.training.cache_job import fill_progress, filled, start_cache_fill
from core.errors import GistlabError
from core.method.groundtruth import SHARE_OF
from core.method.masking import MarginSettings
from core.guides.models import GUIDE_SPECS

PRECISION_HELP = {  # core.analysis.audit.audit_precision, by the one false-negative definition
    "fn": "Share of the suspected false negatives that are false negatives: a right answer for the row by its "
          "task's relation (same synset; same category for category_triplet; same group). The rest are related "
          "hard negatives (same word or category, not the task's relation) or unrelated.",
    "dup": "Share of the duplicates that are right answers for their keeper by the task's relation.",
    "pos": "Share of the suspect positives whose own pair is not a right answer by the task's relation.",
}

PAGE_SIZE = 10
CHOICES = {  # what the buttons say -> the action core.analysis.cleaning applies
    "fn": {"keep": "keep", "drop row": "drop", "merge into group": "merge"},
    "dup": {"keep": "keep", "drop copies": "drop", "merge into group": "merge"},
    "pos": {"keep": "keep", "drop row": "drop"},
}
FORMATS = {"Parquet": "cleaned.parquet", "CSV": "cleaned.csv", "JSONL": "cleaned.jsonl",
           "datasets folder (save_to_disk)": "cleaned"}
STAGES = {"embedding": "embedding texts with the guide", "indexing": "building the neighbour index",
          "searching": "comparing every row with every other"}

st.title("Audit the data")
st.caption("The guide compares every row with every other: pairs it would mask as false negatives, duplicate "
           "rows, and positives it does not believe. Mark each finding, then export a cleaned data set whose "
           "`group` column keeps related rows out of one batch.")


def audit_job():
    """The running audit job, or None (another kind of job is named, so the user knows why Start waits)."""
    job = jobs.current_job()
    return job if job is not None and job.kind == "audit" else None


@st.fragment(run_every=2 if audit_job() else None)
def live_audit() -> None:
    """Progress of the running audit (stage, counts, ETA), and Stop; redraws the page when it ends."""
    job = audit_job()
    if st.session_state.get("audit_running") and job is None:
        st.session_state["audit_running"] = False
        st.rerun()  # it ended: list its findings
    if job is None:
        return
    st.session_state["audit_running"] = True
    folder = Path(job.steps[0].log).parent
    progress = read_progress(folder)
    so_far = f"{time.time() - job.started:.0f} s so far"
    if progress is None:  # the process is still importing its libraries: nothing to count yet
        st.progress(0.0, text=f"Audit starting: loading its libraries, then the data and the guide… · {so_far}")
    elif progress["stage"] == LOADING:  # steps of unequal length: the time spent, not a time left
        step = min(progress["done"], len(LOADING_STEPS) - 1)
        st.progress(progress["done"] / max(progress["total"], 1),
                    text=f"Audit starting: {LOADING_STEPS[step]} (step {step + 1} of {progress['total']}) · {so_far}")
    else:
        unit = {"embedding": "texts", "indexing": "rows"}.get(progress["stage"], "steps")
        eta = f" · about {progress['eta_s']:.0f} s left" if progress.get("eta_s") is not None else ""
        st.progress(progress["done"] / max(progress["total"], 1),
                    text=f"{STAGES.get(progress['stage'], progress['stage'])}: {progress['done']:,} of "
                         f"{progress['total']:,} {unit}{eta}")
    if st.button("Stop the audit", icon=":material/stop_circle:"):
        jobs.request_stop()


live_audit()

with st.expander("Start an audit", expanded=not list_audits()):
    uploaded = sidebar.job_data(st.container())  # an upload, mapped like the analysis pages' (Inspect's code path)
    shared = sidebar.lab()  # the analysis pages' guide and margin are the form's starting values
    form = st.form("audit_form")
with form:
    left, middle, right = st.columns(3)
    data = left.text_input("Data", uploaded or "bundled", help="bundled, a CSV/TSV/JSONL/Parquet file, or a Hub "
                           "dataset id; an upload above fills it in")
    guide = left.text_input("Guide", shared.guide or loaders.default_guide(), help=GUIDE_SPECS)
    whole = audited_whole(data, guide) or filled(data, guide)  # the guide cache holds every row's texts
    limit = middle.number_input("Rows to audit (0: all)", 0, 10_000_000, 0 if whole else 2000, step=500,
                                help="0 audits the whole set (the default once an audit of this data and guide "
                                     "covered it or a cache fill below finished, so the guide cache holds it); a "
                                     "seeded sample is the quick "
                                     "option: 2,000 bundled rows take well under a minute on 2 cores once the "
                                     "guide has cached them.")
    seed = middle.number_input("Sample seed", 0, 2**31 - 1, 0)
    margin = middle.number_input("Margin", -0.2, 0.5, shared.margin, 0.01, help="as in training: t = g - margin")
    duplicate = right.slider("Near-duplicate cosine", 0.80, 1.0, 0.95, 0.01,
                             help="positives the guide scores at least this alike make their rows one group")
    max_above = right.number_input("False negatives from rows beaten by at most", 1, 100, 3,
                                   help="other positives scoring above the row's own")
    weak_share = right.slider("Suspect positive: share of positives above it", 0.05, 1.0, 0.5, 0.05)
    started = st.form_submit_button("Start the audit", type="primary")

# ---- the guide cache fill (a background job of its own; this section only) ------------------------


def cache_job():
    """The running guide cache fill, or None."""
    job = jobs.current_job()
    return job if job is not None and job.kind == "cache" else None


@st.fragment(run_every=2 if cache_job() else None)
def cache_fill_section(data: str, guide: str) -> None:
    """Fill the guide cache with every text of the data as a background job (core.training.cache_job):
    Start, counted progress with an ETA, Stop, and how the last fill ended. A stopped fill keeps the
    texts it stored and a new one resumes there; once one finished, the whole set is the audit's default."""
    job = cache_job()
    if st.session_state.get("cache_fill_running") and job is None:
        st.session_state["cache_fill_running"] = False
        st.rerun()  # it ended: the form's default changes to the whole set
    if job is not None:
        st.session_state["cache_fill_running"] = True
        progress = fill_progress(Path(job.steps[0].log).parent, job)
        st.progress(progress.done / max(progress.total, 1) if progress else 0.0,
                    text=progress.text() if progress else "Cache fill starting: loading the guide and the data…")
        if st.button("Stop the fill", icon=":material/stop_circle:", key="stop_cache_fill",
                     help="The texts stored so far are kept: filling again resumes there"):
            jobs.request_stop()
        return
    last = jobs.last_job()
    progress = fill_progress(Path(last.steps[0].log).parent, last) if last is not None and last.kind == "cache" else None
    if progress is not None and progress.state == "stopped":
        st.info(f"The last fill stopped at {progress.done:,} of {progress.total:,} texts: they are kept, filling "
                "again encodes only the rest.")
    elif progress is not None and progress.state == "failed":
        st.error(f"The last fill failed: {progress.error}")
    left, right = st.columns(2)
    fill_data = left.text_input("Data", data, key="cache_data")
    fill_guide = right.text_input("Guide", guide, key="cache_guide")
    if filled(fill_data, fill_guide):
        st.success("The guide cache holds every text of this data: a whole-set audit costs only the search.")
    if st.button("Fill the guide cache", icon=":material/database:", key="start_cache_fill",
                 help="Encodes every text the cache lacks as a background job; one job runs at a time"):
        with errors_shown():
            if not fill_data.strip() or not fill_guide.strip():
                raise GistlabError("Name the data and the guide to fill the cache with.")
            start_cache_fill(fill_data.strip(), fill_guide.strip())
            st.rerun()


with st.expander("Fill the guide cache (for a whole large data set: resumable, counted)",
                 expanded=cache_job() is not None):
    st.caption("Encoding dominates a large audit. Fill the guide cache first, as a background job that survives "
               "reruns and closed tabs; `gistlab cache --data ... --guide ...` does the same from a terminal "
               "(under torchrun, one shard per process).")
    cache_fill_section(data.strip(), guide.strip())


if started:
    with errors_shown():
        if not data.strip() or not guide.strip():
            raise GistlabError("Name the data and the guide: the defaults work offline.")
        settings = AuditSettings(MarginSettings(margin=margin), duplicate, int(max_above), weak_share,
                                 int(limit) or None, int(seed))
        start_audit(data.strip(), guide.strip(), settings)
        st.rerun()


@st.cache_resource(show_spinner=False)
def audit_reports() -> cache.Kept:
    """Audits this server has read (the page reads them itself, so it can count the tables)."""
    return cache.Kept(8)


def report_of(folder: str, stamp: float):
    """An audit's tables, read again only when its summary is rewritten (``stamp``: its mtime), under
    a bar that counts them: a large audit's tables take seconds."""
    def read(bar: cache.Bar):
        return load_report(Path(folder), progress=bar.counting(
            lambda done, total: f"Reading the audit: table {done + 1} of {total}…"))

    return audit_reports().get((folder, stamp), read)


def decision_widget(kind: str, finding: str, decisions: dict, path: Path) -> None:
    """Keep / drop / merge buttons for one finding, written to decisions.json on every click."""
    choices = CHOICES[kind]
    labels = {action: label for label, action in choices.items()}
    key = f"decision|{path.parent.name}|{finding}"

    def save() -> None:
        label = st.session_state.get(key)
        decide(path, finding, choices[label] if label else None)

    st.segmented_control("Decision", list(choices), key=key, default=labels.get(decisions.get(finding)),
                         on_change=save, label_visibility="collapsed")


def show_findings(kind: str, folder: Path, decisions: dict, path: Path) -> None:
    """One page of findings of ``kind``, filtered and read from the stored report: texts side by
    side, scores, relation, decision buttons."""
    find, truth, undecided = st.columns([3, 2, 1], vertical_alignment="bottom")
    text = find.text_input("Find in the texts", key=f"find_{kind}", placeholder="any case")
    present = relations(folder, kind)
    relation = truth.selectbox("Ground truth", ["any", *present], key=f"relation_{kind}") if present else None
    undecided_only = undecided.toggle("Undecided only", key=f"undecided_{kind}")
    ids = finding_ids(folder, kind, text.strip() or None, None if relation in (None, "any") else relation,
                      decisions if undecided_only else ())
    if not ids:
        st.info(f"No {KINDS[kind]} at these settings." if not (text or undecided_only or relation not in (None, "any"))
                else f"No {KINDS[kind]} pass these filters.")
        return
    pages = max(1, -(-len(ids) // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages:,}, {PAGE_SIZE} a page; {len(ids):,} findings)", 1, pages, 1,
                           key=f"page_{kind}")
    shown = ids[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    table = finding_rows(folder, kind, shown)
    for finding in shown:
        rows = table[table["finding"] == finding]
        first = rows.iloc[0]
        relation = (f" · ground truth: **{first['relation']}** ({SHARE_OF.get(first['relation'], 'unknown')})"
                    if "relation" in rows else "")
        with st.container(border=True):
            if kind == "fn":
                st.markdown(f"`{finding}` · the guide scores row {first['other_row']}'s positive "
                            f"**{first['above_by']:+.3f}** above row {first['row']}'s own{relation}")
                a, p, o = st.columns(3)
                a.markdown(f"**Anchor** (row {first['row']})\n\n{first['anchor']}")
                p.markdown(f"**Its positive** · guide {first['positive_score']:.3f}\n\n{first['positive']}")
                o.markdown(f"**Row {first['other_row']}'s positive** · guide {first['guide_score']:.3f}\n\n"
                           f"{first['other_positive']}")
            elif kind == "dup":
                st.markdown(f"`{finding}` · {len(rows)} rows; suggested keeper: row {first['keeper_row']}")
                st.dataframe(rows[[c for c in ("row", "kind", "anchor", "positive", "similarity", "positive_score",
                                               "relation") if c in rows]], hide_index=True, width="stretch")
            else:
                st.markdown(f"`{finding}` · the guide scores this pair {first['positive_score']:.3f}; "
                            f"{first['candidates_above']:,} other positives score higher{relation}")
                a, p = st.columns(2)
                a.markdown(f"**Anchor** (row {first['row']})\n\n{first['anchor']}")
                p.markdown(f"**Positive**\n\n{first['positive']}")
            decision_widget(kind, finding, decisions, path)


def download_of(path: Path) -> tuple[str, bytes, str]:
    """What the browser downloads of an export: the file, or a folder (save_to_disk) as a zip."""
    if path.is_file():
        return path.name, path.read_bytes(), "application/octet-stream"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, Path(path.name) / file.relative_to(path))
    return f"{path.name}.zip", buffer.getvalue(), "application/zip"


def export_section(folder: Path, decisions: dict) -> None:
    """Apply the decisions and write the cleaned data (and its JSON report) into the audit's folder."""
    st.subheader("Export the cleaned data")
    marked = {action: sum(a == action for a in decisions.values()) for action in ("keep", "drop", "merge")}
    st.caption(f"{len(decisions)} decisions: {marked['keep']} keep, {marked['drop']} drop, {marked['merge']} merge. "
               "Undecided duplicate groups become groups too (copies must not share a batch).")
    fmt = st.selectbox("Format", list(FORMATS), key="export_format")
    if st.button("Export", icon=":material/save:", help="Writes the cleaned data into the audit's folder on the "
                 "server; then download it below"):
        with errors_shown():
            report = report_of(str(folder), (folder / SUMMARY).stat().st_mtime)  # the whole report, for export only
            summary = report.summary
            ds = loaders.dataset(summary["data"], summary.get("split", "train"))
            written = export(ds, report, decisions, folder / FORMATS[fmt])
            st.session_state["exported"] = (str(written.path), written.summary)
    if "exported" in st.session_state:
        path, summary = st.session_state["exported"]
        st.success(f"Wrote {summary['rows_out']:,} of {summary['rows_in']:,} rows ({summary['dropped']} dropped, "
                   f"{summary['groups']} groups) to the file below: give it as Data on the Train page.")
        st.code(path, language=None)
        name, data, mime = download_of(Path(path))
        st.download_button(f"Download {name}", data, name, mime, key="export_download", type="primary",
                           icon=":material/download:", on_click="ignore")
        st.json(summary, expanded=False)


folders = list_audits()
finished = {f.name: f for f in folders if (f / SUMMARY).is_file()}
if folders and folders[0].name not in finished and audit_job() is None:
    error = step_error(folders[0] / "audit.log")  # the newest audit ended without a report
    st.error(f"The last audit failed: {error or 'it was stopped before it finished'}")
if not finished:
    if audit_job() is None:  # a running audit's bar says enough
        st.info("No audit yet: start one above.")
    st.stop()


def label(name: str) -> str:
    about = json.loads((finished[name] / SUMMARY).read_text())
    return f"{name} · {about.get('data')} · {about['audited_rows']:,} rows · {about.get('guide')}"


folder = finished[st.selectbox("Audit", list(finished), key="audit_folder", format_func=label)]
summary = json.loads((folder / SUMMARY).read_text())
counts = summary["counts"]  # duplicate groups, not rows
decisions_path = folder / DECISIONS
with errors_shown():
    decisions = read_decisions(decisions_path)

st.caption(f"{summary['audited_rows']:,} of {summary['rows']:,} rows of {summary.get('data')} · guide "
           f"{summary.get('guide')} · {summary['seconds']:.1f} s · {search_line(summary.get('search', {}))}")
precision = summary.get("precision") or {}
for column, (kind, name) in zip(st.columns(3), KINDS.items()):
    value = counts[kind]
    help_text = (PRECISION_HELP[kind] if summary["ground_truth"] else
                 "no ground truth in this data: precision is not defined")
    shown = f"precision {precision[kind]:.0%}" if precision.get(kind) is not None else "no ground truth"
    column.metric(name, f"{value:,}", help=help_text)
    if summary["ground_truth"]:  # a caption, not a delta: an arrow would read as an improvement
        column.caption(shown)
if not summary["ground_truth"]:
    st.caption("No ground truth in this data (no WordNet provenance, no `group` column): precision is not defined.")

tabs = st.tabs([f"{name} ({counts[kind]:,})" for kind, name in KINDS.items()])
for tab, kind in zip(tabs, KINDS):
    with tab:
        show_findings(kind, folder, decisions, decisions_path)

export_section(folder, read_decisions(decisions_path))
