"""Plain and JSON rendering for the command line: values, tables, and the shapes the commands print.

Everything here is pure: it turns data into text and never reads the store, so
each command stays a few lines of "fetch, then render".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, Final

from policystore.model.events import PolicyChanged
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.modes import MODE_FIELDS, RiskModeConfig
from policystore.model.policy import Policy
from policystore.store.sources import Explanation

__all__ = [
    "change_summary",
    "render_diff",
    "render_event",
    "render_explanation",
    "render_history",
    "render_preset",
    "render_show",
    "table",
    "to_json",
    "value_text",
]

#: How many changes one history or event line lists before it says "+N more".
_CHANGES_SHOWN: Final = 3
#: The widest a history table's changes cell gets; --json has every change in full.
_CHANGES_WIDTH: Final = 90


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


def _key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {value_text(value)}" for key, value in pairs)


def change_summary(changes: Sequence[FieldChange]) -> str:
    """Return changes on one line: ``path: old -> new``, the first few then ``+N more``.

    Args:
        changes: the field changes of one write.

    Returns:
        The summary; ``-`` when nothing changed.
    """
    if not changes:
        return "-"
    shown = [f"{c.path}: {value_text(c.old)} -> {value_text(c.new)}" for c in changes[:_CHANGES_SHOWN]]
    extra = len(changes) - _CHANGES_SHOWN
    return ", ".join(shown) + (f" (+{extra} more)" if extra > 0 else "")


def render_show(policy: Policy, *, source: str, stale: bool) -> str:
    """Return the ``show`` screen: metadata, kill switch, and every mode's values side by side.

    Args:
        policy: the policy to show.
        source: the layer of the fallback chain that answered.
        stale: True when the live store could not be reached.

    Returns:
        The text; the active mode's column is marked with ``*``.
    """
    emergency = policy.emergency
    switch = "OFF"
    if emergency.active:
        switch = f"ON since {value_text(emergency.activated_at)} by {emergency.activated_by}: {emergency.reason}"
    head = [
        ("active mode", policy.active_mode),
        ("kill switch", switch),
        ("version", policy.version),
        ("updated", f"{value_text(policy.updated_at)} by {policy.updated_by}"),
        ("reason", policy.reason or "-"),
        ("source", source + (" (STALE: the live store cannot be reached)" if stale else "")),
    ]
    names = sorted(policy.modes, key=lambda n: (n != policy.active_mode, n))
    headers = ["field", *(f"{n}*" if n == policy.active_mode else n for n in names)]
    rows = [[field, *(getattr(policy.modes[n], field) for n in names)] for field in MODE_FIELDS]
    return _key_values(head) + "\n\n" + table(headers, rows) + "\n\n* active mode"


def render_explanation(explanation: Explanation) -> str:
    """Return an explanation as aligned ``key  value`` lines.

    Args:
        explanation: what :meth:`PolicyStore.explain` returned.

    Returns:
        The text.
    """
    return _key_values(
        [
            ("path", explanation.path),
            ("value", explanation.value),
            ("source", explanation.source.value),
            ("version", explanation.version),
            ("stale", explanation.stale),
            ("detail", explanation.detail or "-"),
        ]
    )


def render_history(entries: Sequence[HistoryEntry]) -> str:
    """Return history entries as a table, in the order given (newest first from the store).

    Args:
        entries: the entries.

    Returns:
        The table, or a sentence when there are none.
    """
    if not entries:
        return "No history."
    rows = [
        [str(e.version), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.by, e.reason, _clip(change_summary(e.changes))]
        for e in entries
    ]
    return table(["version", "at (UTC)", "by", "reason", "changes"], rows)


def _clip(text: str) -> str:
    return text if len(text) <= _CHANGES_WIDTH else text[: _CHANGES_WIDTH - 3] + "..."


def render_diff(changes: Sequence[FieldChange], v1: int, v2: int) -> str:
    """Return the fields that differ between two versions as a table.

    Args:
        changes: the differing fields.
        v1: the older version.
        v2: the newer version.

    Returns:
        The table, or a sentence when the versions are equal in content.
    """
    if not changes:
        return f"No differences between version {v1} and version {v2}."
    return table(["path", f"version {v1}", f"version {v2}"], [[c.path, c.old, c.new] for c in changes])


def render_event(event: PolicyChanged) -> str:
    """Return one change event as one line.

    Args:
        event: the event.

    Returns:
        ``v<version>  <at>  <type>  by <who>: <reason>  [<changes>]``.
    """
    at = event.at.strftime("%Y-%m-%d %H:%M:%S")
    changes = change_summary(event.changes)
    return f"v{event.version}  {at}  {event.type.value}  by {event.by}: {event.reason}  [{changes}]"


def render_preset(config: RiskModeConfig, why: str) -> str:
    """Return one preset: why its values were chosen (which starts with its name), then the values.

    Args:
        config: its mode config.
        why: the reasoning behind the values.

    Returns:
        The text.
    """
    values = _key_values([(f"  {field}", getattr(config, field)) for field in MODE_FIELDS])
    return f"{why}\n{values}"
