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

from policystore.model.controls import firm_state
from policystore.model.events import PolicyChanged
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.modes import MODE_FIELDS, RiskModeConfig
from policystore.model.paths import clamped_override
from policystore.model.policy import RECORD_FIELDS, STRATEGY_FIELDS, Override, Policy
from policystore.store.sources import Explanation

__all__ = [
    "by_importance",
    "change_summary",
    "render_decisions",
    "render_diff",
    "render_event",
    "render_explanation",
    "render_history",
    "render_history_full",
    "render_preset",
    "render_show",
    "render_strategies",
    "table",
    "to_json",
    "value_text",
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


def render_show(policy: Policy, *, source: str, stale: bool) -> str:
    """Return the ``show`` screen: metadata, kill switch, every mode's values side by side, and the strategies.

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
        ("trading", _firm_state_text(policy)),
        ("version", policy.version),
        ("updated", f"{value_text(policy.updated_at)} by {policy.updated_by}"),
        ("reason", policy.reason or "-"),
        ("source", source + (" (STALE: the live store cannot be reached)" if stale else "")),
    ]
    head += [(f"expires (v{change.version})", _expiring(change)) for change in policy.overrides]
    names = sorted(policy.modes, key=lambda n: (n != policy.active_mode, n))
    headers = ["field", *(f"{n}*" if n == policy.active_mode else n for n in names)]
    rows = [[field, *(getattr(policy.modes[n], field) for n in names)] for field in MODE_FIELDS]
    modes = table(headers, rows) + "\n\n* active mode"
    return _key_values(head) + "\n\n" + modes + "\n\n" + render_strategies(policy)


def render_strategies(policy: Policy) -> str:
    """Return every strategy's effective config under the active mode, each stored override beside it.

    A cell is the value in force; ``(own)`` marks a stored override that is that
    value, ``(own X, clamped)`` one the active mode overrules, which a note
    under the table explains (as ``explain`` words it).

    Args:
        policy: the policy to show.

    Returns:
        The table and its notes, or a sentence when there is no strategy.
    """
    if not policy.strategies:
        return "No strategies."
    fields = [field for field, mode_field in STRATEGY_FIELDS.items() if mode_field is not None]
    rows, notes = [], []
    for name, settings in policy.strategies.items():
        effective = policy.strategy(name)
        cells = [name, settings.state.value, value_text(settings.cooldown_seconds)]
        for field in fields:
            own, value = getattr(settings, field), getattr(effective, field)
            if (clamp := clamped_override(policy, f"strategies.{name}.{field}")) is not None:
                cells.append(f"{value_text(value)} (own {value_text(own)}, clamped)")
                notes.append(f"note: strategies.{name}.{field}: {clamp.detail}.")
            else:
                cells.append(value_text(value) + (" (own)" if own is not None else ""))
        rows.append(cells)
    legend = (
        f"Values in force under {policy.active_mode}; (own): the strategy's stored override, "
        "unmarked: the active mode's value."
    )
    return "\n".join([table(["strategy", "state", "cooldown_seconds", *fields], rows), "", legend, *notes])


def _firm_state_text(policy: Policy) -> str:
    """The firm-wide trading state as set, and in force when the kill switch raises it."""
    state, in_force = policy.trading.state.value, firm_state(policy).state.value
    return state if in_force == state else f"{state} (in force: {in_force}, the kill switch is on)"


def _expiring(change: Override) -> str:
    """One expiring change on a line: what it set, until when, what it returns to, who and why."""
    values = ", ".join(
        f"{path} {value_text(value)} (returns to {value_text(change.replaced[path])})"
        for path, value in change.values.items()
    )
    return f"{values} until {value_text(change.until)} by {change.by}: {change.reason}"


def render_explanation(explanation: Explanation, extra: Sequence[tuple[str, Any]] = ()) -> str:
    """Return an explanation as aligned ``key  value`` lines.

    Args:
        explanation: what :meth:`PolicyStore.explain` returned.
        extra: more ``(key, value)`` lines after the explanation's own (a trading
            path's ``set by`` and ``in force``).

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
            *extra,
            *([("expires", explanation.expires_at)] if explanation.expires_at is not None else []),
        ]
    )


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
    return (text if forced else _clip(text, width - len(more))) + more


def _clip(text: str, width: int = _CHANGES_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


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
    rows = [[_clip(cell, _COLUMN_WIDTH) for cell in _decision_cells(r)] for r in records]
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
