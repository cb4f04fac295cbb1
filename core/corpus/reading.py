"""A pairs source read as it is, before any checking: a local file, a dataset folder or the Hub.

CSV/TSV/JSONL files are parsed here rather than by ``datasets`` so every cell stays text ("NA" is
the text "NA", an empty cell is "") and each row keeps the file line it starts on: a bad row found
later by core.corpus.data is named by its line. Malformed files (not UTF-8, a row with the wrong
number of fields, a broken JSON line, mixed types in a column) are one-line errors naming the line.
A Hub dataset fails fast offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from datasets import Dataset

from core.corpus.data import FILE_TYPES
from core.errors import GistlabError, first_line


def read_source(spec: str, split: str) -> tuple[Dataset, str, list[int] | None]:
    """The raw Dataset behind ``spec`` (all its columns), a name for it in messages, and the file
    line each row starts on (CSV/TSV/JSONL; None otherwise)."""
    path = Path(spec).expanduser()
    if path.is_file():
        raw, lines = _read_file(path)
        return raw, path.name, lines
    if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
        return _load_saved(path), path.name, None
    if path.is_dir():
        return _load_with_datasets(str(path), split, hub=False), f"{spec} ({split})", None
    if path.suffix.lower() in FILE_TYPES:
        raise GistlabError(f"No such file: {spec}. Check the path.")
    from core.hub import looks_like_hub_id

    if not looks_like_hub_id(spec):
        raise GistlabError(
            f"Data {spec!r} is neither a file, a folder, a Hub dataset id nor 'bundled': "
            f"give a {'/'.join(FILE_TYPES)} file, an id like 'org/name', or 'bundled'."
        )
    return _load_with_datasets(spec, split, hub=True), f"{spec} ({split})", None


def _load_saved(path: Path) -> Dataset:
    """A folder written by ``Dataset.save_to_disk``; a missing or damaged data file is one line."""
    try:
        return Dataset.load_from_disk(str(path))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise GistlabError(
            f"{path.name} is a saved dataset whose data files are missing or damaged ({first_line(exc)}): "
            "save it again, or point at another copy."
        ) from None


def _read_file(path: Path) -> tuple[Dataset, list[int] | None]:
    """One local data file as a Dataset of its columns as they are, and each row's first line."""
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise GistlabError(
            f"{path.name}: unknown file type {suffix or '(none)'!r}: use one of {', '.join(FILE_TYPES)}."
        )
    if path.stat().st_size == 0:
        raise GistlabError(f"{path.name} is empty: give a file with a header and rows of pairs.")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise GistlabError(f"{path.name} repeats a column name ({', '.join(repeated)}): rename one.")
            return Dataset(pq.read_table(path)), None
        except pa.ArrowException as exc:
            raise GistlabError(f"{path.name} is not a readable Parquet file ({first_line(exc)}).") from None
    text = _utf8_text(path)
    table, lines = (_jsonl_table(text, path.name) if suffix == ".jsonl"
                    else _delimited_table(text, path.name, "\t" if suffix == ".tsv" else ","))
    return Dataset(table), lines


