"""The guide's audit of a whole pairs data set: suspected false negatives, duplicates, suspect positives.

GISTEmbed masks an in-batch candidate when the guide finds it at least as close to the row as the
row's own positive. Asked of every row against every other row (not only those that happen to meet
in a batch), that question becomes a data-quality report with three kinds of finding:

1. **false negatives** (``fn``): row pairs (i, j) where the guide scores row j's positive above row
   i's threshold t_i (:func:`core.method.masking.thresholds`, the training rule: strict ``>``), i.e. GIST
   would mask p_j for a_i if they met, for rows whose positive the guide otherwise believes: at
   most ``max_above`` other positives beat it. (A row beaten by hundreds is not surrounded by
   hundreds of false negatives; the guide just cannot tell its pair apart: with all-MiniLM-L6-v2 on
   the bundled WordNet pairs only ~18% of rows have their own positive on top.) One finding per
   unordered pair, ranked by ``above_by`` = cos(a_i, p_j) - g_i; pairs inside one duplicate group
   (2.) are left out.
2. **duplicate groups** (``dup``): rows whose positives are the same text after normalising
   (case, spaces, end punctuation) or that the guide scores at least ``duplicate_threshold`` alike,
   joined transitively (a row's a-p target is then another row's copy). The suggested keeper is the
   row whose pair the guide believes most (highest g_i, then lowest row id).
3. **suspect positives** (``pos``): rows whose positive the guide disbelieves: at least a share
   ``weak_share`` of the other rows' positives score above t_i (such a row masks most of any batch
   and drops out of the loss), ranked by g_i, lowest first.

Every text is embedded once with the guide through its cache; the search is an exact matrix product
in row chunks of at most ``CHUNK_CELLS`` scores. Cost per 100k rows (N) with a D-dimensional guide:
two N x N x D products (a-p and p-p), 2 * 2 * N^2 * D flops = 1.5e13 for D = 384: measured 25 CPU-s
for the search over 24,000 rows (D = 384, scripts/bench_audit.py, docs/PERFORMANCE.md), so ~435
CPU-s, ~4 min on 2 cores, per 100k rows (it grows with N^2); memory 2 * N * D * 4 bytes for the
embeddings (307 MB at D = 384) plus one 64 MB score chunk and its 16 MB mask. Beyond ~100k rows switch to
an index library: FAISS (``faiss-cpu``: ``IndexFlatIP`` exact on GPU, ``IndexHNSWFlat`` or
``IndexIVFFlat`` approximate), asking each anchor for its top ``max_above + 1`` positives and
counting the rest from a sample.

With ground truth (:mod:`core.method.groundtruth`) every finding carries its relation (false-negative:
a right answer by the row's task's relation; same-word, same-category: related hard negatives;
unrelated) and the report a precision per kind.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.errors import GistlabError
from core.method.masking import MarginSettings, thresholds

KINDS = {"fn": "suspected false negatives", "dup": "duplicate groups", "pos": "suspect positives"}
CHUNK_CELLS = 1 << 24  # scores held at once: 16M float32 = 64 MB
EMBED_CHUNK = 2048  # texts per guide call, so progress moves while the cache fills
SUMMARY = "summary.json"
PROGRESS = "progress.json"
TABLES = {"fn": "false_negatives.parquet", "dup": "duplicates.parquet", "pos": "suspect_positives.parquet"}

Embed = Callable[[list[str]], torch.Tensor]
Progress = Callable[[str, int, int], None]
Relations = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(row ids, other row ids) -> the relation of each pair ("false-negative", ..., "unrelated")."""


@dataclass(frozen=True)
class AuditSettings:
    """What counts as a finding; ``limit``: audit a seeded sample of that many rows (None: all),
    ``task``: only that task's rows."""

    margin: MarginSettings = field(default_factory=MarginSettings)
    duplicate_threshold: float = 0.95
    max_above: int = 3
    weak_share: float = 0.5
    limit: int | None = None
    seed: int = 0
    task: str | None = None

    def __post_init__(self) -> None:
        if not -1.0 <= self.duplicate_threshold <= 1.0:
            raise GistlabError(f"The duplicate threshold is a cosine: give a value in [-1, 1], not {self.duplicate_threshold}.")
        if self.max_above < 1:
            raise GistlabError(f"--max-above must be at least 1, not {self.max_above}.")
        if not 0.0 < self.weak_share <= 1.0:
            raise GistlabError(f"--weak-share is a share of the rows: give a value in (0, 1], not {self.weak_share}.")
        if self.limit is not None and self.limit < 2:
            raise GistlabError(f"--limit must be at least 2 rows (an audit compares rows), not {self.limit}.")

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


