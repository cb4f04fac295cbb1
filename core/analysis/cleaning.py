"""From an audit's findings and a person's decisions to a cleaned data set.

Each finding of :mod:`core.analysis.audit` can be marked ``keep`` (leave the data as it is), ``drop`` (remove
a row) or ``merge`` (its rows are one group: the same meaning). What each means per kind:

- false negative ``fn:i:j``: drop removes row i (the row whose positive the guide finds weaker
  than row j's); merge puts rows i and j in one group.
- duplicate group ``dup:k``: drop removes every member but the suggested keeper; merge groups them.
  An undecided duplicate group is grouped too: its rows are copies, and training must never put
  two of them in one batch (a row's target would be another row's copy). ``keep`` leaves it alone.
- suspect positive ``pos:i``: drop removes row i; merge is not offered (there is no second row).

The export keeps every column of the data, removes the dropped rows and writes a ``group`` column:
rows joined by any merge, any grouped duplicate set or an existing ``group`` value share a label
(``g<first row>``); a row in no group gets null. Training then never batches two rows of a group
(:func:`core.corpus.data.epoch_batches`). Formats by the path: ``.parquet``, ``.csv`` (pairs, task and
group only: provenance lists do not fit CSV), ``.jsonl``, or a folder (``datasets``' save_to_disk,
which ``load_pairs`` reads back). A JSON report of what changed lands beside it.

Decisions live in ``decisions.json`` in the audit's folder, rewritten atomically under a lock on
every click, so a reload or a second tab sees the same decisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.analysis.audit import KINDS, AuditReport
from core.analysis.audit_search import UnionFind
from core.errors import GistlabError
from core.fsio import locked, write_json_atomic
from core.paths import check_output_dir, check_output_file

ACTIONS = ("keep", "drop", "merge")
DECISIONS = "decisions.json"
ALLOWED = {"fn": ACTIONS, "dup": ACTIONS, "pos": ("keep", "drop")}


# ---- decisions ------------------------------------------------------------------------------------


def read_decisions(path: Path) -> dict[str, str]:
    """``{finding id: action}`` from a decisions file (``{"decisions": {...}}`` or the bare mapping);
    a missing file is no decisions, a malformed one a one-line error."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise GistlabError(f"{path.name} is not valid JSON ({exc}): fix or delete it.") from None
    decisions = data.get("decisions", data) if isinstance(data, dict) else None
    if not isinstance(decisions, dict):
        raise GistlabError(f"{path.name} must hold {{\"decisions\": {{finding id: action}}}}.")
    for finding, action in decisions.items():
        check_decision(str(finding), action)
    return {str(k): v for k, v in decisions.items()}


FINDING_ROWS = {"fn": 2, "dup": 1, "pos": 1}  # row numbers in a finding id: fn:i:j, dup:k, pos:i


def decisions_to_apply(path: Path, n_rows: int) -> dict[str, str]:
    """The decisions file an export applies, checked before the audit runs: it must exist (a missing
    file is not "no decisions" here), each id must be well-formed with rows inside the data's
    ``n_rows``. Whether an id is one of the audit's findings is known only after it (:func:`plan`)."""
    path = Path(path)
    if not path.is_file():
        raise GistlabError(f"--apply {path}: no such file: give the decisions JSON the Audit page saved "
                           "(decisions.json in the audit folder) or one you wrote.")
    decisions = read_decisions(path)
    for finding in decisions:
        kind, *rows = finding.split(":")
        if len(rows) != FINDING_ROWS[kind] or not all(r.isdigit() for r in rows):
            raise GistlabError(f"{path.name}: finding id {finding!r} is malformed: ids look like fn:12:40, dup:7 or pos:3.")
        if max(int(r) for r in rows) >= n_rows:
            raise GistlabError(f"{path.name}: finding {finding} names a row past the data's {n_rows} rows: apply the "
                               "decisions to the data they were made on.")
    return decisions


def check_decision(finding: str, action: str) -> None:
    """One line naming a finding id or action that cannot be applied."""
    kind = finding.split(":", 1)[0]
    if kind not in ALLOWED:
        raise GistlabError(f"Unknown finding {finding!r}: ids start with {', '.join(k + ':' for k in KINDS)}.")
    if action not in ALLOWED[kind]:
        raise GistlabError(f"Finding {finding}: action {action!r} is not one of {', '.join(ALLOWED[kind])}.")


def decide(path: Path, finding: str, action: str | None) -> dict[str, str]:
    """Record (or with None, forget) one decision in ``path``; returns all decisions after it."""
    if action is not None:
        check_decision(finding, action)
    path = Path(path)
    with locked(path.with_suffix(".lock")):
        decisions = read_decisions(path)
        if action is None:
            decisions.pop(finding, None)
        else:
            decisions[finding] = action
        write_json_atomic(path, {"decisions": decisions}, indent=1, sort_keys=True)
    return decisions


# ---- applying them --------------------------------------------------------------------------------


@dataclass
class Plan:
    """What the decisions do to the data: rows to drop, a group label (or None) per row, counts."""

    dropped: np.ndarray
    groups: list[str | None]
    summary: dict


