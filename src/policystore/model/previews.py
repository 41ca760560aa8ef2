"""Previews: what a write would do, worked out without writing anything.

A dry run (``dry_run=True`` on every write of the store, ``--dry-run`` on the
command line, ``"dry_run": true`` in HTTP bodies) applies the change to the
version it would be made on exactly as the write would, then answers a
:class:`Preview`: every effective value that would change (``risk.*``,
``ai.*``, each strategy's effective config, the trading controls in force:
what readers would see, not only the stored fields), which paths raise risk,
the least role that may make it, how many admins must agree, and whether the
caller may make it now. With a decision log, the consumers add how the
recorded signals would have been decided (:class:`DecisionImpact`, see
:mod:`policystore.consumers.what_if`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final

from policystore.errors import PermissionDeniedError
from policystore.model.changes import diff_policies, unchanged
from policystore.model.expiry import authorize_timeline
from policystore.model.history import FieldChange
from policystore.model.paths import METADATA_PATHS, flatten
from policystore.model.policy import Policy
from policystore.model.risk_direction import risk_increases
from policystore.model.roles import Actor, Role, approvals_needed

__all__ = ["DecisionImpact", "Preview", "effective_changes", "preview_change"]

#: The record of a version (its number, time, author, reason): set by the store on every write, not a change.
_RECORD: Final = frozenset(METADATA_PATHS) - {"active_mode"}


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def effective_changes(old: Policy, new: Policy) -> tuple[FieldChange, ...]:
    """Return every readable value that differs from ``old`` to ``new``, by path.

    Unlike :func:`~policystore.model.changes.diff_policies` (the stored fields),
    this is what a reader sees: a mode switch changes ``risk.*``, ``ai.*`` and
    every strategy's effective values, not only ``active_mode``; a default
    instrument limit changes every instrument that falls back to it.
    """
    before, after = flatten(old), flatten(new)
    changes = []
    for path in sorted((before.keys() | after.keys()) - _RECORD):
        a, b = _json(before.get(path)), _json(after.get(path))
        if a != b or (path in before) != (path in after):
            changes.append(FieldChange(path, a, b))
    return tuple(changes)


@dataclass(frozen=True, slots=True)
class DecisionImpact:
    """How the signals of a decision log would have been decided under a change, against the policy before it.

    Both sides are decided by the executor itself, the same way, so every
    difference comes from the change alone.

    Attributes:
        log: the decision log read.
        signals: how many recorded signals were decided again.
        skipped: records that hold no signal the executor can take (logged by something else, or damaged).
        changed: how many would be decided with another reason.
        by_reason: ``"old -> new"`` reason pair -> count, most frequent first.
        resized: accepted under both, with another size.
        reproduced: how many of the decisions under the policy before the change
            match the recorded reason (the rest depended on account state the
            log does not hold).
        examples: a few of the changed decisions: time, symbol, strategy, old and new reason and detail.
    """

    log: str
    signals: int
    skipped: int
    changed: int
    by_reason: Mapping[str, int]
    resized: int
    reproduced: int
    examples: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready data."""
        return {
            "log": self.log,
            "signals": self.signals,
            "skipped": self.skipped,
            "changed": self.changed,
            "by_reason": dict(self.by_reason),
            "resized": self.resized,
            "reproduced": self.reproduced,
            "examples": [dict(e) for e in self.examples],
        }


@dataclass(frozen=True, slots=True)
class Preview:
    """What a write would do; nothing was written.

    Attributes:
        action: what the write is ("switching to mode DEFENSIVE").
        base_version: the version the write would be made on; pass it as
            ``expected_version`` to make exactly this change.
        changes: every effective value that would change, by path (see :func:`effective_changes`).
        stored_changes: the stored fields that would change (what history would record).
        raises_risk: the paths whose change lets the system take more risk.
        required_role: the least role that may make the change.
        approvals_required: how many distinct admins must agree: 0 for a change
            any operator may make, 1 for an admin's own, and
            ``change_control.approvals_required`` for one that raises risk.
        allowed: whether the caller may make it now, as one write.
        refusal: why not, in the sentence the write would be refused with; None when allowed.
        stale: True when the live store could not be read and the version previewed is this process's copy.
        changed: whether the write would make a new version (a write that changes nothing makes none).
        decisions: how a decision log's signals would be decided under the change, when one was given.
        base: the policy the change is made on (not part of :meth:`to_dict`).
        result: the policy it would make, with the base's version (not part of :meth:`to_dict`).
    """

    action: str
    base_version: int
    changes: tuple[FieldChange, ...]
    stored_changes: tuple[FieldChange, ...]
    raises_risk: tuple[str, ...]
    required_role: Role
    approvals_required: int
    allowed: bool
    refusal: str | None = None
    stale: bool = False
    changed: bool = True
    decisions: DecisionImpact | None = None
    base: Policy | None = field(default=None, repr=False, compare=False)
    result: Policy | None = field(default=None, repr=False, compare=False)

    @property
    def proposal_required(self) -> bool:
        """Whether the change must go through a proposal: more than one admin must agree to it."""
        return self.approvals_required > 1

    def with_decisions(self, impact: DecisionImpact) -> Preview:
        """Return this preview with ``impact`` added."""
        return dataclasses.replace(self, decisions=impact)

    def to_dict(self) -> dict[str, Any]:
        """Return the preview as JSON-ready data (``dry_run`` true, the policies left out)."""
        return {
            "dry_run": True,
            "action": self.action,
            "base_version": self.base_version,
            "changed": self.changed,
            "changes": [c.to_dict() for c in self.changes],
            "stored_changes": [c.to_dict() for c in self.stored_changes],
            "raises_risk": list(self.raises_risk),
            "required_role": self.required_role.value,
            "approvals_required": self.approvals_required,
            "proposal_required": self.proposal_required,
            "allowed": self.allowed,
            "refusal": self.refusal,
            "stale": self.stale,
            "decisions": None if self.decisions is None else self.decisions.to_dict(),
        }


def preview_change(
    actor: Actor,
    base: Policy,
    result: Policy,
    *,
    action: str,
    approvals: int | None = None,
    admin_only: bool = False,
    stale: bool = False,
) -> Preview:
    """Return what turning ``base`` into ``result`` would do, and whether ``actor`` may do it.

    The verdict is the one every write is checked by
    (:func:`~policystore.model.expiry.authorize_timeline`: now, and at every
    end of an expiring change).

    Args:
        actor: who would write.
        base: the version the change would be made on.
        result: the policy the change makes of it (validated, kill switch stamped).
        action: what the write is, for the refusal's sentence.
        approvals: how many admins agreed (a proposal's); by default the actor's own write.
        admin_only: the write needs an admin whatever it changes (a rollback).
        stale: ``base`` is this process's copy, not the live store's version.

    Returns:
        The preview.
    """
    raised: Sequence[str] = risk_increases(base, result)
    refusal = None
    try:
        if admin_only:
            actor.require(Role.ADMIN, action)
        authorize_timeline(actor, base, result, action, approvals=approvals)
    except PermissionDeniedError as exc:
        refusal = str(exc)
    return Preview(
        action=action,
        base_version=base.version,
        changes=effective_changes(base, result),
        stored_changes=diff_policies(base, result),
        raises_risk=tuple(raised),
        required_role=Role.ADMIN if raised or admin_only else Role.OPERATOR,
        approvals_required=approvals_needed(base, raised, admin_only=admin_only),
        allowed=refusal is None,
        refusal=refusal,
        stale=stale,
        changed=not unchanged(base, result),
        base=base,
        result=result,
    )
