"""Readers: CSV, TSV, JSONL and plain text files → rows of strings, with one-line errors.

Formats are chosen by extension (``.csv``, ``.tsv``/``.txt`` with a header when columns are
asked for, ``.jsonl``). TSV is read without quote handling because real review corpora contain
bare double quotes.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from malmoi.errors import MalmoiError

csv.field_size_limit(1 << 24)


@dataclass
class Labelled:
    """Texts with string labels, after dropping rows whose text is empty."""

    texts: list[str]
    labels: list[str]
    skipped_empty: int


def _read_text(path: str | os.PathLike) -> str:
    path = Path(path)
    if not path.exists():
        raise MalmoiError("E101", f"file not found: {path}")
    if path.is_dir():
        raise MalmoiError("E101", f"expected a file, got a folder: {path}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MalmoiError("E101", f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        hint = " (it looks like CP949/EUC-KR)" if _is_cp949(raw) else ""
        raise MalmoiError("E103", f"{path}: line {line} is not valid UTF-8 (byte {e.start}){hint}; "
                                  "re-save the file as UTF-8") from None
    if not text.strip():
        raise MalmoiError("E102", f"{path} is empty")
    return text


def _is_cp949(raw: bytes) -> bool:
    # Older Korean Windows tools save CP949; naming it saves the user a guess.
    try:
        raw.decode("cp949")
    except UnicodeDecodeError:
        return False
    return True


def _format(path: Path) -> str:
    ext = path.suffix.lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "tsv"}.get(ext, "tsv")


def _rows_delimited(path: Path, text: str, delimiter: str) -> tuple[list[str], list[dict]]:
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    # strict: an unclosed quote would otherwise swallow the following rows into one field.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    rows: list[dict] = []
    try:
        header = [h.strip() for h in next(reader)]
        for fields in reader:
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                # line_num is the last physical line read, so quoted multi-line fields count correctly
                raise MalmoiError("E106", f"{path}: line {reader.line_num} has {len(fields)} fields, "
                                          f"the header has {len(header)}")
            rows.append(dict(zip(header, fields)))
    except csv.Error as e:
        raise MalmoiError("E106", f"{path}: line {reader.line_num} is malformed ({e}); check its quotes") from None
    return header, rows


def _rows_jsonl(path: Path, text: str) -> tuple[list[str], list[dict]]:
    rows, header = [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise MalmoiError("E107", f"{path}: line {i} is not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise MalmoiError("E107", f"{path}: line {i} is not a JSON object")
        for k in obj:
            if k not in header:
                header.append(k)
        rows.append({k: "" if v is None else str(v) for k, v in obj.items()})
    return header, rows


def read_table(path: str | os.PathLike, columns: Sequence[str]) -> list[dict[str, str]]:
    """Read ``columns`` of a CSV/TSV/JSONL file as a list of dicts of strings."""
    path = Path(path)
    text = _read_text(path)
    fmt = _format(path)
    if fmt == "jsonl":
        header, rows = _rows_jsonl(path, text)
    else:
        header, rows = _rows_delimited(path, text, "," if fmt == "csv" else "\t")
    missing = [c for c in columns if c not in header]
    if missing:
        raise MalmoiError("E104", f"{path}: no column {missing[0]!r}; columns are: {', '.join(header)}")
    if not rows:
        raise MalmoiError("E102", f"{path} has a header but no rows")
    return [{c: r.get(c, "") for c in columns} for r in rows]


def read_texts(path: str | os.PathLike, column: str | None = None) -> list[str]:
    """Non-empty texts: one per line of a plain text file, or one column of a table."""
    if column is not None:
        return [t for r in read_table(path, [column]) if (t := r[column].strip())]
    texts = [t for line in _read_text(path).splitlines() if (t := line.strip())]
    if not texts:
        raise MalmoiError("E102", f"{path} has no non-empty lines")
    return texts


def read_labelled(path: str | os.PathLike, text: str, label: str,
                  allowed: Sequence[str] | None = None) -> Labelled:
    """Texts and labels; labels are stripped of stray whitespace, empty texts skipped and counted.

    ``allowed`` (e.g. a trained model's labels) turns unexpected label values into an error."""
    rows = read_table(path, [text, label])
    texts, labels, skipped = [], [], 0
    for r in rows:
        t, y = r[text].strip(), r[label].strip()
        if not t:
            skipped += 1
            continue
        if not y:
            raise MalmoiError("E105", f"{path}: a row with text {t[:30]!r} has an empty {label!r}")
        texts.append(t)
        labels.append(y)
    if not texts:
        raise MalmoiError("E102", f"{path}: every {text!r} value is empty")
    if allowed is not None:
        allowed = [str(a).strip() for a in allowed]
        unexpected = sorted(set(labels) - set(allowed))
        if unexpected:
            raise MalmoiError("E105", f"{path}: unexpected {label!r} values {unexpected[:5]}; the model knows {list(allowed)}")
    return Labelled(texts, labels, skipped)


def read_pairs(path: str | os.PathLike, source: str, target: str) -> tuple[list[str], list[str], int]:
    """(sources, targets, skipped) for seq2seq; rows with an empty side are skipped and counted."""
    src, tgt, skipped = [], [], 0
    for r in read_table(path, [source, target]):
        s, t = r[source].strip(), r[target].strip()
        if not s or not t:
            skipped += 1
            continue
        src.append(s)
        tgt.append(t)
    if not src:
        raise MalmoiError("E102", f"{path}: no row has both {source!r} and {target!r}")
    return src, tgt, skipped
