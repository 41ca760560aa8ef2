"""The text pieces every command's output is built from: JSON, one value as text, tables, aligned lines.

Everything here is pure: it turns data into text and never reads the store.
The screens built from these pieces live beside it: the policy as it stands in
:mod:`policystore.cli.output_policy`, the audit trail (history, diffs, change
events, trading decisions) in :mod:`policystore.cli.output_audit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

__all__ = ["clipped", "key_values", "table", "to_json", "value_text"]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    msg = f"cannot render {type(value).__name__} as JSON"
    raise TypeError(msg)


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """Return ``data`` as JSON; datetimes become ISO 8601 text.

    Args:
        data: plain data, possibly holding datetimes, enums or objects with ``to_dict``.
        indent: spaces per level; None for one line (as ``watch`` prints).

    Returns:
        The JSON text.
    """
    return json.dumps(data, indent=indent, default=_json_default, ensure_ascii=False)


def value_text(value: Any) -> str:
    """Return one policy value as a person reads it: ``true``, ``null``, ``5.0``, plain text.

    Args:
        value: a policy value.

    Returns:
        The text; the same spelling ``policystore set`` accepts back.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        return to_json(value, indent=None)
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Return rows as a left-aligned text table with a header line and a rule.

    Args:
        headers: the column names.
        rows: the cells; each is shown with :func:`value_text`.

    Returns:
        The table, without a trailing newline.
    """
    cells = [[value_text(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(parts: Sequence[str]) -> str:
        return "  ".join(part.ljust(width) for part, width in zip(parts, widths, strict=False)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """Return ``(key, value)`` pairs as lines, the values aligned in one column.

    Args:
        pairs: the keys and their values; each value is shown with :func:`value_text`.

    Returns:
        The lines, without a trailing newline.
    """
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {value_text(value)}" for key, value in pairs)


def clipped(text: str, width: int) -> str:
    """Return ``text`` cut to ``width`` characters, the last an ellipsis when it was longer.

    Args:
        text: the text.
        width: the most characters to return.

    Returns:
        The text, whole when it fits.
    """
    return text if len(text) <= width else text[: width - 1] + "\u2026"
