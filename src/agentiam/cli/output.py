"""Print results on stdout as a text table or JSON, and diagnostics on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


def emit(
    result: Any,
    *,
    output: str = "text",
    columns: Sequence[str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print ``result`` (a mapping, a list of mappings or a string) to stdout."""
    out = stream or sys.stdout
    if output == "json":
        out.write(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
        return

    if isinstance(result, str):
        out.write(result + "\n")
    elif isinstance(result, Mapping):
        out.write(format_record(result))
    else:
        out.write(format_table(list(result), columns))


def format_record(record: Mapping[str, Any]) -> str:
    """Format one mapping as ``key: value`` lines."""
    width = max((len(str(key)) for key in record), default=0)
    lines = [f"{key!s:<{width}}  {_cell(value)}" for key, value in record.items()]
    return "".join(line + "\n" for line in lines)


def format_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None
) -> str:
    """Format rows as a plain table with a header line, columns padded to fit."""
    names = list(columns or (rows[0].keys() if rows else []))
    if not names:
        return ""

    cells = [[_cell(row.get(name)) for name in names] for row in rows]
    widths = [
        max([len(name), *(len(line[index]) for line in cells)])
        for index, name in enumerate(names)
    ]

    lines = [
        "  ".join(name.upper().ljust(w) for name, w in zip(names, widths, strict=True))
    ]
    for line in cells:
        lines.append(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        )
    return "".join(text.rstrip() + "\n" for text in lines)


def error(message: str) -> None:
    """Print a diagnostic to stderr, prefixed with the program name."""
    sys.stderr.write(f"agentiam: error: {message}\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)
