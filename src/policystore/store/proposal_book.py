"""The records of proposals, and the one write that applies a proposal.

A proposal and each step after it are records beside the policy (the back
end's :class:`~policystore.backends.base.RecordStore`, on every back end),
each written once with the records' put-if-absent ``add``: a proposal is never
edited, an admin's approval is one record keyed by the admin (so nobody
approves twice, even at the same instant), and a proposal has one outcome
record, which either rejects it or is claimed by the approver who applies it.
Where a proposal stands is worked out from those records, the history and the
clock (:func:`~policystore.model.proposals.settle`).

The write that applies a proposal is one compare-and-set write whose history
entry names the proposal, its proposer (the author) and every approver. It
checks, on the very version it is built on, that no write since the
proposal's base version touched its paths (else the proposal is stale) and
that no version applied it already: a lost reply, a retry, or an approver
whose claim was given up cannot apply it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from policystore.errors import ProposalRefusedError, StoreUnavailableError, UnknownProposalError
from policystore.model.changes import apply_patch
from policystore.model.events import EventType, PolicyChanged
from policystore.model.policy import Policy
from policystore.model.proposals import (
    PROPOSALS,
    STEPS,
    Proposal,
    ProposalStatus,
    applied_key,
    approval_key,
    outcome_key,
    settle,
    stale_since,
)
from policystore.model.roles import Actor
from policystore.store.write_checks import Endorsement
from policystore.store.writer import Writer

__all__ = ["CLOSED", "ProposalBook"]

#: How often an approval looks again for the version of another approver applying the same proposal.
_WAITS: Final = 100
#: Seconds between those looks.
_WAIT: Final = 0.05
#: Why a proposal in each state refuses another step.
CLOSED: Final = {
    ProposalStatus.APPLIED: "it was applied already",
    ProposalStatus.REJECTED: "it was rejected",
    ProposalStatus.EXPIRED: "its lifetime ended before it had its approvals; propose it again",
    ProposalStatus.STALE: "a path it changes was changed after the version it was made on; propose it again",
}
_LONGEST_ID: Final = 64


class _AppliedAlready(Exception):  # noqa: N818 - not a failure: the version that applied it exists
    """A version since the proposal's base applied it: the write stops, there is nothing more to do."""