def _utf8_text(path: Path) -> str:
    """The file's text; non-UTF-8 bytes are an error naming the line they are on."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GistlabError(
            f"{path.name} is not UTF-8: byte 0x{data[exc.start]:02x} on line {line}. "
            "Re-save the file as UTF-8."
        ) from None


def _delimited_table(text: str, name: str, sep: str) -> tuple[pa.Table, list[int]]:
    """CSV/TSV text as a table of strings (and each row's first line); a row with the wrong number
    of fields is named by line.

    Every cell stays text: an empty cell is "" (reported as empty later), "NA" is the text "NA".
    A cell may be as long as the file (the csv module's default limit is 128 KiB).
    """
    import csv
    import io

    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)  # an unclosed quote is an error
    header, body, lines, read = None, [], [], 0
    try:
        for row in reader:
            start, read = read + 1, reader.line_num
            if not row:
                continue  # blank line
            if header is None:
                header = row
            elif len(row) != len(header):
                raise GistlabError(
                    f"{name} line {reader.line_num} has {len(row)} fields but the header has "
                    f"{len(header)}: quote texts that contain {sep!r} or fix that line."
                )
            else:
                body.append(row)
                lines.append(start)
    except csv.Error as exc:
        kind = "TSV" if sep == "\t" else "CSV"
        if "new-line character" in str(exc):  # the csv module's words for a bare carriage return
            raise GistlabError(f"{name} line {read + 1} has a carriage return (\\r) outside quotes, as files with "
                               "old Mac line ends do: re-save it with \\n or \\r\\n line ends.") from None
        raise GistlabError(f"{name} line {read + 1} is not valid {kind} ({exc}): fix that line (or the "
                           "quote opened there).") from None
    if header is None:
        raise GistlabError(f"{name} is empty: give a file with a header and rows of pairs.")
    if len(set(header)) != len(header):
        raise GistlabError(f"{name} repeats a column name in its header ({', '.join(header)}): rename one.")
    if not body:
        raise GistlabError(f"{name} has a header but no rows: add rows of pairs.")
    return pa.table({column: [row[k] for row in body] for k, column in enumerate(header)}), lines


def _jsonl_table(text: str, name: str) -> tuple[pa.Table, list[int]]:
    """JSON Lines text (one object per line) as a table (and each record's line); bad lines are
    named. The columns are the union over all records, in order of first appearance; a record
    without a key gets null there (reported by line later if the column is needed)."""
    records, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise GistlabError(f"{name} line {number} is not valid JSON ({exc.msg}): fix that line.") from None
        except _RepeatedKey as exc:
            raise GistlabError(f"{name} line {number} repeats the key {exc.args[0]!r}: keep one.") from None
        if not isinstance(record, dict):
            raise GistlabError(f"{name} line {number} is not a JSON object: write one {{...}} per line.")
        records.append(record)
        lines.append(number)
    if not records:
        raise GistlabError(f"{name} is empty: give one JSON object per line.")
    columns = dict.fromkeys(key for record in records for key in record)
    try:
        return pa.table({key: [record.get(key) for record in records] for key in columns}), lines
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise GistlabError(_mixed_types(records, name)) from None


class _RepeatedKey(Exception):
    """A JSON object that names one key twice (json keeps the last value without a word)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads``' object hook: the object as a dict, or _RepeatedKey naming a key given twice."""
    record = {}
    for key, value in pairs:
        if key in record:
            raise _RepeatedKey(key)
        record[key] = value
    return record


def _mixed_types(records: list[dict], name: str) -> str:
    """Name the first JSONL line whose value type differs from earlier lines in that column."""
    seen: dict[str, tuple[str, int]] = {}
    for number, record in enumerate(records, start=1):
        for key, value in record.items():
            if value is None:
                continue
            kind = type(value).__name__
            first = seen.setdefault(key, (kind, number))
            if first[0] != kind:
                return (f"{name}: column {key!r} is {kind} in record {number} but {first[0]} in "
                        f"record {first[1]}: give every column one type.")
    return f"{name}: the records cannot form one table: give every column one type."


def _load_with_datasets(spec: str, split: str, *, hub: bool) -> Dataset:
    """A split of a local dataset folder or a Hub dataset; offline fails fast in one line."""
    import datasets
    from huggingface_hub import constants

    offline = None
    if hub:
        from core.hub import hub_unreachable

        offline = hub_unreachable()
        if offline and not constants.HF_HUB_OFFLINE:  # a dead network would be retried for a minute
            raise GistlabError(
                f"Dataset {spec!r} needs the Hugging Face Hub, which cannot be reached ({offline}): "
                "use a local file or 'bundled', set HF_HUB_OFFLINE=1 to use a cached copy, or go online."
            )
    try:
        return datasets.load_dataset(spec, split=split)
    except ValueError as exc:
        if "Unknown split" not in str(exc):
            raise GistlabError(f"Could not read dataset {spec!r} ({first_line(exc)}).") from None
        available = ", ".join(datasets.get_dataset_split_names(spec))
        raise GistlabError(
            f"Dataset {spec!r} has no split {split!r}: available splits are {available}; "
            "choose one with --hf-split."
        ) from None
    except Exception as exc:  # missing repo, no cache offline, gated: one line either way
        if offline:
            raise GistlabError(
                f"Dataset {spec!r} is not in the local cache and the Hub cannot be reached "
                f"({offline}): use a local file or 'bundled', or go online."
            ) from None
        raise GistlabError(
            f"Could not load dataset {spec!r} ({first_line(exc)}): check the id or path and your access."
        ) from None