def audit_rows(ds, settings: AuditSettings) -> np.ndarray:
    """The dataset row ids the audit covers: all (of ``settings.task``, if given), or a seeded
    sample of ``settings.limit`` of them, in row order."""
    from core.corpus.data import task_pool

    pool = task_pool(ds, settings.task) if len(ds) else np.arange(0)
    if settings.limit is None or settings.limit >= len(pool):
        return pool
    rng = np.random.default_rng(settings.seed)
    return np.sort(rng.choice(pool, size=settings.limit, replace=False))


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
    progress = progress or (lambda stage, done, total: None)
    rows = audit_rows(ds, settings)
    _check(ds, rows)
    picked = ds.select_columns(["anchor", "positive"])[rows.tolist()] if len(rows) < len(ds) else \
        ds.select_columns(["anchor", "positive"])[:]
    anchors, positives = picked["anchor"], picked["positive"]
    a, p = _embed_all(anchors, positives, embed, progress)
    g = (a * p).sum(dim=1)
    t = thresholds(g, settings.margin)

    above, hits = _beats_positive(a, p, t, settings.max_above + 1, progress)
    weak = above >= settings.weak_share * (len(rows) - 1)
    groups = duplicate_groups(positives, p, settings.duplicate_threshold, progress)

    fn = _false_negatives(hits, groups, g, rows, anchors, positives)
    dup = _duplicates(groups, g, rows, anchors, positives, p)
    pos = _suspects(weak, above, g, rows, anchors, positives)
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
        "positive_score": {"median": float(g.median()), "min": float(g.min())},
        "seconds": round(time.perf_counter() - started, 2),
    }
    return AuditReport(fn, dup, pos, summary)


def _check(ds, rows: np.ndarray) -> None:
    """Bad inputs in one line: too few rows to compare, or no positives."""
    if len(ds) == 0:
        raise GistlabError("The data has no rows: give at least two pairs to audit.")
    if "positive" not in ds.column_names:
        raise GistlabError("The data has no 'positive' column: an audit compares each anchor with its positive.")
    if len(rows) < 2:
        raise GistlabError(f"The data has {len(rows)} row: an audit compares rows with each other, give at least two.")


def _embed_all(anchors: list[str], positives: list[str], embed: Embed, progress: Progress):
    """Guide embeddings of anchors and positives, L2-normalised, in chunks that report progress."""
    texts = [*anchors, *positives]
    parts = []
    for start in range(0, len(texts), EMBED_CHUNK):
        parts.append(embed(texts[start:start + EMBED_CHUNK]).float())
        progress("embedding", min(start + EMBED_CHUNK, len(texts)), len(texts))
    vectors = F.normalize(torch.cat(parts), dim=-1)
    return vectors[:len(anchors)], vectors[len(anchors):]


