"""Proposals: a change that waits for enough admins to agree, and the state it is in.

A proposal is never edited. It is stored once, as made, and every step after
is a record of its own beside it: one per approval (keyed by the admin, so
nobody approves twice), one outcome (rejected, or claimed by the approver who
applies it; there is only ever one), and one saying which version applied it.
Its state is worked out from those records, the store's history and the clock,
by :func:`settle`:

* ``applied``: a version applied it (its history entry names the proposal);
* ``rejected``: someone rejected it;
* ``expired``: its lifetime (24 hours by default) ended first;
* ``stale``: a write after its base version changed a path it touches (or the
  store went back before that version): what the approvers saw is no longer
  what it would change;
* ``pending``: otherwise.

The proposer counts as the first approval when an admin; an operator may
propose, and then every approval comes from admins. This module is pure: the
store reads and writes the records (:mod:`policystore.store.proposals`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import FrozenDict

__all__ = [
    "DEFAULT_LIFETIME",
    "PROPOSALS",
    "STEPS",
    "Proposal",
    "ProposalStatus",
    "applied_key",
    "approval_key",
    "outcome_key",
    "settle",
    "stale_since",
    "touched_paths",
    "touches",
]

#: Seconds a proposal waits for its approvals before it expires.
DEFAULT_LIFETIME: Final = 24 * 3600.0
#: The record collection proposals are stored in, one record each, as made.
PROPOSALS: Final = "proposals"
#: The record collection of the steps after: approvals, outcomes, applications.
STEPS: Final = "proposal_steps"


class ProposalStatus(StrEnum):
    """Where a proposal stands (see the module's description)."""

    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"
    EXPIRED = "expired"
    STALE = "stale"


def approval_key(proposal_id: str, name: str) -> str:
    """The key of ``name``'s approval of a proposal: one per admin, whatever the name's length or characters."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{proposal_id}/approval/{digest}"


def outcome_key(proposal_id: str) -> str:
    """The key of a proposal's one outcome: its rejection, or the claim of the approver who applies it."""
    return f"{proposal_id}/outcome"


def applied_key(proposal_id: str) -> str:
    """The key of the record naming the version that applied a proposal."""
    return f"{proposal_id}/applied"


def touched_paths(patch: Iterable[str], changes: Iterable[FieldChange]) -> tuple[str, ...]:
    """Return the stored paths a proposal writes: those it names (a whole mode, a field) and those it changes."""
    return tuple(sorted({*patch, *(c.path for c in changes)}))


def touches(paths: Sequence[str], changed: Iterable[str]) -> bool:
    """Whether a write that changed ``changed`` (stored paths) changed any of ``paths`` or anything under one."""
    return any(c == p or c.startswith(f"{p}.") for c in changed for p in paths)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A change waiting for approvals, with its state as last worked out.

    Attributes:
        id: the proposal's id.
        changes: path -> value, as ``update`` takes them.
        base_version: the version it was made on.
        proposed_by: who proposed it.
        approved_by: the admins who approved it, in order (the proposer first, when an admin).
        status: where it stands.
        expires_at: when it expires if still pending.
        reason: why; recorded in history when applied.
        created_at: when it was made.
        raises_risk: the paths it raised risk in when made.
        approvals_required: how many distinct admins must agree to it, under the newest version read.
        paths: the stored paths it writes; a later change to any makes it stale.
        expires_in: the lifetime, in seconds, of the change once applied; None for a lasting change.
        diff: the stored fields it changed from its base version, when made.
        applied_version: the version that applied it.
        decided_by: who rejected it.
        decision_reason: why it was rejected.
        stale_version: the version whose change made it stale.
    """

    id: str
    changes: Mapping[str, Any]
    base_version: int
    proposed_by: str
    approved_by: tuple[str, ...]
    status: ProposalStatus
    expires_at: datetime
    reason: str
    created_at: datetime
    raises_risk: tuple[str, ...] = ()
    approvals_required: int = 1
    paths: tuple[str, ...] = ()
    expires_in: float | None = None
    diff: tuple[FieldChange, ...] = ()
    applied_version: int | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    stale_version: int | None = field(default=None)

    @property
    def approvals_missing(self) -> int:
        """How many more admins must approve it (0 once it has enough)."""
        return max(0, self.approvals_required - len(self.approved_by))

    def to_dict(self) -> dict[str, Any]:
        """Return the proposal as JSON-ready data."""
        return {
            "id": self.id,
            "status": self.status.value,
            "changes": dict(self.changes),
            "base_version": self.base_version,
            "proposed_by": self.proposed_by,
            "approved_by": list(self.approved_by),
            "approvals_required": self.approvals_required,
            "approvals_missing": self.approvals_missing,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "raises_risk": list(self.raises_risk),
            "paths": list(self.paths),
            "expires_in": self.expires_in,
            "diff": [c.to_dict() for c in self.diff],
            "applied_version": self.applied_version,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "stale_version": self.stale_version,
        }


def _approvals(steps: Iterable[Mapping[str, Any]], proposer: str) -> tuple[str, ...]:
    """The approvers' names: the proposer first (when it approved), then oldest approval first, ties by name."""
    found = [s for s in steps if s.get("kind") == "approval" and isinstance(s.get("by"), str)]
    found.sort(key=lambda s: (s["by"] != proposer, str(s.get("at", "")), s["by"]))
    return tuple(dict.fromkeys(str(s["by"]) for s in found))


def stale_since(record: Mapping[str, Any], entries: Sequence[HistoryEntry], current_version: int) -> int | None:
    """Return the version that made a stored proposal stale, or None; -1 when the store went back before its base.

    Args:
        record: the proposal as stored.
        entries: history entries after its base version (others are ignored).
        current_version: the store's newest version.
    """
    base = int(record["base_version"])
    if current_version < base:
        return -1
    paths = tuple(record.get("paths", ()))
    for entry in entries:
        if base < entry.version <= current_version and touches(paths, entry.changed_paths):
            return entry.version
    return None


def settle(
    record: Mapping[str, Any],
    steps: Iterable[Mapping[str, Any]],
    entries: Sequence[HistoryEntry],
    *,
    current_version: int,
    approvals_required: int,
    now: datetime,
) -> Proposal:
    """Work out where a proposal stands.

    Args:
        record: the proposal as stored when it was made.
        steps: its step records (approvals, outcome, application).
        entries: history entries after its base version, up to ``current_version`` at least
            (those of other versions are ignored).
        current_version: the store's newest version.
        approvals_required: how many admins must agree to it under that version.
        now: the time to judge expiry by.

    Returns:
        The proposal with its state.

    Raises:
        KeyError, ValueError, TypeError: the record is not a proposal.
    """
    steps = list(steps)
    proposal_id = str(record["id"])
    by_kind = {str(s.get("kind")): s for s in steps if s.get("kind") in {"outcome", "applied"}}
    approved_by = _approvals(steps, str(record["proposed_by"]))
    outcome, applied = by_kind.get("outcome"), by_kind.get("applied")
    entry = next((e for e in entries if e.proposal == proposal_id), None)
    facts: dict[str, Any] = {}
    if entry is not None or applied is not None:
        status = ProposalStatus.APPLIED
        facts["applied_version"] = entry.version if entry is not None else int(applied["version"])  # type: ignore[index]
        if entry is not None and entry.approved_by:
            approved_by = entry.approved_by
    elif outcome is not None and outcome.get("status") == ProposalStatus.REJECTED:
        status = ProposalStatus.REJECTED
        facts["decided_by"] = outcome.get("by")
        facts["decision_reason"] = outcome.get("reason")
    elif now >= datetime.fromisoformat(str(record["expires_at"])):
        status = ProposalStatus.EXPIRED
    elif (version := stale_since(record, entries, current_version)) is not None:
        status = ProposalStatus.STALE
        facts["stale_version"] = None if version < 0 else version
    else:
        # Also while an approver applies it (its outcome claims it and no version names it yet).
        status = ProposalStatus.PENDING
    return Proposal(
        id=proposal_id,
        changes=FrozenDict(record["changes"]),
        base_version=int(record["base_version"]),
        proposed_by=str(record["proposed_by"]),
        approved_by=approved_by,
        status=status,
        expires_at=datetime.fromisoformat(str(record["expires_at"])),
        reason=str(record["reason"]),
        created_at=datetime.fromisoformat(str(record["created_at"])),
        raises_risk=tuple(record.get("raises_risk", ())),
        approvals_required=approvals_required,
        paths=tuple(record.get("paths", ())),
        expires_in=record.get("expires_in"),
        diff=tuple(FieldChange.from_dict(c) for c in record.get("diff", ())),
        **facts,
    )
