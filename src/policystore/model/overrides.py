"""The ``overrides`` section as data: the paths an expiring change may hold, its return, and its checks.

An expiring change (:class:`~policystore.model.policy.Override`) names stored
leaf paths, the ones :func:`~policystore.model.changes.stored_values` lists
(``active_mode``, ``modes.<NAME>.<field>``, ``strategies.<name>.<field>``,
``emergency.<field>``, ``hard_limits.<field>``, ``trading.<field>``,
``instruments.<KEY>.<field>``), each with the value it set and the value it
returns to. A value of None for a field of a mode or strategy that must always
hold one means the entry did not exist: the return removes it (and a value for
an entry that does not exist creates it).

Everything here works on plain documents, so the validation of a document can
check that each return leads to a valid policy without a policy in hand; what
is in force at a moment, and how a write gains a lifetime, is
:mod:`policystore.model.expiry`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from numbers import Real
from typing import Any, Final

from policystore.errors import FieldError, PolicyValidationError
from policystore.model.modes import MODE_FIELDS
from policystore.model.numbers import short_repr
from policystore.model.paths import EMERGENCY_FIELDS, HARD_LIMIT_FIELDS
from policystore.model.policy import Override, StrategySettings
from policystore.model.trading import INSTRUMENT_FIELDS, TRADING_FIELDS

__all__ = [
    "MAX_LIFETIME",
    "MAX_OVERRIDES",
    "covers",
    "leaf_problem",
    "leaf_value",
    "lifetime_seconds",
    "override_problems",
    "returned_document",
]

#: The longest lifetime a write may carry: 31 days. Temporary room is for hours or days; a
#: change meant to last longer is a change, and a forged end a year away is refused.
MAX_LIFETIME: Final = timedelta(days=31)
#: The most expiring changes one document may hold at once.
MAX_OVERRIDES: Final = 64

_SETTINGS_FIELDS: Final = tuple(StrategySettings.__dataclass_fields__)
#: The fields of each plain section an expiring change may name.
_SECTION_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "emergency": EMERGENCY_FIELDS,
    "hard_limits": HARD_LIMIT_FIELDS,
    "trading": TRADING_FIELDS,
}
#: The field whose value None means "this entry did not exist": every mode field, a strategy's cooldown.
_PRESENCE: Final = {"modes": MODE_FIELDS[0], "strategies": "cooldown_seconds"}


def lifetime_seconds(value: Any, *, name: str = "expires_in", shown: str | None = None) -> float:
    """Return a write's lifetime in seconds, or refuse it.

    Args:
        value: seconds (an int, a float or a :class:`~decimal.Decimal`) or a
            :class:`~datetime.timedelta`.
        name: the argument's name, for the refusal.
        shown: the value as the caller typed it, for the refusal (default: ``value``).

    Returns:
        The lifetime, above 0 and at most :data:`MAX_LIFETIME`.

    Raises:
        PolicyValidationError: not a number of seconds (a boolean is not), not
            finite, not above 0, or longer than :data:`MAX_LIFETIME`.
    """
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, Real | Decimal) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except (OverflowError, ValueError):
            seconds = None
    limit = MAX_LIFETIME.total_seconds()
    got = short_repr(value if shown is None else shown)
    if seconds is None or not math.isfinite(seconds):
        problem = f"must be a number of seconds (got {got})"
    elif seconds <= 0:
        problem = f"must be above 0 seconds (got {got})"
    elif seconds > limit:
        problem = f"must be at most {limit:.0f} seconds (31 days) (got {got})"
    else:
        return seconds
    raise PolicyValidationError([FieldError(name, problem)])


def _split(path: str) -> tuple[str, str, str]:
    """Split a stored leaf path into its section, entry (or "") and field.

    Instrument symbols may hold dots (``BRK.B``) but field names are lower-case,
    so an instrument path is split at its last dot.
    """
    head, _, rest = path.partition(".")
    if head == "instruments":
        entry, _, field = rest.rpartition(".")
        return head, entry, field
    if head in _PRESENCE:
        entry, _, field = rest.partition(".")
        return head, entry, field
    return head, "", rest


def leaf_problem(path: Any) -> str | None:
    """Say why ``path`` is no stored leaf path an expiring change may name, or None when it is one."""
    if not isinstance(path, str):
        return "is not a path"
    if path == "active_mode":
        return None
    head, entry, field = _split(path)
    if head in _SECTION_FIELDS:
        known = field in _SECTION_FIELDS[head]
    elif head in _PRESENCE:
        known = bool(entry) and field in (MODE_FIELDS if head == "modes" else _SETTINGS_FIELDS)
    elif head == "instruments":
        known = bool(entry) and field in INSTRUMENT_FIELDS
    else:
        known = False
    return None if known else "is not a stored field an expiring change can hold"


def covers(key: str, path: str) -> bool:
    """Whether a write naming ``key`` (a patch's path) writes the stored leaf ``path``.

    ``modes.NORMAL`` covers every field of that mode; ``instruments.BRK`` covers
    the fields of ``BRK``, not those of ``BRK.B``.
    """
    if key == path:
        return True
    head, entry, _ = _split(path)
    if head == "instruments":
        return key == f"instruments.{entry}"
    return path.startswith(f"{key}.")


def leaf_value(data: Mapping[str, Any], path: str) -> Any:
    """Return the value a document holds at a stored leaf path; None where it holds none."""
    if path == "active_mode":
        return data.get("active_mode")
    head, entry, field = _split(path)
    section = data.get(head)
    if not isinstance(section, Mapping):
        return None
    holder = section.get(entry) if entry else section
    return holder.get(field) if isinstance(holder, Mapping) else None


def _set_leaf(data: dict[str, Any], path: str, value: Any, removed: set[tuple[str, str]]) -> None:
    if path == "active_mode":
        data["active_mode"] = value
        return
    head, entry, field = _split(path)
    section = data.setdefault(head, {})
    if not entry:
        section[field] = value
    elif (head, entry) not in removed:
        holder = section.setdefault(entry, {})
        if isinstance(holder, dict):
            holder[field] = value


def returned_document(data: Mapping[str, Any], ended: Iterable[Override]) -> dict[str, Any]:
    """Return a copy of the document ``data`` with the ``ended`` expiring changes returned and removed.

    Each path of an ended change takes the value it replaced; a mode or strategy
    whose presence field returns to None is removed whole. The record
    (version, time, author, reason) is left as it is.

    Args:
        data: a policy document.
        ended: the ended changes.

    Returns:
        The new document; ``data`` is unchanged.
    """
    result = copy.deepcopy(dict(data))
    gone = list(ended)
    versions = {change.version for change in gone}
    removed: set[tuple[str, str]] = set()
    for change in gone:
        for path, value in change.replaced.items():
            head, entry, field = _split(path)
            if value is None and _PRESENCE.get(head) == field:
                removed.add((head, entry))
                section = result.get(head)
                if isinstance(section, dict):
                    section.pop(entry, None)
    for change in gone:
        for path, value in change.replaced.items():
            _set_leaf(result, path, value, removed)
    kept = [change for change in result.get("overrides") or () if change.get("version") not in versions]
    if kept:
        result["overrides"] = kept
    else:
        result.pop("overrides", None)
    return result


def _same(held: Any, value: Any) -> bool:
    """Whether a document's value and an expiring change's are the same; times may be written either way."""
    if held == value:
        return True
    if isinstance(held, str) and isinstance(value, str):
        try:
            return datetime.fromisoformat(held) == datetime.fromisoformat(value)
        except ValueError:
            return False
    return False


def _change_problems(index: int, change: Override, data: Mapping[str, Any], seen: dict[str, int]) -> list[FieldError]:
    """What is wrong with one expiring change of a document, apart from its return."""
    where = f"overrides.{index}"
    if change.values.keys() != change.replaced.keys():
        return [FieldError(where, "must name the same paths in values and replaced")]
    errors: list[FieldError] = []
    if not change.values:
        errors.append(FieldError(where, "must name at least one path"))
    for path, value in change.values.items():
        problem = leaf_problem(path)
        if problem is not None:
            errors.append(FieldError(f"{where}.values.{short_repr(path)}", problem))
        elif path in seen:
            message = f"is held by the expiring change overrides.{seen[path]} too; a path has one at a time"
            errors.append(FieldError(f"{where}.values.{path}", message))
        elif not _same(leaf_value(data, path), value):
            # A later write to the path replaces the change: the document holds what the change set.
            message = f"is {short_repr(value)} here but {short_repr(leaf_value(data, path))} in the policy"
            errors.append(FieldError(f"{where}.values.{path}", message))
        else:
            seen[path] = index
    if not change.at < change.until <= change.at + MAX_LIFETIME:
        errors.append(FieldError(f"{where}.until", "must come after at, by at most 31 days"))
    return errors


def override_problems(data: Mapping[str, Any], changes: Sequence[Override]) -> list[FieldError]:
    """Check a document's expiring changes, apart from their returns (see :mod:`~policystore.model.validation`).

    Each change names stored leaf paths, the same ones in ``values`` and
    ``replaced``; the document holds the value it set at each; no path is held
    by two; each ends after it was written, within :data:`MAX_LIFETIME`; no
    two share a version; there are at most :data:`MAX_OVERRIDES`.

    Args:
        data: the policy document (JSON-ready values).
        changes: its expiring changes, typed.

    Returns:
        Every problem found.
    """
    errors: list[FieldError] = []
    if len(changes) > MAX_OVERRIDES:
        errors.append(FieldError("overrides", f"holds {len(changes)} expiring changes; at most {MAX_OVERRIDES}"))
    seen: dict[str, int] = {}
    versions: set[int] = set()
    for index, change in enumerate(changes):
        errors += _change_problems(index, change, data, seen)
        if change.version in versions:
            message = f"{change.version} is the version of another change"
            errors.append(FieldError(f"overrides.{index}.version", message))
        versions.add(change.version)
    return errors
