"""The audit trail on the command line: history, diffs, change events, and the decision log.

Pure, like :mod:`policystore.cli.output`. Changes are listed the same way
everywhere, the fields that matter first (see :func:`by_importance`), so a
history row, a ``watch`` line and ``history --full`` agree on what a write did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from policystore.cli.output import clipped, table, value_text
from policystore.model.events import PolicyChanged
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import RECORD_FIELDS

__all__ = [
    "by_importance",
    "change_summary",
    "render_decisions",
    "render_diff",
    "render_event",
    "render_history",
    "render_history_full",
]

#: How many changes one history or event line lists before it says "+N more".
_CHANGES_SHOWN: Final = 3
#: The widest a history table's changes cell gets; --full and --json have every change in full.
_CHANGES_WIDTH: Final = 90
#: The widest a decisions column gets; longer values end in an ellipsis (--json has them whole).
_COLUMN_WIDTH: Final = 28
#: The order changes are listed in, most telling first: what a kill-switch write did and why,
#: then the mode, then limits; the stamps the store sets and the record fields last.
_FIRST: Final = ("emergency.active", "emergency.reason", "active_mode")
_LAST: Final = ("emergency.activated_at", "emergency.activated_by", *RECORD_FIELDS)


def by_importance(changes: Sequence[FieldChange]) -> list[FieldChange]:
    """Return ``changes`` with the fields that matter first.

    The kill switch's state and reason come first, then the active mode, then
    limits (in path order), and last the activation stamps and record fields the
    store sets on its own.

    Args:
        changes: the field changes of one write.

    Returns:
        The same changes, reordered (stable within each group).
    """

    def rank(change: FieldChange) -> tuple[int, int]:
        if change.path in _FIRST:
            return 0, _FIRST.index(change.path)
        if change.path in _LAST:
            return 2, _LAST.index(change.path)
        return 1, 0

    return sorted(changes, key=rank)


def _change(c: FieldChange) -> str:
    return f"{c.path}: {value_text(c.old)} -> {value_text(c.new)}"


def change_summary(changes: Sequence[FieldChange]) -> str:
    """Return changes on one line: ``path: old -> new``, the first few then ``+N more``.

    The fields that matter come first (see :func:`by_importance`).

    Args:
        changes: the field changes of one write.

    Returns:
        The summary; ``-`` when nothing changed.
    """
    if not changes:
        return "-"
    shown = [_change(c) for c in by_importance(changes)[:_CHANGES_SHOWN]]
    extra = len(changes) - _CHANGES_SHOWN
    return ", ".join(shown) + (f" (+{extra} more)" if extra > 0 else "")


def _version_cell(version: int, invalid: int | None) -> str:
    return f"{version} (invalid)" if version == invalid else str(version)


def render_history(entries: Sequence[HistoryEntry], *, invalid: int | None = None) -> str:
    """Return history entries as a table, in the order given (newest first from the store).

    Each row lists as many changes as fit, those that matter first (see
    :func:`by_importance`), and counts the rest; ``history --full`` shows them all.

    Args:
        entries: the entries.
        invalid: the newest version, when readers refuse it as invalid: marked ``(invalid)``.

    Returns:
        The table, or a sentence when there are none.
    """
    if not entries:
        return "No history."
    rows = [
        [
            _version_cell(e.version, invalid),
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.by,
            e.reason,
            _fitted_summary(e.changes),
        ]
        for e in entries
    ]
    return table(["version", "at (UTC)", "by", "reason", "changes"], rows)


def _fitted_summary(changes: Sequence[FieldChange], width: int = _CHANGES_WIDTH) -> str:
    """The changes that fit in ``width``, then how many more there are.

    The kill switch's state and reason and the active mode are always shown in
    full, whatever their length; the other changes follow while they fit.
    """
    if not changes:
        return "-"
    ordered = by_importance(changes)
    pieces = [_change(c) for c in ordered]
    forced = [piece for c, piece in zip(ordered, pieces, strict=True) if c.path in _FIRST]
    shown = list(forced)
    for piece in pieces[len(forced) :]:
        rest = len(pieces) - len(shown) - 1
        more = f" (+{rest} more)" if rest else ""
        if shown and len(", ".join([*shown, piece]) + more) > width:
            break
        shown.append(piece)
    rest = len(pieces) - len(shown)
    more = f" (+{rest} more)" if rest else ""
    text = ", ".join(shown)
    return (text if forced else clipped(text, width - len(more))) + more


def render_history_full(entries: Sequence[HistoryEntry], *, invalid: int | None = None) -> str:
    """Return history entries with every change in full, one per line under its entry.

    Args:
        entries: the entries.
        invalid: the newest version, when readers refuse it as invalid: marked ``(invalid)``.

    Returns:
        The text, or a sentence when there are none.
    """
    if not entries:
        return "No history."
    blocks = []
    for e in entries:
        at = e.at.strftime("%Y-%m-%d %H:%M:%S")
        head = f"version {_version_cell(e.version, invalid)}  {at} UTC  by {e.by}: {e.reason}"
        lines = [f"  {_change(c)}" for c in by_importance(e.changes)] or ["  (no field changed)"]
        blocks.append("\n".join([head, *lines]))
    return "\n\n".join(blocks)


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


def _decision_cells(record: Mapping[str, Any]) -> list[str]:
    accepted = bool(record.get("accepted"))
    reason = str(record.get("reason", "?"))
    # One word for what happened; the reason column only says why a signal was refused.
    outcome = ("closed" if reason == "closed" else "accepted") if accepted else "refused"
    quantity = record.get("quantity")
    return [
        str(record.get("time", "?")),
        str(record.get("policy_version", "?")),
        str(record.get("mode") or "-"),
        str(record.get("symbol", "?")),
        str(record.get("strategy", "?")),
        str(record.get("side", "?")),
        outcome,
        "-" if accepted else reason,
        f"{quantity:.6g}" if isinstance(quantity, int | float) else "-",
    ]


def render_decisions(records: Sequence[Mapping[str, Any]]) -> str:
    """Return decision-log records as a table, each refusal's detail on the line below it.

    Columns fit their longest value up to a limit; longer values end in an ellipsis.

    Args:
        records: the records, oldest first (see :func:`policystore.consumers.decision_log.read_decisions`).

    Returns:
        The table.
    """
    headers = ["time", "version", "mode", "symbol", "strategy", "side", "outcome", "reason", "quantity"]
    rows = [[clipped(cell, _COLUMN_WIDTH) for cell in _decision_cells(r)] for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [line(headers), "  ".join("-" * w for w in widths)]
    for record, row in zip(records, rows, strict=True):
        lines.append(line(row))
        detail = " ".join(str(record.get("detail") or "").split())
        control = record.get("control")
        if control and str(control) not in detail:  # the policy path that refused, when the detail omits it
            detail = f"{detail} [{control}]".strip()
        if detail:
            lines.append(f"    {detail}")
    return "\n".join(lines)
