"""What a write is checked by before it is built and committed: its record, its base version, its endorsement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from policystore.errors import FieldError, PolicyValidationError, VersionConflictError
from policystore.model.history import record_errors, record_text_problem
from policystore.model.numbers import short_repr
from policystore.model.policy import Policy

__all__ = ["Endorsement", "check_base", "refuse_unfit_kill_switch_reason", "refuse_unfit_record"]


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


async def check_base(base: Policy, expected_version: int | None, endorsement: Endorsement | None) -> None:
    """Refuse to build on ``base``: not the version expected, or one the endorsed proposal may not apply to."""
    if expected_version is not None and base.version != expected_version:
        raise VersionConflictError(expected_version, base.version)
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
