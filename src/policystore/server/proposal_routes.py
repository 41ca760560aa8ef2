"""The ``/v1/proposals`` routes: propose, list, approve and reject changes that need more than one admin.

The caller's token is the actor: its name is the proposer, approver or
rejecter the store records, its role what the store checks (an operator may
propose and withdraw its own proposal; only admins approve, and any admin may
reject). ``"dry_run": true`` answers the preview of the change (for an
approval: of applying it with the caller's approval) and records nothing.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Request, Response

from policystore.errors import (
    AuthenticationError,
    FieldError,
    PermissionDeniedError,
    PolicyValidationError,
    ProposalRefusedError,
    StoreUnavailableError,
    UnknownProposalError,
)
from policystore.model.proposals import DEFAULT_LIFETIME
from policystore.model.roles import Actor, Role
from policystore.server.auth import require
from policystore.server.errors import error_responses
from policystore.server.fleet import confirmed, wait_response
from policystore.server.health import ServerMetrics
from policystore.server.previews import preview_response
from policystore.server.request_bodies import ProposeRequest, RejectRequest, ReviewRequest
from policystore.server.response_bodies import PreviewResponse, ProposalModel, ProposalsResponse
from policystore.server.routes import WRITE_ERRORS
from policystore.store.store import PolicyStore

__all__ = ["router"]

router = APIRouter(prefix="/v1/proposals", tags=["proposals"])

Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
ProposalId = Annotated[str, Path(min_length=1, max_length=64, description="The proposal's id.")]

#: Errors a step on one proposal may answer with: a write's, an unknown proposal, a refused step.
_STEP_ERRORS: Final = WRITE_ERRORS | error_responses(UnknownProposalError, ProposalRefusedError)
_LIST_ERRORS: Final = error_responses(
    AuthenticationError, PermissionDeniedError, PolicyValidationError, StoreUnavailableError
)
_ONE_ERRORS: Final = error_responses(
    AuthenticationError, PermissionDeniedError, PolicyValidationError, StoreUnavailableError, UnknownProposalError
)


def _store(request: Request) -> PolicyStore:
    store: PolicyStore = request.app.state.store
    return store


def _count(request: Request, label: str) -> None:
    metrics: ServerMetrics = request.app.state.metrics
    metrics.writes.labels(label).inc()


def _required(reason: str | None) -> str:
    """The reason of a step that is not a dry run, which must have one (reported as the body's other fields are)."""
    if reason is None:
        raise PolicyValidationError([FieldError("body.reason", "Field required: say why")])
    return reason


@router.post("", summary="Propose a change for other admins to approve", responses=WRITE_ERRORS)
async def post_proposal(request: Request, body: ProposeRequest, actor: Operator) -> ProposalModel | PreviewResponse:
    """Propose path -> value changes; the proposer counts as the first approval when an admin.

    A proposal that already has the approvals it needs (a change that only
    tightens, or an admin's while one approval is enough) is applied at once and
    answered applied.
    """
    store = _store(request)
    lifetime = DEFAULT_LIFETIME if body.lifetime is None else body.lifetime
    if body.dry_run:
        preview = await store.propose(
            body.changes, reason="", expires_in=body.expires_in, lifetime=lifetime, actor=actor, dry_run=True
        )
        return await preview_response(request, preview, decisions=body.decisions)
    proposal = await store.propose(
        body.changes, reason=_required(body.reason), expires_in=body.expires_in, lifetime=lifetime, actor=actor
    )
    _count(request, "propose")
    return ProposalModel.of(proposal)


@router.get("", summary="Every proposal, newest first", responses=_LIST_ERRORS)
async def get_proposals(request: Request, _actor: Viewer) -> ProposalsResponse:
    """Return proposals of every status, newest first, each with where it stands now."""
    metrics: ServerMetrics = request.app.state.metrics
    metrics.count_read("proposals")
    return ProposalsResponse(proposals=[ProposalModel.of(p) for p in await _store(request).proposals()])


@router.get("/{proposal_id}", summary="One proposal", responses=_ONE_ERRORS)
async def get_proposal(request: Request, _actor: Viewer, proposal_id: ProposalId) -> ProposalModel:
    """Return one proposal with where it stands now."""
    metrics: ServerMetrics = request.app.state.metrics
    metrics.count_read("proposals")
    return ProposalModel.of(await _store(request).proposal(proposal_id))


@router.post(
    "/{proposal_id}/approve", summary="Approve a proposal", responses=_STEP_ERRORS | wait_response(ProposalModel)
)
async def post_approve(
    request: Request, response: Response, actor: Admin, proposal_id: ProposalId, body: ReviewRequest | None = None
) -> ProposalModel | PreviewResponse:
    """Approve a pending proposal (admins); the approval that brings enough applies it as one version.

    Refused with 409 when this admin approved it already or it is not pending
    (applied, rejected, expired or stale), 404 when there is no such proposal.
    With ``"wait"``, an approval that applies it answers once the fleet has the
    version (``fleet``), or 202 naming the members that have not.
    """
    store = _store(request)
    if body is not None and body.dry_run:
        preview = await store.approve(proposal_id, actor=actor, dry_run=True)
        return await preview_response(request, preview, decisions=body.decisions)
    proposal = await store.approve(proposal_id, actor=actor)
    _count(request, "approve")
    answer = ProposalModel.of(proposal)
    if body is None or body.wait is None or proposal.applied_version is None:
        return answer  # an approval that applies nothing leaves no version for the fleet to apply
    return answer.model_copy(update={"fleet": await confirmed(request, response, proposal.applied_version, body.wait)})


@router.post("/{proposal_id}/reject", summary="Reject a proposal", responses=_STEP_ERRORS)
async def post_reject(request: Request, body: RejectRequest, actor: Operator, proposal_id: ProposalId) -> ProposalModel:
    """Reject a pending proposal: any admin, or the operator who proposed it (a withdrawal)."""
    store = _store(request)
    if body.dry_run:
        reason = body.reason or "(reason to be given)"
        return ProposalModel.of(await store.reject(proposal_id, reason=reason, actor=actor, dry_run=True))
    proposal = await store.reject(proposal_id, reason=_required(body.reason), actor=actor)
    _count(request, "reject")
    return ProposalModel.of(proposal)