def _chunks(n: int):
    size = max(1, CHUNK_CELLS // max(n, 1))
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _beats_positive(a: torch.Tensor, p: torch.Tensor, t: torch.Tensor, keep_below: int, progress: Progress):
    """Per row: how many other rows' positives score above its threshold; and those (i, j, score)
    pairs for rows with fewer than ``keep_below`` of them."""
    n = len(a)
    above = torch.zeros(n, dtype=torch.long)
    found = []
    for start, end in _chunks(n):
        scores = a[start:end] @ p.T
        hit = scores > t[start:end, None]
        hit[torch.arange(end - start), torch.arange(start, end)] = False  # the own positive is the target
        counts = hit.sum(dim=1)
        above[start:end] = counts
        hit &= (counts < keep_below)[:, None]
        i, j = hit.nonzero(as_tuple=True)
        found.append((i + start, j, scores[i, j]))
        progress("searching", end, 2 * n)
    i, j, s = (torch.cat(x) for x in zip(*found))
    return above.numpy(), (i.numpy(), j.numpy(), s.numpy())


class UnionFind:
    """Rows joined into groups (union-find); a group is named by its lowest row."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def root(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def join(self, rows) -> None:
        """Put all ``rows`` in one group."""
        rows = [int(r) for r in rows]
        for r in rows[1:]:
            a, b = self.root(rows[0]), self.root(r)
            if a != b:
                self.parent[max(a, b)] = min(a, b)

    def roots(self) -> np.ndarray:
        return np.array([self.root(k) for k in range(len(self.parent))], dtype=np.int64)


def normalise(text: str) -> str:
    """A text as compared for exact duplicates: case-folded, spaces collapsed, end punctuation off."""
    return re.sub(r"[\s.;:!?,]+$", "", " ".join(text.casefold().split()))


def duplicate_groups(positives: list[str], p: torch.Tensor, threshold: float,
                     progress: Progress | None = None) -> np.ndarray:
    """Group label per row (-1: none): rows whose positives are equal once normalised or score at
    least ``threshold`` alike with the guide, joined transitively (union-find)."""
    n = len(positives)
    union = UnionFind(n)
    first: dict[str, int] = {}
    for k, text in enumerate(positives):
        union.join([first.setdefault(normalise(text), k), k])
    for start, end in _chunks(n):
        scores = p[start:end] @ p.T
        i, j = (scores >= threshold).nonzero(as_tuple=True)
        for x, y in zip((i + start).tolist(), j.tolist()):
            if x < y:
                union.join([x, y])
        if progress is not None:
            progress("searching", n + end, 2 * n)
    roots = union.roots()
    sizes = np.bincount(roots, minlength=n)
    return np.where(sizes[roots] > 1, roots, -1)


def _false_negatives(hits, groups, g, rows, anchors, positives) -> pd.DataFrame:
    """One line per unordered row pair, from rows with few hits, outside one duplicate group."""
    i, j, s = hits
    keep = ~((groups[i] >= 0) & (groups[i] == groups[j]))
    i, j, s = i[keep], j[keep], s[keep]
    g_np = g.numpy()
    frame = pd.DataFrame({"i": i, "j": j, "guide_score": s, "positive_score": g_np[i]})
    frame["above_by"] = frame["guide_score"] - frame["positive_score"]
    frame["lo"], frame["hi"] = np.minimum(i, j), np.maximum(i, j)
    frame["both_ways"] = frame.groupby(["lo", "hi"])["i"].transform("size") > 1
    frame = frame.sort_values(["above_by", "lo", "hi"], ascending=[False, True, True])
    frame = frame.drop_duplicates(["lo", "hi"]).reset_index(drop=True)
    anchors_np, positives_np = np.array(anchors, dtype=object), np.array(positives, dtype=object)
    out = pd.DataFrame({
        "finding": [f"fn:{rows[x]}:{rows[y]}" for x, y in zip(frame["i"], frame["j"])],
        "row": rows[frame["i"]], "other_row": rows[frame["j"]],
        "anchor": anchors_np[frame["i"]], "positive": positives_np[frame["i"]],
        "other_positive": positives_np[frame["j"]], "other_anchor": anchors_np[frame["j"]],
        "guide_score": frame["guide_score"].astype(float), "positive_score": frame["positive_score"].astype(float),
        "above_by": frame["above_by"].astype(float), "both_ways": frame["both_ways"].astype(bool),
    })
    return out


def _duplicates(groups, g, rows, anchors, positives, p) -> pd.DataFrame:
    """One line per row of each duplicate group: the group's finding id, its keeper, how alike."""
    members = np.flatnonzero(groups >= 0)
    columns = ["finding", "row", "keeper_row", "keeper", "kind", "anchor", "positive", "similarity",
               "positive_score", "size"]
    if not len(members):
        return pd.DataFrame(columns=columns)
    g_np = g.numpy()
    frame = pd.DataFrame({"local": members, "group": groups[members], "positive_score": g_np[members]})
    frame = frame.sort_values(["group", "positive_score", "local"], ascending=[True, False, True])
    keeper = frame.groupby("group")["local"].transform("first").to_numpy()
    local = frame["local"].to_numpy()
    norm_anchor = np.array([normalise(anchors[k]) for k in local], dtype=object)
    norm_positive = np.array([normalise(positives[k]) for k in local], dtype=object)
    keeper_anchor = np.array([normalise(anchors[k]) for k in keeper], dtype=object)
    keeper_positive = np.array([normalise(positives[k]) for k in keeper], dtype=object)
    kind = np.where((norm_anchor == keeper_anchor) & (norm_positive == keeper_positive), "copy",
                    np.where(norm_positive == keeper_positive, "same positive", "near-duplicate"))
    similarity = (p[torch.tensor(local)] * p[torch.tensor(keeper)]).sum(dim=1).numpy()
    first_row = frame.groupby("group")["local"].transform("min").to_numpy()
    return pd.DataFrame({
        "finding": [f"dup:{rows[k]}" for k in first_row], "row": rows[local], "keeper_row": rows[keeper],
        "keeper": local == keeper, "kind": np.where(local == keeper, "keeper", kind),
        "anchor": [anchors[k] for k in local], "positive": [positives[k] for k in local],
        "similarity": similarity.astype(float), "positive_score": frame["positive_score"].astype(float).to_numpy(),
        "size": frame.groupby("group")["local"].transform("size").to_numpy(),
    }, columns=columns)


def _suspects(weak, above, g, rows, anchors, positives) -> pd.DataFrame:
    """One line per suspect-positive row, lowest guide positive score first."""
    local = np.flatnonzero(weak)
    g_np = g.numpy()
    local = local[np.lexsort((local, g_np[local]))]
    return pd.DataFrame({
        "finding": [f"pos:{rows[k]}" for k in local], "row": rows[local],
        "anchor": [anchors[k] for k in local], "positive": [positives[k] for k in local],
        "positive_score": g_np[local].astype(float), "candidates_above": above[local].astype(int),
        "share_above": above[local] / max(len(rows) - 1, 1),
    })


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


def audit_command(data: str, guide: str, settings: AuditSettings, out: Path) -> list[str]:
    """The ``gistlab audit`` argv that runs ``settings`` on ``data`` into ``out``."""
    from core.training.jobs import cli

    m = settings.margin
    argv = ["audit", "--data", data, "--guide", guide, "--out", str(out), "--margin-strategy", m.margin_strategy,
            "--margin", str(m.margin), "--duplicate-threshold", str(settings.duplicate_threshold),
            "--max-above", str(settings.max_above), "--weak-share", str(settings.weak_share),
            "--seed", str(settings.seed), "--show", "0"]
    argv += ["--limit", str(settings.limit)] if settings.limit else []
    argv += ["--task", settings.task] if settings.task else []
    argv += ["--positive-floor", str(m.positive_floor)] if getattr(m, "positive_floor", None) is not None else []
    return cli(*argv)


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
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
