"""Rows for PostgreSQL's COPY text format, and the rubric axis the benchmarks' second project
adds: shared by the benchmarks that write their synthetic data with COPY."""

from __future__ import annotations

import io

TESTING_AXIS = {
    "key": "testing",
    "label": "Testing",
    "points": ["No tests", "Tests that do not test", "Happy path only",
               "Good tests, a gap", "Thorough, focused tests"],
}  # fmt: skip


def field(value: object) -> str:
    """One field of COPY's text format."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    text = str(value)
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def row(*values: object) -> str:
    return "\t".join(field(v) for v in values) + "\n"


def copy_into(cursor, table: str, columns: str, rows: list[str]) -> None:
    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO("".join(rows)))
