"""Changes to a policy: apply a patch, diff two versions.

A patch maps dot paths to new values. It applies whole or not at all: the
result is validated as one document and every failure is reported together.
Whether a change raises risk is :mod:`policystore.model.risk_direction`'s
(:func:`risk_increases` is offered here too).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Final

from policystore.errors import FieldError, PolicyValidationError, UnknownPathError
from policystore.model.change_control import CHANGE_CONTROL_FIELDS
from policystore.model.history import FieldChange
from policystore.model.modes import MODE_FIELDS
from policystore.model.paths import EFFECTIVE_STATE_PATH, EMERGENCY_FIELDS, HARD_LIMIT_FIELDS, suggest
from policystore.model.policy import RECORD_FIELDS, Policy, StrategySettings
from policystore.model.risk_direction import risk_increases
from policystore.model.trading import DEFAULT_INSTRUMENT, INSTRUMENT_FIELDS, TRADING_FIELDS, InstrumentLimits
from policystore.model.validation import build_policy

__all__ = [
    "apply_patch",
    "changes_nothing",
    "diff_policies",
    "risk_increases",
    "stamp_emergency",
    "stored_values",
    "unchanged",
    "writable_paths",
]

_SETTINGS_FIELDS: Final = tuple(StrategySettings.__dataclass_fields__)
_READ_ONLY: Final = RECORD_FIELDS
#: Who turned the kill switch on, and when, is the store's record of the write
#: that did it: a caller cannot name someone else or another time.
_STAMPED: Final = ("emergency.activated_at", "emergency.activated_by")
_NO_LIMITS: Final = InstrumentLimits()
#: Sections whose fields are written in place, each with its writable fields.
_PLAIN_SECTIONS: Final[dict[str, tuple[str, ...]]] = {
    "emergency": EMERGENCY_FIELDS,
    "hard_limits": HARD_LIMIT_FIELDS,
    "trading": TRADING_FIELDS,
    "change_control": CHANGE_CONTROL_FIELDS,
}


#: Every part of a policy :func:`stored_values` reads but the active mode, and its expiring changes.
_STORED_SECTIONS: Final = ("modes", "strategies", *_PLAIN_SECTIONS, "instruments", "overrides")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def stored_values(policy: Policy) -> dict[str, Any]:
    """Return every writable path with its stored value (JSON-ready)."""
    values: dict[str, Any] = {"active_mode": policy.active_mode}
    for section in _VALUED_SECTIONS:
        _section_values(section, getattr(policy, section), values)
    return values


#: The sections :func:`stored_values` reads, in its order.
_VALUED_SECTIONS: Final = ("modes", "strategies", *_PLAIN_SECTIONS, "instruments")


def _section_values(section: str, held: Any, values: dict[str, Any]) -> None:
    """Add the writable paths of one section of a policy, holding ``held``, with their stored values."""
    by_name = _NAMED_SECTIONS.get(section)
    if by_name is not None:
        by_name(held, values)
        return
    for field in _PLAIN_SECTIONS[section]:
        values[f"{section}.{field}"] = _json(getattr(held, field))


def _mode_values(modes: Mapping[str, Any], values: dict[str, Any]) -> None:
    for name, mode in modes.items():
        for field in MODE_FIELDS:
            values[f"modes.{name}.{field}"] = getattr(mode, field)


def _strategy_values(strategies: Mapping[str, Any], values: dict[str, Any]) -> None:
    for name, settings in strategies.items():
        for field in _SETTINGS_FIELDS:
            values[f"strategies.{name}.{field}"] = _json(getattr(settings, field))


def _instrument_values(instruments: Mapping[str, Any], values: dict[str, Any]) -> None:
    # The default entry's fields are always writable; an unset one is None, as when it has no entry.
    for key in (DEFAULT_INSTRUMENT, *sorted(instruments.keys() - {DEFAULT_INSTRUMENT})):
        entry = instruments.get(key, _NO_LIMITS)
        for field in INSTRUMENT_FIELDS:
            values[f"instruments.{key}.{field}"] = _json(getattr(entry, field))


#: The sections that map names to entries, each with the function that reads its paths.
_NAMED_SECTIONS: Final[dict[str, Callable[[Any, dict[str, Any]], None]]] = {
    "modes": _mode_values,
    "strategies": _strategy_values,
    "instruments": _instrument_values,
}


def writable_paths(policy: Policy) -> list[str]:
    """Return the paths a patch may set on ``policy``, sorted."""
    return sorted(stored_values(policy))


def diff_policies(old: Policy, new: Policy) -> tuple[FieldChange, ...]:
    """Return the stored fields that differ between two policies, by path.

    An expiring change made or ended shows as ``overrides.<version>`` (the
    version that made it), its end time before and after (None: none).
    """
    if all(getattr(old, section) is getattr(new, section) for section in _STORED_SECTIONS):
        # The very same sections (a mode switch, a version's own record): only the active mode can differ.
        same = old.active_mode == new.active_mode
        return () if same else (FieldChange("active_mode", old.active_mode, new.active_mode),)
    # Only the sections that differ are read path by path: a write changes a few fields of one or two.
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if old.active_mode != new.active_mode:
        before["active_mode"], after["active_mode"] = old.active_mode, new.active_mode
    for section in _VALUED_SECTIONS:
        held, made = getattr(old, section), getattr(new, section)
        if held is not made and held != made:
            _section_values(section, held, before)
            _section_values(section, made, after)
    missing = object()
    changes = []
    for path in sorted(before.keys() | after.keys()):
        # An instrument's unset field is the same as no entry: only set fields make a change.
        absent = None if path.startswith("instruments.") else missing
        a, b = before.get(path, absent), after.get(path, absent)
        if a != b:
            changes.append(FieldChange(path, None if a is missing else a, None if b is missing else b))
    if old.overrides or new.overrides:
        changes += _override_changes(old, new)
    return tuple(changes)


def _override_changes(old: Policy, new: Policy) -> list[FieldChange]:
    """The expiring changes made, ended, replaced on some paths or extended, by the version that made each."""
    before = {change.version: change for change in old.overrides}
    after = {change.version: change for change in new.overrides}
    changes = []
    for version in sorted(before.keys() | after.keys()):
        a, b = before.get(version), after.get(version)
        if a != b:
            old_end = a.until.isoformat() if a is not None else None
            new_end = b.until.isoformat() if b is not None else None
            if old_end == new_end:
                # The same end, fewer paths: a later write replaced it on the others.
                old_end = f"{old_end} ({', '.join(sorted(a.values))})" if a is not None else None
                new_end = f"{new_end} ({', '.join(sorted(b.values))})" if b is not None else None
            changes.append(FieldChange(f"overrides.{version}", old_end, new_end))
    return changes


def unchanged(old: Policy, new: Policy) -> bool:
    """Tell whether ``new`` holds what ``old`` holds: a write from one to the other changes nothing.

    Compared are the stored fields (:func:`stored_values`); ignored are each
    version's own record (number, time, author, reason) and the kill switch's
    activation stamp, which the store sets on every write (see
    :func:`stamp_emergency`).
    """
    return changes_nothing(diff_policies(old, new))


def changes_nothing(changes: Iterable[FieldChange]) -> bool:
    """Tell whether a write with these changes (:func:`diff_policies`) changes nothing (see :func:`unchanged`)."""
    return all(change.path in _STAMPED for change in changes)


def _read_only(path: str, current: Policy) -> str | None:
    """Say why ``path`` cannot be written, or None when it can."""
    head, _, rest = path.partition(".")
    if head in {"risk", "ai"} and rest:
        return f"is read-only; write modes.{current.active_mode}.{rest} to change the active mode"
    if path in _READ_ONLY:
        return "is set by the store on every write and cannot be written"
    if head == "overrides":
        return "lists the expiring changes in force; give a write a lifetime (expires_in, --for) to make one"
    if path in _STAMPED:
        return "is set by the store when the kill switch is turned on and cannot be written"
    if path == EFFECTIVE_STATE_PATH:
        return (
            "is read-only: it is trading.state with the kill switch folded in; write trading.state or emergency.active"
        )
    return None


def _instrument_path(rest: str) -> tuple[str, str | None]:
    """Split what follows ``instruments.`` into the entry's key and a field, or None for the whole entry.

    Symbols may hold dots (``BRK.B``) but never a lower-case letter, and field
    names are lower-case: a last part with one is a field.
    """
    key, _, last = rest.rpartition(".")
    if key and last != last.upper():
        return key, last
    return rest, None


def _set(data: dict[str, Any], path: str, value: Any, current: Policy) -> FieldError | None:
    """Write ``value`` at ``path`` into the document ``data``; report a read-only path."""
    value = _json(value)
    head, _, rest = path.partition(".")
    if path == "active_mode":
        data["active_mode"] = value
        return None
    refusal = _read_only(path, current)
    if refusal is not None:
        return FieldError(path, refusal)
    name, _, field = rest.partition(".")
    section_fields = {"modes": MODE_FIELDS, "strategies": _SETTINGS_FIELDS}.get(head)
    if section_fields is not None and name and not field:
        # A whole mode or strategy: a mapping adds or replaces it, None removes it.
        if value is not None:
            data[head][name] = value
        elif name in data[head]:
            del data[head][name]
        else:
            # Removing what is not there is a typo, not a change: say what was meant, or what there is.
            entries = [f"{head}.{n}" for n in data[head]]
            near = suggest(path, entries) or sorted(
                entries, key=lambda e: -difflib.SequenceMatcher(None, path, e).ratio()
            )
            raise UnknownPathError(path, near[:3])
        return None
    if section_fields is not None and name in data[head] and field in section_fields:
        entry = data[head][name]
        if isinstance(entry, dict):
            entry[field] = value
        return None
    if rest in _PLAIN_SECTIONS.get(head, ()):
        data.setdefault(head, {})[rest] = value  # a section left out of the document at its default
        return None
    if head == "instruments" and rest:
        _set_instrument(data["instruments"], path, rest, value, current)
        return None
    candidates = writable_paths(current)
    raise UnknownPathError(path, suggest(path, candidates))


def _set_instrument(entries: dict[str, Any], path: str, rest: str, value: Any, current: Policy) -> None:
    """Write an instrument's field (creating its entry) or a whole entry (None removes it).

    A key that is no valid symbol is kept for validation, which names the pattern.
    """
    key, field = _instrument_path(rest)
    if field is None:
        if value is not None:
            entries[key] = value
        elif key in entries:
            del entries[key]
        elif key != DEFAULT_INSTRUMENT:  # the default entry always answers, set or not
            near = suggest(path, [f"instruments.{k}" for k in entries])
            raise UnknownPathError(path, near)
        return
    if field not in INSTRUMENT_FIELDS:
        raise UnknownPathError(path, suggest(path, writable_paths(current)))
    entry = entries.setdefault(key, {})
    if isinstance(entry, dict):
        entry[field] = value


def apply_patch(policy: Policy, patch: Mapping[str, Any]) -> Policy:
    """Return ``policy`` with ``patch`` applied and validated; ``policy`` is unchanged.

    Args:
        policy: the version the patch is based on.
        patch: dot path to new value. ``modes.<NAME>`` and ``strategies.<name>``
            take a whole config (or ``None`` to remove one that is not built in).

    Returns:
        The new policy, with the same version and metadata as ``policy``.

    Raises:
        UnknownPathError: a path names nothing writable.
        PolicyValidationError: the result breaks a rule; every failure is listed.
    """
    if not patch:
        raise PolicyValidationError([FieldError("patch", "is empty; name at least one path to change")])
    if _switches_mode(policy, patch):
        # A mode switch to one of the modes: of all the rules, only "the active mode is a
        # mode" spans it, and the rest is this policy's, valid already.
        return policy.with_record(patch)
    data = policy.document()  # made anew by each call (nothing in it is the policy's own), so set in place
    errors = [e for path, value in patch.items() if (e := _set(data, str(path), value, policy)) is not None]
    if errors:
        raise PolicyValidationError(errors)
    return build_policy(data)


def _switches_mode(policy: Policy, patch: Mapping[str, Any]) -> bool:
    """Whether ``patch`` only makes another of ``policy``'s modes the active one, in a policy without expiring changes.

    Expiring changes are checked with the whole document (each return must lead
    to a valid policy), so a policy that holds any takes the whole way.
    """
    name = patch.get("active_mode")
    return (
        len(patch) == 1
        and type(name) is str
        and name in policy.modes
        and name != policy.active_mode
        and not policy.overrides
    )


def stamp_emergency(base: Policy, new: Policy, at: datetime, by: str) -> Policy:
    """Record who turned the kill switch on and when, on the version a write makes.

    Turning it on stamps ``at`` and ``by``; keeping it on keeps the first stamp
    (re-arming does not hide who stopped trading first); turning it off clears
    both. Any stamp in ``new`` itself (from an import or a rollback) is replaced.
    """
    was, now = base.emergency, new.emergency
    if not now.active:
        stamp: tuple[datetime | None, str | None] = (None, None)
    elif was.active:
        stamp = (was.activated_at or at, was.activated_by or by)
    else:
        stamp = (at, by)
    if (now.activated_at, now.activated_by) == stamp:
        return new
    emergency = dataclasses.replace(now, activated_at=stamp[0], activated_by=stamp[1])
    return dataclasses.replace(new, emergency=emergency)
