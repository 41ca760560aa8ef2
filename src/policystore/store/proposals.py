"""Proposals in the store: propose, list, approve and reject changes that need more than one admin.

While ``change_control.approvals_required`` is 2 or more, a change that raises
risk is refused as one write (:class:`~policystore.errors.ApprovalRequiredError`)
and made through a proposal: an admin or operator proposes it, admins approve
it (the proposer counts as the first, when an admin; nobody approves twice),
and the approval that brings enough applies it as one version whose history
entry names the proposer and every approver. A proposal that needs no more
approvals than it has when made (a change that only tightens, or an admin's
while one approval is enough) is applied at once. Any admin, or its proposer,
may reject a pending proposal.

The records and the write that applies a proposal are
:mod:`~policystore.store.proposal_book`'s; where a proposal stands is worked
out by :func:`~policystore.model.proposals.settle`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final, Literal, overload

from policystore.errors import (
    FieldError,
    PermissionDeniedError,
    PolicyValidationError,
    ProposalRefusedError,
    StoreUnavailableError,
)
from policystore.model.changes import apply_patch, diff_policies, stamp_emergency, unchanged
from policystore.model.history import record_errors
from policystore.model.numbers import finite_float, short_repr
from policystore.model.overrides import lifetime_seconds
from policystore.model.previews import Preview
from policystore.model.proposals import DEFAULT_LIFETIME, Proposal, ProposalStatus, settle, touched_paths
from policystore.model.risk_direction import risk_increases
from policystore.model.roles import Actor, Role, approvals_needed
from policystore.store.previewing import Previewed, is_previewing
from policystore.store.proposal_book import CLOSED, ProposalBook, action
from policystore.store.writer import Writer

__all__ = ["Proposals"]

#: The longest lifetime a proposal may be given: a week.
_MAX_LIFETIME: Final = 7 * 24 * 3600.0


class Proposals:
    """The proposals of :class:`~policystore.store.store.PolicyStore`, kept in its back end's records.

    Args:
        writer: the store's write loop (its back end, clock, authority and events).
    """

    def __init__(self, writer: Writer) -> None:
        self._proposal_writer = writer
        self._book = ProposalBook(writer)

    async def proposals(self) -> list[Proposal]:
        """Return every proposal, of every status, newest first, with where each stands now.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        return await self._book.all()

    async def proposal(self, proposal_id: str) -> Proposal:
        """Return one proposal with where it stands now.

        Raises:
            UnknownProposalError: no proposal has this id.
            StoreUnavailableError: the store cannot be reached.
        """
        return await self._book.one(proposal_id)

    @overload
    async def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = ...,
        expires_in: float | timedelta | None = ...,
        lifetime: float = ...,
        actor: Actor | None = ...,
        dry_run: Literal[False] = ...,
    ) -> Proposal: ...
    @overload
    async def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = ...,
        expires_in: float | timedelta | None = ...,
        lifetime: float = ...,
        actor: Actor | None = ...,
        dry_run: Literal[True],
    ) -> Preview: ...
    @overload
    async def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = ...,
        expires_in: float | timedelta | None = ...,
        lifetime: float = ...,
        actor: Actor | None = ...,
        dry_run: bool,
    ) -> Proposal | Preview: ...
    async def propose(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str,
        by: str | None = None,
        expires_in: float | timedelta | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Proposal | Preview:
        """Propose path -> value ``changes`` for other admins to approve; the proposer counts as the first, if an admin.

        Operators may propose too (a loosening then needs every approval from
        admins). A proposal that already has the approvals its change needs is
        applied at once and returned applied: a change that only tightens, or one
        an admin proposes while ``change_control.approvals_required`` is 1.

        Args:
            changes: path -> value, as :meth:`update` takes them.
            reason: why; recorded in history when applied.
            by: the proposer, when no ``actor`` is given (with the store's own role).
            expires_in: a lifetime for the change once applied (seconds or a
                timedelta, counted from the approval that applies it), or None
                for a change for good; it needs the same approvals as without one.
            lifetime: seconds the proposal waits for its approvals (24 hours by default).
            actor: who proposes, with which role.
            dry_run: write nothing; return what applying the change now would do.

        Returns:
            The proposal, pending or applied; with ``dry_run``, the preview.

        Raises:
            UnknownPathError, PolicyValidationError: the change is invalid, changes
                nothing, or the reason, author or lifetime is unfit.
            PermissionDeniedError: a viewer proposes.
            StoreUnavailableError: the store cannot be reached; nothing was stored.
        """
        writer = self._proposal_writer
        who = self._who(by, actor)
        who.require(Role.OPERATOR, "proposing a change")
        patch = dict(changes)
        previewed = dry_run or is_previewing()
        # A dry run needs no reason yet (the dashboard asks for one after the preview).
        _refuse_unfit_proposal(reason if reason or not previewed else "-", who.name, expires_in, lifetime)
        if previewed:
            preview = await writer.preview(
                lambda b: apply_patch(b, patch), "this change", None, None, who, keys=list(patch), expires_in=expires_in
            )
            if not dry_run:
                raise Previewed(preview)
            return preview
        base = await writer.latest()
        now = writer.now()
        result = stamp_emergency(base, apply_patch(base, patch), now, who.name)
        if unchanged(base, result):
            message = f"change nothing at version {base.version}: there is nothing to propose"
            raise PolicyValidationError([FieldError("changes", message)])
        stored = diff_policies(base, result)
        record: dict[str, Any] = {
            "changes": patch,
            "base_version": base.version,
            "proposed_by": who.name,
            "proposer_role": who.role.value,
            "reason": reason,
            "created_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=lifetime)).isoformat(),
            "raises_risk": risk_increases(base, result),
            "paths": list(touched_paths(patch, stored)),
            "diff": [c.to_dict() for c in stored],
            "expires_in": None if expires_in is None else lifetime_seconds(expires_in),
        }
        proposal_id = await self._book.add(record)
        steps = []
        if who.role is Role.ADMIN:
            steps.append(await self._book.approve(proposal_id, who))
        proposal = settle(
            record | {"id": proposal_id},
            steps,
            [],
            current_version=base.version,
            approvals_required=approvals_needed(base, record["raises_risk"]),
            now=now,
        )
        await self._book.announce(proposal, "proposed", who.name, reason)
        if proposal.approvals_missing == 0:
            return await self._book.apply(proposal, who)
        return proposal

    @overload
    async def approve(
        self, proposal_id: str, *, by: str | None = ..., actor: Actor | None = ..., dry_run: Literal[False] = ...
    ) -> Proposal: ...
    @overload
    async def approve(
        self, proposal_id: str, *, by: str | None = ..., actor: Actor | None = ..., dry_run: Literal[True]
    ) -> Preview: ...
    @overload
    async def approve(
        self, proposal_id: str, *, by: str | None = ..., actor: Actor | None = ..., dry_run: bool
    ) -> Proposal | Preview: ...
    async def approve(
        self, proposal_id: str, *, by: str | None = None, actor: Actor | None = None, dry_run: bool = False
    ) -> Proposal | Preview:
        """Approve a pending proposal as an admin; the approval that brings enough applies it, as one version.

        Args:
            proposal_id: the proposal.
            by: the approver, when no ``actor`` is given (with the store's own role).
            actor: who approves, with which role.
            dry_run: record nothing; return what applying it with this approval would do.

        Returns:
            The proposal: applied when this approval was the last one needed, else
            pending with one more approval; with ``dry_run``, the preview.

        Raises:
            PermissionDeniedError: the approver is no admin.
            UnknownProposalError: no proposal has this id.
            ProposalRefusedError: the approver approved it already, or it is not
                pending (applied, rejected, expired or stale).
            PolicyValidationError: the change is no longer valid on the newest version.
            StoreUnavailableError: the store cannot be reached.
        """
        writer = self._proposal_writer
        who = self._who(by, actor)
        who.require(Role.ADMIN, "approving a proposal")
        proposal = await self.proposal(proposal_id)
        _refuse_closed(proposal)
        if who.name in proposal.approved_by:
            raise ProposalRefusedError(proposal.id, proposal.status.value, f"{who.name!r} approved it already")
        approvers = (*proposal.approved_by, who.name)
        patch = dict(proposal.changes)
        if dry_run or is_previewing():
            preview = await writer.preview(
                lambda b: apply_patch(b, patch),
                action(proposal),
                None,
                None,
                who,
                keys=list(patch),
                expires_in=proposal.expires_in,
                approvals=len(approvers),
            )
            if not dry_run:
                raise Previewed(preview)
            return preview
        apply_patch(await writer.latest(), patch)  # still valid: else the approval is not recorded
        await self._book.approve(proposal.id, who)
        pending = await self.proposal(proposal.id)
        await self._book.announce(pending, "approved", who.name, proposal.reason)
        if pending.status is not ProposalStatus.PENDING or pending.approvals_missing > 0:
            return pending
        try:
            return await self._book.apply(pending, who)
        except (PolicyValidationError, PermissionDeniedError, StoreUnavailableError):
            # Not applied: the approval is withdrawn so that its admin may approve again once it can apply.
            await self._book.withdraw(proposal.id, who)
            raise

    async def reject(
        self,
        proposal_id: str,
        *,
        by: str | None = None,
        reason: str,
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> Proposal:
        """Reject a pending proposal: any admin, or its proposer (who withdraws it).

        Args:
            proposal_id: the proposal.
            by: who rejects, when no ``actor`` is given (with the store's own role).
            reason: why; kept with the proposal.
            actor: who rejects, with which role.
            dry_run: record nothing; return the proposal as the rejection would leave it.

        Returns:
            The proposal, rejected.

        Raises:
            PermissionDeniedError: neither an admin nor the proposer.
            UnknownProposalError: no proposal has this id.
            ProposalRefusedError: it is not pending, or an approver is applying it.
            PolicyValidationError: an empty or unfit reason.
            StoreUnavailableError: the store cannot be reached.
        """
        who = self._who(by, actor)
        who.require(Role.OPERATOR, "rejecting a proposal")
        if errors := record_errors(reason, who.name):
            raise PolicyValidationError(errors)
        proposal = await self.proposal(proposal_id)
        if who.role is not Role.ADMIN and who.name != proposal.proposed_by:
            raise PermissionDeniedError(who.name, who.role.value, Role.ADMIN.value, "rejecting another's proposal")
        _refuse_closed(proposal)
        if dry_run or is_previewing():
            return dataclasses.replace(
                proposal, status=ProposalStatus.REJECTED, decided_by=who.name, decision_reason=reason
            )
        if not await self._book.reject(proposal, who, reason):
            current = await self.proposal(proposal.id)
            _refuse_closed(current)
            raise ProposalRefusedError(current.id, current.status.value, "an approver is applying it")
        rejected = await self.proposal(proposal.id)
        await self._book.announce(rejected, "rejected", who.name, reason)
        return rejected

    def _who(self, by: str | None, actor: Actor | None) -> Actor:
        own = self._proposal_writer.actor
        if actor is not None:
            return actor
        return Actor(by, own.role) if by else own


def _refuse_closed(proposal: Proposal) -> None:
    """Refuse a step on a proposal that is not pending."""
    if proposal.status is not ProposalStatus.PENDING:
        raise ProposalRefusedError(proposal.id, proposal.status.value, CLOSED[proposal.status])


def _refuse_unfit_proposal(reason: Any, author: Any, expires_in: Any, lifetime: Any) -> None:
    """Refuse a proposal whose record is unfit, before anything is read; every failure is listed."""
    errors = record_errors(reason, author)
    if expires_in is not None:
        try:
            lifetime_seconds(expires_in)
        except PolicyValidationError as exc:
            errors += exc.errors
    seconds = None if isinstance(lifetime, bool) else finite_float(lifetime)
    if seconds is None or math.isnan(seconds) or not 0 < seconds <= _MAX_LIFETIME:
        message = f"must be a number of seconds above 0 and at most {_MAX_LIFETIME:g} (got {short_repr(lifetime)})"
        errors.append(FieldError("lifetime", message))
    if errors:
        raise PolicyValidationError(errors)
