"""What a write is checked by and built from: its record, its lifetime, its endorsement, its result and entry.

The pure steps of :meth:`Writer.write <policystore.store.writer.Writer.write>`
(and of its preview), kept apart from the loop that loads and commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from policystore.errors import FieldError, PolicyValidationError
from policystore.model.changes import stamp_emergency
from policystore.model.expiry import in_force, with_lifetime
from policystore.model.history import FieldChange, HistoryEntry, record_errors, record_text_problem
from policystore.model.numbers import short_repr
from policystore.model.overrides import lifetime_seconds
from policystore.model.policy import Policy
from policystore.model.roles import Actor

__all__ = [
    "Endorsement",
    "check_endorsed",
    "history_entry",
    "refuse_unfit_kill_switch_reason",
    "refuse_unfit_record",
    "write_author",
    "write_candidate",
    "write_lifetime",
]


@dataclass(frozen=True, slots=True)
class Endorsement:
    """What a write that applies a proposal carries: the proposal, its author and the admins who approved it.

    Attributes:
        proposal: the proposal's id, recorded in the history entry.
        author: who proposed it: the version's author.
        approved_by: the admins who approved it; their number is the write's approvals.
        check: called with the version the write is about to be made on, before
            the change is applied; raises to stop the write (a proposal that went
            stale, or that another approver applied meanwhile).
    """

    proposal: str
    author: str
    approved_by: tuple[str, ...]
    check: Callable[[Policy], Awaitable[None]]


async def check_endorsed(base: Policy, endorsement: Endorsement | None) -> None:
    """Refuse to build on ``base`` a write whose proposal may not apply to it (stale, expired, applied)."""
    if endorsement is not None:
        await endorsement.check(base)


def refuse_unfit_record(reason: Any, author: Any, expected_version: Any) -> None:
    """Refuse a write whose record is unfit, before anything is read; every failure is listed."""
    errors = record_errors(reason, author)
    if expected_version is not None and (isinstance(expected_version, bool) or not isinstance(expected_version, int)):
        # True == 1 in Python: a boolean would be taken as version 1.
        message = f"must be a version number or None (got {short_repr(expected_version)})"
        errors.append(FieldError("expected_version", message))
    if errors:
        raise PolicyValidationError(errors)


def refuse_unfit_kill_switch_reason(base: Policy, new: Policy) -> None:
    """Refuse a kill-switch reason unfit for the record, when the write sets one."""
    reason = new.emergency.reason
    if reason is not None and reason != base.emergency.reason and (problem := record_text_problem(reason)):
        raise PolicyValidationError([FieldError("emergency.reason", problem)])


def write_lifetime(expires_in: float | timedelta | None, action: str, *, replaces_whole: bool) -> float | None:
    """A write's lifetime in seconds, or None for good.

    Raises:
        PolicyValidationError: no number of seconds above 0 and up to the longest,
            or one given to a write of a whole document.
    """
    lifetime = lifetime_seconds(expires_in) if expires_in is not None else None
    if lifetime is not None and replaces_whole:
        message = f"cannot go with {action}: a whole document is written for good"
        raise PolicyValidationError([FieldError("expires_in", message)])
    return lifetime


def history_entry(new: Policy, changes: tuple[FieldChange, ...], endorsement: Endorsement | None) -> HistoryEntry:
    """The history entry of ``new`` making ``changes``; one that applies a proposal names it and every approver."""
    entry = HistoryEntry(new.version, new.updated_at, new.updated_by, new.reason, changes)
    if endorsement is None:
        return entry
    return dataclasses.replace(entry, approved_by=endorsement.approved_by, proposal=endorsement.proposal)


def write_author(
    who: Actor, named: bool, updated_by: str | None, endorsement: Endorsement | None
) -> tuple[str, int | None]:
    """Who a write records as its author, and the approvals it carries (None: the actor's own)."""
    if endorsement is not None:
        return endorsement.author, len(endorsement.approved_by)
    return (who.name if named or not updated_by else updated_by), None


def write_candidate(  # noqa: PLR0917 - the facts of one write
    base: Policy,
    change: Callable[[Policy], Policy],
    now: datetime,
    author: str,
    reason: str,
    keys: Collection[str],
    lifetime: float | None,
    *,
    replaces_whole: bool,
) -> Policy:
    """The policy a write makes of ``base`` in force: a whole document, or a patch with its expiring changes."""
    if replaces_whole:
        return in_force(stamp_emergency(base, change(base), now, author), now)
    return _with_change(base, change, now, author, reason, keys, lifetime)


def _with_change(  # noqa: PLR0917 - the facts of one write
    base: Policy,
    change: Callable[[Policy], Policy],
    now: datetime,
    author: str,
    reason: str,
    keys: Collection[str],
    lifetime: float | None,
) -> Policy:
    """Apply a patch write's ``change`` to ``base`` in force, with the expiring changes it keeps, replaces or makes.

    The change is given ``base`` without its expiring changes, which it may
    contradict (it may write a path one holds);
    :func:`~policystore.model.expiry.with_lifetime` settles them.
    """
    plain = dataclasses.replace(base, overrides=()) if base.overrides else base
    candidate = stamp_emergency(base, change(plain), now, author)
    return with_lifetime(base, candidate, keys=keys, expires_in=lifetime, at=now, by=author, reason=reason)
