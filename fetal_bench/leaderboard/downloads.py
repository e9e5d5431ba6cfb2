"""CSV and JSON downloads of the site's tables.

Each table on the site is also written as two static files next to its page (so the links work
from ``file://`` and from any web server, with no script): a CSV for spreadsheets and a JSON for
programs. They hold the numbers at full precision with both interval ends, not the rounded
text of the page.

A CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by spreadsheet programs; text from result files (a submission called
``=HYPERLINK(...)``) could then run when the file is opened. Such text cells are prefixed with
``'`` (the OWASP advice); numbers are written as numbers and need no guard.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class TableExport:
    """One table as plain data: ordered column names and one dict per row."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(table: TableExport) -> bytes:
    """RFC 4180 CSV (CRLF line ends, quoted where needed), UTF-8 with no byte-order mark."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_csv_cell(c) for c in table.columns])
    for row in table.rows:
        writer.writerow([_csv_cell(row.get(column)) for column in table.columns])
    return out.getvalue().encode("utf-8")


def to_json(table: TableExport) -> bytes:
    payload = {"title": table.title, "columns": list(table.columns),
               "rows": [{c: row.get(c) for c in table.columns} for row in table.rows]}
    return (json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def ordered_columns(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """Every key of the rows, in the order first seen."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return tuple(seen)


__all__ = ["TableExport", "ordered_columns", "to_csv", "to_json"]
