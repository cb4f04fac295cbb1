"""The guide's audit of a whole pairs data set: suspected false negatives, duplicates, suspect positives.

GISTEmbed masks an in-batch candidate when the guide finds it at least as close to the row as the
row's own positive. Asked of every row against every other row (not only those that happen to meet
in a batch), that question becomes a data-quality report with three kinds of finding:

1. **false negatives** (``fn``): row pairs (i, j) where the guide scores row j's positive above row
   i's threshold t_i (:func:`core.method.masking.thresholds`, the training rule: strict ``>``), i.e. GIST
   would mask p_j for a_i if they met, for rows whose positive the guide otherwise believes: at
   most ``max_above`` other positives beat it. (A row beaten by hundreds is not surrounded by
   hundreds of false negatives; the guide just cannot tell its pair apart: with all-MiniLM-L6-v2 on
   the bundled WordNet pairs only ~18% of rows have their own positive on top.) "Other" positives
   are those with another text than the row's own: an exact copy has the row's own vector, so it is
   a duplicate (2.), never a positive above, whichever way a matrix product rounds it. One finding per
   unordered pair, ranked by ``above_by`` = cos(a_i, p_j) - g_i; pairs inside one duplicate group
   (2.) are left out.
2. **duplicate groups** (``dup``): rows whose positives are the same text after normalising
   (case, spaces, end punctuation) or that the guide scores at least ``duplicate_threshold`` alike,
   joined transitively (a row's a-p target is then another row's copy). The suggested keeper is the
   row whose pair the guide believes most (highest g_i, then lowest row id).
3. **suspect positives** (``pos``): rows whose positive the guide disbelieves: at least a share
   ``weak_share`` of the other rows' positives score above t_i (such a row masks most of any batch
   and drops out of the loss), ranked by g_i, lowest first.

Every text is embedded once with the guide through its cache; the search (core.analysis.audit_search)
is exact below ``NeighbourSettings.exact_below`` rows: a matrix product in row chunks of at most
``CHUNK_CELLS`` scores, two N x N x D products (a-p and p-p), 2 * 2 * N^2 * D flops = 1.5e13 per
100k rows at D = 384 (measured 25 CPU-s over 24,000 rows, so ~435 CPU-s per 100k, growing with
N^2). From there on it goes through a FAISS index on the positives (``faiss-cpu``, an inverted file
of 4 sqrt(N) lists whose nprobe is raised until its recall reaches 0.95): each anchor asks for its top ``max_above + 2`` positives,
each positive for its nearest positives, and the share above a threshold is counted on a sample;
the summary's ``search`` says how, with the index's recall@k against exact search on a seeded
sample of queries (docs/PERFORMANCE.md, ``python -m benchmarks audit_scale``). Memory: 2 * N * D * 4
bytes for the embeddings (307 MB per 100k rows at D = 384), plus the index's copy of the positives.

With ground truth (:mod:`core.method.groundtruth`) every finding carries its relation (false-negative:
a right answer by the row's task's relation; same-word, same-category: related hard negatives;
unrelated) and the report a precision per kind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.analysis.audit_search import Embed, Progress, search
from core.analysis.neighbours import NeighbourSettings
from core.errors import GistlabError
from core.fsio import write_json_atomic
from core.method.masking import MarginSettings

KINDS = {"fn": "suspected false negatives", "dup": "duplicate groups", "pos": "suspect positives"}
SUMMARY = "summary.json"
PROGRESS = "progress.json"
LOADING = "loading"  # the progress stage before the audit's own: its steps are LOADING_STEPS, counted
LOADING_STEPS = ("loading the data", "loading the guide", "opening the guide's cache")
TABLES = {"fn": "false_negatives.parquet", "dup": "duplicates.parquet", "pos": "suspect_positives.parquet"}

Relations = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(row ids, other row ids) -> the relation of each pair ("false-negative", ..., "unrelated")."""