def plan(report: AuditReport, decisions: dict[str, str], n_rows: int,
         existing_groups: list | None = None) -> Plan:
    """Turn decisions on ``report``'s findings into dropped rows and groups over ``n_rows`` rows."""
    union = UnionFind(n_rows)
    join = union.join
    known = set(report.false_negatives["finding"]) | set(report.duplicates["finding"]) | set(report.suspects["finding"])
    unknown = sorted(set(decisions) - known)
    if unknown:
        raise GistlabError(f"Decisions name findings this audit does not have ({', '.join(unknown[:3])}): "
                           "apply them to the audit they were made on.")
    dropped: set[int] = set()
    counts = {kind: dict.fromkeys(ALLOWED[kind], 0) | {"undecided": 0} for kind in KINDS}
    for finding, row, other in report.false_negatives[["finding", "row", "other_row"]].itertuples(index=False):
        action = decisions.get(finding)
        counts["fn"][action or "undecided"] += 1
        if action == "drop":
            dropped.add(int(row))
        elif action == "merge":
            join([row, other])
    for finding, members in report.duplicates.groupby("finding", sort=False):
        action = decisions.get(finding)
        counts["dup"][action or "undecided"] += 1
        if action == "drop":
            dropped.update(int(r) for r in members.loc[~members["keeper"], "row"])
        elif action != "keep":  # merge, or undecided: copies must not share a batch
            join(members["row"])
    for finding, row in report.suspects[["finding", "row"]].itertuples(index=False):
        action = decisions.get(finding)
        counts["pos"][action or "undecided"] += 1
        if action == "drop":
            dropped.add(int(row))
    if existing_groups is not None:
        first: dict[str, int] = {}
        for row, label in enumerate(existing_groups):
            if label is not None:
                join([first.setdefault(str(label), row), row])

    keep = np.array([r not in dropped for r in range(n_rows)])
    roots = union.roots()
    sizes = np.bincount(roots[keep], minlength=n_rows)
    groups = [f"g{roots[r]}" if keep[r] and sizes[roots[r]] > 1 else None for r in range(n_rows)]
    labelled = [g for g, k in zip(groups, keep) if k and g is not None]
    summary = {
        "rows_in": n_rows, "rows_out": int(keep.sum()), "dropped": len(dropped),
        "groups": len(set(labelled)), "rows_in_groups": len(labelled), "decisions": counts,
    }
    return Plan(np.array(sorted(dropped), dtype=np.int64), groups, summary)


@dataclass
class Exported:
    path: Path
    report_path: Path
    summary: dict


def export(ds, report: AuditReport, decisions: dict[str, str], out: Path) -> Exported:
    """Write the cleaned ``ds`` to ``out`` (format by suffix, a folder for save_to_disk) and its report."""
    from datasets import Value

    from core.corpus.data import GROUP_COLUMN

    out = Path(out)
    check_output(out)
    if report.summary.get("rows") not in (None, len(ds)):
        raise GistlabError(f"The audit covered data of {report.summary['rows']} rows, this data has {len(ds)}: "
                           "apply the decisions to the data the audit was run on.")
    existing = ds[GROUP_COLUMN] if GROUP_COLUMN in ds.column_names else None
    result = plan(report, decisions, len(ds), existing)
    cleaned = ds.remove_columns([c for c in ds.column_names if c == GROUP_COLUMN])
    cleaned = cleaned.add_column(GROUP_COLUMN, result.groups).cast_column(GROUP_COLUMN, Value("string"))
    keep = np.setdiff1d(np.arange(len(ds)), result.dropped)
    cleaned = cleaned.select(keep.tolist())
    write_dataset(cleaned, out)
    audit_summary = report.summary
    summary = result.summary | {
        "output": str(out), "findings": audit_summary.get("counts"),
        "thresholds": audit_summary.get("settings"), "guide": audit_summary.get("guide"),
        "data": audit_summary.get("data"),
    }
    report_path = out.with_name(out.name + ".report.json")
    report_path.write_text(json.dumps(summary, indent=2, default=str))
    return Exported(out, report_path, summary)


def check_output(out: Path, source: str | None = None, flag: str = "--out") -> None:
    """One line, before any work, unless :func:`write_dataset` can write ``out``: a format it writes, a
    file name that is not a folder, a folder that is new, empty or an earlier save_to_disk (not a
    folder of other files), and never the data being read (``source``, the data spec)."""
    out = Path(out).expanduser()
    suffix = out.suffix.lower()
    if suffix not in ("", ".parquet", ".csv", ".jsonl"):
        raise GistlabError(f"Cannot write {out.name}: use .parquet, .csv, .jsonl, or a folder name "
                           "(datasets' save_to_disk).")
    if source and out.exists() and out.resolve() == Path(source).expanduser().resolve():
        raise GistlabError(f"{flag} {out} is the data being read: write the result to another path.")
    if suffix:
        check_output_file(out, flag)
        return
    check_output_dir(out, flag)
    saved = (out / "state.json").is_file() and (out / "dataset_info.json").is_file()
    if out.is_dir() and not saved and any(out.iterdir()):
        raise GistlabError(f"{flag} {out} is a folder of other files: name a new folder (datasets' save_to_disk) "
                           "or a .parquet, .csv or .jsonl file.")


def write_dataset(ds, out: Path) -> None:
    """Write a pairs dataset by ``out``'s suffix: Parquet, CSV (pairs, task and group only: provenance
    lists do not fit CSV), JSONL, or a folder (save_to_disk); ``load_pairs`` reads each back."""
    from core.corpus.data import GROUP_COLUMN, TASK_COLUMN, text_columns

    out = Path(out)
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        ds.to_parquet(str(out))
    elif suffix == ".csv":
        flat = [c for c in (*text_columns(ds), TASK_COLUMN, GROUP_COLUMN) if c in ds.column_names]
        ds.select_columns(flat).to_csv(str(out), index=False)
    elif suffix == ".jsonl":
        ds.to_json(str(out), lines=True, force_ascii=False)
    else:
        ds.save_to_disk(str(out))