class ProposalBook:
    """Reads and writes the records of one store's proposals, and applies them through its write loop.

    Args:
        writer: the store's write loop (its back end, clock, authority and events).
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._records = writer.backend.records

    async def all(self) -> list[Proposal]:
        """Return every proposal, newest first, each with where it stands (one read of the history for all)."""
        stored, steps = await self._records.all(PROPOSALS), await self._records.all(STEPS)
        latest = await self._writer.latest()
        grouped: dict[str, list[dict[str, Any]]] = {}
        for step in steps.values():
            grouped.setdefault(str(step.get("proposal")), []).append(step)
        now = self._writer.now()
        bases = [
            int(record["base_version"])
            for key, record in stored.items()
            if self._needs_history(record, grouped.get(key, []), latest, now)
        ]
        entries = await self._writer.backend.entries(min(bases), latest.version) if bases else []
        found = [self._settle(record, grouped.get(key, []), entries, latest, now) for key, record in stored.items()]
        return sorted(found, key=lambda p: (p.created_at, p.id), reverse=True)

    async def one(self, proposal_id: str) -> Proposal:
        """Return one proposal with where it stands.

        Raises:
            UnknownProposalError: no proposal has this id.
        """
        record = None
        if isinstance(proposal_id, str) and proposal_id.isalnum() and len(proposal_id) <= _LONGEST_ID:
            record = await self._records.get(PROPOSALS, proposal_id)
        if record is None:
            raise UnknownProposalError(str(proposal_id))
        steps = [s for s in (await self._records.all(STEPS)).values() if s.get("proposal") == proposal_id]
        latest, now = await self._writer.latest(), self._writer.now()
        needed = self._needs_history(record, steps, latest, now)
        entries = await self._writer.backend.entries(int(record["base_version"]), latest.version) if needed else []
        return self._settle(record, steps, entries, latest, now)

    @staticmethod
    def _needs_history(record: Mapping[str, Any], steps: list[dict[str, Any]], latest: Policy, now: datetime) -> bool:
        """Whether the history since its base can change where a proposal stands (applied, or stale)."""
        if latest.version <= int(record["base_version"]) or any(s.get("kind") == "applied" for s in steps):
            return False
        outcome = next((s for s in steps if s.get("kind") == "outcome"), None)
        if outcome is not None:
            return outcome.get("status") == ProposalStatus.APPLIED  # claimed: a version may name it
        return now < datetime.fromisoformat(str(record["expires_at"]))

    def _settle(
        self,
        record: Mapping[str, Any],
        steps: list[dict[str, Any]],
        entries: list[Any],
        latest: Policy,
        now: datetime,
    ) -> Proposal:
        needed = latest.change_control.approvals_required if record.get("raises_risk") else 0
        return settle(record, steps, entries, current_version=latest.version, approvals_required=needed, now=now)

    async def add(self, record: dict[str, Any]) -> str:
        """Store a new proposal under a fresh id; return the id."""
        while True:
            proposal_id = secrets.token_hex(5)
            if await self._records.add(PROPOSALS, proposal_id, record | {"id": proposal_id}):
                return proposal_id

    async def approve(self, proposal_id: str, who: Actor) -> dict[str, Any]:
        """Record ``who``'s approval, once; return the record.

        Raises:
            ProposalRefusedError: ``who`` approved it already.
        """
        step = {"kind": "approval", "proposal": proposal_id, "by": who.name, "at": self._writer.now().isoformat()}
        if not await self._records.add(STEPS, approval_key(proposal_id, who.name), step):
            raise ProposalRefusedError(proposal_id, ProposalStatus.PENDING.value, f"{who.name!r} approved it already")
        return step

    async def withdraw(self, proposal_id: str, who: Actor) -> None:
        """Remove ``who``'s approval of a proposal it could not apply, so that it may approve again."""
        with contextlib.suppress(StoreUnavailableError):
            await self._records.delete(STEPS, approval_key(proposal_id, who.name))

    async def reject(self, proposal: Proposal, who: Actor, reason: str) -> bool:
        """Record the proposal's outcome as rejected; False when it has an outcome already (claimed or rejected)."""
        outcome = {"kind": "outcome", "proposal": proposal.id, "status": ProposalStatus.REJECTED.value}
        outcome |= {"by": who.name, "reason": reason, "at": self._writer.now().isoformat()}
        return await self._records.add(STEPS, outcome_key(proposal.id), outcome)

    async def apply(self, proposal: Proposal, who: Actor) -> Proposal:
        """Apply a proposal that has its approvals: claim its outcome, then write it once.

        An approver that finds another's claim waits for the version that
        applies it; a claim whose write fails is given up, so that the proposal
        can still be applied or rejected.

        Returns:
            The proposal as it stands after.

        Raises:
            ProposalRefusedError: it went stale or expired, or was rejected, before it could be written.
            PolicyValidationError, PermissionDeniedError, StoreUnavailableError: as the write raised them.
        """
        claim = {"kind": "outcome", "proposal": proposal.id, "status": ProposalStatus.APPLIED.value}
        claim |= {"by": who.name, "at": self._writer.now().isoformat()}
        for _ in range(_WAITS):
            if await self._records.add(STEPS, outcome_key(proposal.id), claim):
                break
            current = await self.one(proposal.id)
            if current.status is not ProposalStatus.PENDING:
                return current
            await asyncio.sleep(_WAIT)
        else:
            return await self.one(proposal.id)
        try:
            policy = await self._write(proposal, who)
        except _AppliedAlready:
            return await self.one(proposal.id)
        except BaseException:
            with contextlib.suppress(StoreUnavailableError):
                await self._records.delete(STEPS, outcome_key(proposal.id))
            raise
        step = {"kind": "applied", "proposal": proposal.id, "version": policy.version, "at": claim["at"]}
        await self._records.add(STEPS, applied_key(proposal.id), step)
        return await self.one(proposal.id)

    async def _write(self, proposal: Proposal, who: Actor) -> Policy:
        writer = self._writer
        record = {"base_version": proposal.base_version, "paths": list(proposal.paths)}

        async def check(base: Policy) -> None:
            # On the version this write is built on: the write commits only if that is still the newest.
            entries = await writer.backend.entries(proposal.base_version, base.version)
            if any(e.proposal == proposal.id for e in entries):
                raise _AppliedAlready
            version = stale_since(record, entries, base.version)
            if version is not None:
                since = f"version {version} changed" if version > 0 else "the store went back before its version and"
                raise ProposalRefusedError(proposal.id, "stale", f"{since} a path it changes; propose it again")
            if writer.now() >= proposal.expires_at:
                raise ProposalRefusedError(proposal.id, "expired", CLOSED[ProposalStatus.EXPIRED])

        patch = dict(proposal.changes)
        approvers = ", ".join(proposal.approved_by) or "nobody (it raises no risk)"
        reason = f"{proposal.reason} (proposal {proposal.id}, approved by {approvers})"
        endorsement = Endorsement(proposal.id, proposal.proposed_by, proposal.approved_by, check)
        return await writer.write(
            lambda base: apply_patch(base, patch),
            action(proposal),
            None,
            reason,
            None,
            who,
            keys=list(patch),
            expires_in=proposal.expires_in,
            endorsement=endorsement,
        )

    async def announce(self, proposal: Proposal, step: str, by: str, reason: str) -> None:
        """Tell subscribers and the external event bus of a step (``proposed``, ``approved``, ``rejected``)."""
        facts: dict[str, Any] = {"id": proposal.id, "step": step, "status": proposal.status.value}
        facts["approved_by"] = list(proposal.approved_by)
        version = self._writer.held_version()
        event = PolicyChanged(
            type=EventType.PROPOSAL,
            version=version,
            previous_version=version,
            at=self._writer.now(),
            by=by,
            reason=reason,
            changes=proposal.diff,
            proposal=facts,
        )
        await self._writer.announce(event)


def action(proposal: Proposal) -> str:
    """What applying ``proposal`` is called in a refusal."""
    return f"applying proposal {proposal.id}"
