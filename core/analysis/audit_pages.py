"""Pages of a stored audit's findings, filtered, read from its Parquet tables without loading them.

A whole-data-set audit can hold hundreds of thousands of findings: the Audit page shows one page at a
time. :func:`finding_ids` scans a kind's table (pyarrow, batch by batch; only the columns a filter
needs) for the ids of the findings that pass the filters, in the report's order; :func:`finding_rows`
reads the rows of the few ids on one page. Memory: the matching ids, and one page of rows.
A duplicate group matches when any of its rows does (its rows are shown together).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads

from core.analysis.audit import TABLES

TEXT_COLUMNS = ("anchor", "positive", "other_positive", "other_anchor")


def _table(folder: Path, kind: str) -> pads.Dataset:
    return pads.dataset(Path(folder) / TABLES[kind], format="parquet")


def finding_ids(folder: Path, kind: str, text: str | None = None, relation: str | None = None,
                exclude: Iterable[str] = ()) -> list[str]:
    """Ids of ``kind``'s findings in report order whose texts contain ``text`` (any case), whose
    ground truth is ``relation`` (where the report has one), and that are not in ``exclude``."""
    table = _table(folder, kind)
    names = set(table.schema.names)
    condition = None

    def both(expr):
        return expr if condition is None else condition & expr

    if text:
        columns = [c for c in TEXT_COLUMNS if c in names]
        match = pc.match_substring(pc.field(columns[0]), text, ignore_case=True)
        for column in columns[1:]:
            match = match | pc.match_substring(pc.field(column), text, ignore_case=True)
        condition = both(match)
    if relation and "relation" in names:
        condition = both(pc.field("relation") == relation)
    excluded = list(exclude)
    if excluded:
        condition = both(~pc.field("finding").isin(excluded))
    ids: dict[str, None] = {}
    for batch in table.to_batches(columns=["finding"], filter=condition):
        ids.update(dict.fromkeys(batch.column(0).to_pylist()))
    return list(ids)


def finding_rows(folder: Path, kind: str, ids: list[str]) -> pd.DataFrame:
    """All rows of the findings ``ids`` (a page of them), in report order."""
    if not ids:
        return _table(folder, kind).head(0).to_pandas()
    return _table(folder, kind).to_table(filter=pc.field("finding").isin(ids)).to_pandas()


def relations(folder: Path, kind: str) -> list[str]:
    """The ground-truth relations present in ``kind``'s findings (empty without ground truth)."""
    table = _table(folder, kind)
    if "relation" not in table.schema.names:
        return []
    return sorted(set(pc.unique(table.to_table(columns=["relation"]).column(0)).to_pylist()) - {None})