@dataclass(frozen=True)
class AuditSettings:
    """What counts as a finding; ``limit``: audit a seeded sample of that many rows (None: all),
    ``task``: only that task's rows; ``neighbours``: exact search or an index (core.analysis.neighbours)."""

    margin: MarginSettings = field(default_factory=MarginSettings)
    duplicate_threshold: float = 0.95
    max_above: int = 3
    weak_share: float = 0.5
    limit: int | None = None
    seed: int = 0
    task: str | None = None
    neighbours: NeighbourSettings = field(default_factory=NeighbourSettings)

    def __post_init__(self) -> None:
        from core.corpus.data import check_seed

        if not -1.0 <= self.duplicate_threshold <= 1.0:
            raise GistlabError(f"The duplicate threshold is a cosine: give a value in [-1, 1], not {self.duplicate_threshold}.")
        if self.max_above < 1:
            raise GistlabError(f"--max-above must be at least 1, not {self.max_above}.")
        if not 0.0 < self.weak_share <= 1.0:
            raise GistlabError(f"--weak-share is a share of the rows: give a value in (0, 1], not {self.weak_share}.")
        if self.limit is not None and self.limit < 2:
            raise GistlabError(f"--limit must be at least 2 rows (an audit compares rows), not {self.limit}.")
        check_seed(self.seed)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AuditReport:
    """The three finding tables of one audit, and what it was run on."""

    false_negatives: pd.DataFrame
    duplicates: pd.DataFrame
    suspects: pd.DataFrame
    summary: dict

    def counts(self) -> dict[str, int]:
        """Findings per kind (duplicate groups, not rows)."""
        return {"fn": len(self.false_negatives), "dup": int(self.duplicates["finding"].nunique()),
                "pos": len(self.suspects)}

    def table(self, kind: str) -> pd.DataFrame:
        return {"fn": self.false_negatives, "dup": self.duplicates, "pos": self.suspects}[kind]

    def save(self, out: Path) -> Path:
        """Write the tables (Parquet) and ``summary.json`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for kind, name in TABLES.items():
            self.table(kind).to_parquet(out / name, index=False)
        _write_json(out / SUMMARY, self.summary)
        return out


def load_report(folder: Path, progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """An audit written by :meth:`AuditReport.save`; a folder without one is a one-line error.
    ``progress(done, total)`` hears the tables read as each starts and at the end (a large audit's take seconds)."""
    folder = Path(folder)
    if not (folder / SUMMARY).is_file():
        raise GistlabError(f"{folder} holds no finished audit (no {SUMMARY}): run the audit first.")
    tables = {}
    for done, (kind, name) in enumerate(TABLES.items()):
        if progress is not None:
            progress(done, len(TABLES))
        tables[kind] = pd.read_parquet(folder / name)
    if progress is not None:
        progress(len(TABLES), len(TABLES))
    return AuditReport(tables["fn"], tables["dup"], tables["pos"], json.loads((folder / SUMMARY).read_text()))


# ---- the audit ------------------------------------------------------------------------------------


def audit(
    ds,
    embed: Embed,
    settings: AuditSettings = AuditSettings(),
    relations: Relations | None = None,
    progress: Progress | None = None,
    about: dict | None = None,
) -> AuditReport:
    """Audit the pairs dataset ``ds`` with the guide behind ``embed`` (see the module docstring).

    ``relations`` gives ground truth for pairs of row ids (None: no ground truth); ``progress``
    hears (stage, done, total) as the work goes; ``about`` (data, guide...) goes into the summary.
    """
    started = time.perf_counter()
    found = search(ds, embed, settings, progress)
    fn, dup, pos, rows, g = found.false_negatives, found.duplicates, found.suspects, found.rows, found.positive_scores
    precision = {}
    if relations is not None:
        fn["relation"] = relations(fn["row"].to_numpy(), fn["other_row"].to_numpy()) if len(fn) else []
        dup["relation"] = relations(dup["keeper_row"].to_numpy(), dup["row"].to_numpy()) if len(dup) else []
        pos["relation"] = relations(pos["row"].to_numpy(), pos["row"].to_numpy()) if len(pos) else []
        precision = audit_precision(fn, dup, pos)
    summary = {
        **(about or {}), "rows": int(len(ds)), "audited_rows": int(len(rows)), "settings": settings.to_dict(),
        "counts": {"fn": len(fn), "dup": int(dup["finding"].nunique()), "dup_rows": len(dup), "pos": len(pos)},
        "ground_truth": relations is not None, "precision": precision,
        "positive_score": {"median": float(g.median()), "min": float(g.min())}, "search": found.search,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return AuditReport(fn, dup, pos, summary)


# ---- ground truth ---------------------------------------------------------------------------------

PAIR_CHUNK = 256


def dataset_relations(ds) -> Relations | None:
    """Ground truth for pairs of ``ds``'s rows (None when the data has none), from core.method.groundtruth.

    ``relations(rows, others)[k]`` is the relation of row ``others[k]``'s positive to row ``rows[k]``
    (its anchor and positive), exactly as in a batch's a-p block; where ``rows[k] == others[k]``
    it is the relation of the row's positive to its own anchor (is the pair itself right? with a
    ``group`` column only, always a right answer: the data made the pair). The ``task`` column
    decides the relation (core.method.groundtruth).
    Pairs go through :func:`core.method.groundtruth.relations` in small two-sided batches.
    """
    from core.corpus.data import GROUP_COLUMN, PROVENANCE_KINDS, TASK_COLUMN
    from core.method.groundtruth import FALSE_NEGATIVE, RELATIONS, ground_truth, relations

    columns = [c for c in (GROUP_COLUMN, TASK_COLUMN,
                           *(f"{t}_{k}" for t in ("anchor", "positive") for k in PROVENANCE_KINDS))
               if c in ds.column_names]
    truth_ds = ds.select_columns(columns)
    if ground_truth(truth_ds[:1]) is None:  # (a task column alone is no ground truth)
        return None

    def pair_relations(rows: np.ndarray, others: np.ndarray) -> np.ndarray:
        codes = []
        for start in range(0, len(rows), PAIR_CHUNK):
            r, o = rows[start:start + PAIR_CHUNK].tolist(), others[start:start + PAIR_CHUNK].tolist()
            left, right = truth_ds[r], truth_ds[o]
            own = [x == y for x, y in zip(r, o)]
            for kind in PROVENANCE_KINDS:  # an own pair: the row side is its anchor alone
                if f"anchor_{kind}" in left:
                    left[f"positive_{kind}"] = [a if mine else p for a, p, mine in
                                                zip(left[f"anchor_{kind}"], left[f"positive_{kind}"], own)]
            code = relations(ground_truth({c: left[c] + right[c] for c in columns}), ["a-p"])["a-p"]
            k = torch.arange(len(r))
            pair = code[k, k + len(r)]
            if "anchor_synset" not in columns:  # a group alone cannot doubt a pair: the data made it
                pair[torch.tensor(own)] = FALSE_NEGATIVE
            codes.append(pair.numpy())
        return np.array(RELATIONS, dtype=object)[np.concatenate(codes)] if codes else np.array([], dtype=object)

    return pair_relations


RIGHT = "false-negative"  # core.method.groundtruth: a right answer by the row's task's relation


def audit_precision(fn: pd.DataFrame, dup: pd.DataFrame, pos: pd.DataFrame) -> dict[str, float | None]:
    """Share of each kind's findings that the ground truth confirms (None where a kind is empty).

    - false negatives: the other row's positive is a false negative of the row (a right answer by its
      task's relation), so masking it is right; a related hard negative (same word, or same category
      where that is not the task's relation) or an unrelated one is not;
    - duplicates: a member is a right answer for its keeper;
    - suspect positives: the row's own pair is not a right answer (the guide was right to doubt).
    """
    def share(hits: pd.Series) -> float | None:
        return round(float(hits.mean()), 4) if len(hits) else None

    members = dup[~dup["keeper"]] if len(dup) else dup
    return {
        "fn": share(fn["relation"] == RIGHT) if len(fn) else None,
        "dup": share(members["relation"] == RIGHT) if len(members) else None,
        "pos": share(pos["relation"] != RIGHT) if len(pos) else None,
    }


# ---- the background job and its folders ------------------------------------------------------------


def audits_root() -> Path:
    """Where the app's audits go: ``<workspace>/audits/<time>/``."""
    from core.workspace import subdir

    return subdir("audits")


def list_audits() -> list[Path]:
    """Audit folders in the workspace, newest first (finished or not)."""
    return sorted((p for p in audits_root().iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)


def audited_whole(data: str, guide: str) -> bool:
    """Whether a finished audit in the workspace covered every row of ``data`` with ``guide``: its
    texts are then all in the guide cache, and a whole-set audit costs only the search."""
    for folder in list_audits():
        try:
            summary = json.loads((folder / SUMMARY).read_text())
        except (OSError, ValueError):
            continue
        if summary.get("data") == data and summary.get("guide") == guide and summary["audited_rows"] == summary["rows"] \
                and not (summary.get("settings") or {}).get("task"):
            return True
    return False


def audit_command(data: str, guide: str, settings: AuditSettings, out: Path) -> list[str]:
    """The ``gistlab audit`` argv that runs ``settings`` on ``data`` into ``out`` (the settings in its
    config file, by option name)."""
    from core.training.jobs import config_command

    options = {"data": data, "guide": guide, "out": str(out), "show": 0, **settings.margin.to_dict(),
               **{k: v for k, v in asdict(settings).items() if k not in ("margin", "neighbours")},
               "search": settings.neighbours.method}
    return config_command("audit", options, "audit")


def start_audit(data: str, guide: str, settings: AuditSettings):
    """Run the audit as the workspace's background job (core.training.jobs); returns (job, its folder)."""
    from core.training.jobs import Step, start_job

    out = audits_root() / time.strftime("%Y%m%d-%H%M%S")
    return start_job("audit", [Step(audit_command(data, guide, settings, out), str(out / "audit.log"))]), out


# ---- progress file (the background job writes it, the page reads it) ------------------------------


def progress_writer(folder: Path) -> Progress:
    """A progress callback that keeps ``<folder>/progress.json`` current (at most every 0.5 s)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    last = {"stage": None, "written": 0.0, "started": time.time()}

    def write(stage: str, done: int, total: int) -> None:
        now = time.time()
        if stage != last["stage"]:
            last.update(stage=stage, started=now)
        elif now - last["written"] < 0.5 and done < total:
            return
        last["written"] = now
        _write_json(folder / PROGRESS, {"stage": stage, "done": done, "total": total,
                                        "started": last["started"], "updated": now})

    return write


def read_progress(folder: Path) -> dict | None:
    """The job's last progress line with ``eta_s``: seconds left in its stage at the stage's pace so far."""
    try:
        state = json.loads((Path(folder) / PROGRESS).read_text())
    except (OSError, ValueError):
        return None
    elapsed = state["updated"] - state["started"]
    done, total = state["done"], state["total"]
    state["eta_s"] = elapsed / done * (total - done) if done else None
    return state


def _write_json(path: Path, data: dict) -> None:
    write_json_atomic(path, data, default=str)
