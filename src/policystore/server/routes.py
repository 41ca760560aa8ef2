"""The ``/v1`` JSON routes: reads for viewers, writes for operators and admins, the audit trail.

Every write passes the caller's :class:`~policystore.Actor` (the token's name
and role) to the store, which records the name as the author and refuses a
change the role may not make. Request bodies reject unknown fields, so an
author cannot be smuggled in (see :mod:`policystore.server.request_bodies`). The
mode, patch and kill-switch writes take ``"expires_in"`` (seconds): the change
lasts that long. A write whose body says ``"dry_run": true`` writes nothing and
answers a :class:`~policystore.server.response_bodies.PreviewResponse`: the store's own
dry run of the same write, with the server's decision log decided again under
it when one is configured (see :mod:`policystore.server.previews`). The
proposal routes are in :mod:`policystore.server.proposal_routes`, and
``GET /v1/values/{path}``, the busiest read, in :mod:`policystore.server.values`.
A write whose body says ``"wait": SECONDS`` answers once the fleet has applied
it, or 202 when the wait ran out first (see :mod:`policystore.server.fleet`).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request, Response

from policystore.errors import (
    AuthenticationError,
    ContentTypeError,
    FieldError,
    MalformedRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PolicyValidationError,
    StoreUnavailableError,
    UnknownPathError,
    VersionConflictError,
)
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.model.trading_view import state_path
from policystore.server.auth import require
from policystore.server.errors import error_responses
from policystore.server.fleet import WAIT_RESPONSE, written
from policystore.server.health import ServerMetrics
from policystore.server.previews import effective_values, preview_response
from policystore.server.request_bodies import (
    MAX_INTEGER,
    EmergencyRequest,
    ModeRequest,
    PatchRequest,
    RollbackRequest,
    TradingRequest,
)
from policystore.server.response_bodies import (
    ChangeModel,
    DiffResponse,
    ErrorBody,
    HistoryEntryModel,
    HistoryResponse,
    PathsResponse,
    PolicyResponse,
    PreviewResponse,
    WrittenResponse,
)
from policystore.store.store import PolicyStore

__all__ = ["ERROR_RESPONSES", "WRITE_ERRORS", "ErrorBody", "Viewer", "router"]


#: Errors every authenticated route may answer with.
ERROR_RESPONSES: Final = error_responses(AuthenticationError, PermissionDeniedError, PolicyValidationError)
#: Errors a write may answer with: the token's, and those of its body, its paths, its version and the store.
WRITE_ERRORS: Final = error_responses(
    AuthenticationError,
    PermissionDeniedError,
    PolicyValidationError,
    MalformedRequestError,
    ContentTypeError,
    PayloadTooLargeError,
    UnknownPathError,
    VersionConflictError,
    StoreUnavailableError,
)
#: What a write that may wait for the fleet answers besides: the 202 of a wait that ran out.
_WAITING_WRITE_ERRORS: Final = WAIT_RESPONSE | WRITE_ERRORS
#: Errors a read of the audit trail may answer with: it reads the live store.
_AUDIT_ERRORS: Final = error_responses(
    AuthenticationError, PermissionDeniedError, PolicyValidationError, StoreUnavailableError
)

router = APIRouter(prefix="/v1", tags=["policy"])

Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
#: What a write route answers: the new policy (with the fleet's confirmation after a wait), or with
#: "dry_run": true what the write would do.
WriteResponse = WrittenResponse | PreviewResponse


def _store(request: Request) -> PolicyStore:
    store: PolicyStore = request.app.state.store
    return store


def _metrics(request: Request) -> ServerMetrics:
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


def _policy_response(store: PolicyStore, policy: Policy | None = None) -> PolicyResponse:
    shown = policy or store.snapshot()
    return PolicyResponse(
        version=shown.version,
        source=store.source.value,
        stale=store.stale,
        policy=shown.document(),
        effective=effective_values(shown),
    )


def _reason(reason: str | None) -> str:
    """Return the reason of a write that is not a dry run, which must have one.

    Raises:
        PolicyValidationError: none was given, reported against the field as the body's other fields are.
    """
    if reason is None:
        raise PolicyValidationError([FieldError("body.reason", "Field required: say why the policy changes")])
    return reason


@router.get("/policy", summary="The whole policy", responses=ERROR_RESPONSES)
async def get_policy(request: Request, _actor: Viewer) -> PolicyResponse:
    """Return the whole policy with its version, from this server's snapshot."""
    _metrics(request).count_read("policy")
    return _policy_response(_store(request))


@router.get("/paths", summary="Every valid dot path", responses=ERROR_RESPONSES)
async def get_paths(request: Request, _actor: Viewer) -> PathsResponse:
    """Return every readable dot path, sorted."""
    _metrics(request).count_read("paths")
    return PathsResponse(paths=_store(request).paths())


@router.post("/mode", summary="Switch the active mode", responses=_WAITING_WRITE_ERRORS)
async def post_mode(request: Request, response: Response, body: ModeRequest, actor: Operator) -> WriteResponse:
    """Switch the active mode; a switch to a looser mode needs an admin (and the approvals in force)."""
    store = _store(request)
    if body.dry_run:
        preview = await store.switch_mode(
            body.mode,
            reason="",
            expected_version=body.expected_version,
            actor=actor,
            expires_in=body.expires_in,
            dry_run=True,
        )
        return await preview_response(request, preview, decisions=body.decisions)
    policy = await store.switch_mode(
        body.mode,
        reason=_reason(body.reason),
        expected_version=body.expected_version,
        actor=actor,
        expires_in=body.expires_in,
    )
    _metrics(request).writes.labels("mode").inc()
    return await written(request, response, _policy_response(store, policy), body.wait)


@router.patch("/policy", summary="Change values by path", responses=_WAITING_WRITE_ERRORS)
async def patch_policy(request: Request, response: Response, body: PatchRequest, actor: Operator) -> WriteResponse:
    """Apply path -> value changes as one version; a change that raises risk needs an admin (and the approvals)."""
    store = _store(request)
    if body.dry_run:
        preview = await store.update(
            body.changes,
            reason="",
            expected_version=body.expected_version,
            actor=actor,
            expires_in=body.expires_in,
            dry_run=True,
        )
        return await preview_response(request, preview, decisions=body.decisions)
    policy = await store.update(
        body.changes,
        reason=_reason(body.reason),
        expected_version=body.expected_version,
        actor=actor,
        expires_in=body.expires_in,
    )
    _metrics(request).writes.labels("update").inc()
    return await written(request, response, _policy_response(store, policy), body.wait)


@router.post("/emergency", summary="Turn the kill switch on or off", responses=_WAITING_WRITE_ERRORS)
async def post_emergency(
    request: Request, response: Response, body: EmergencyRequest, actor: Operator
) -> WriteResponse:
    """Turn the kill switch on (any operator) or off (admins only)."""
    store = _store(request)
    if body.dry_run:
        preview = await store.set_emergency_mode(
            body.active,
            reason=body.reason or "",
            expected_version=body.expected_version,
            actor=actor,
            expires_in=body.expires_in,
            dry_run=True,
        )
        return await preview_response(request, preview, decisions=body.decisions)
    policy = await store.set_emergency_mode(
        body.active,
        reason=_reason(body.reason),
        expected_version=body.expected_version,
        actor=actor,
        expires_in=body.expires_in,
    )
    _metrics(request).writes.labels("emergency").inc()
    return await written(request, response, _policy_response(store, policy), body.wait)


@router.get("/history", summary="The audit trail, newest first", responses=_AUDIT_ERRORS)
async def get_history(
    request: Request,
    _actor: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many entries.")] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_INTEGER, description="Only entries older than this version.")
    ] = None,
) -> HistoryResponse:
    """Return up to ``limit`` history entries, newest first."""
    _metrics(request).count_read("history")
    entries = await _store(request).history(limit, before)
    return HistoryResponse(entries=[HistoryEntryModel.of(e) for e in entries])


@router.get("/diff", summary="What changed between two versions", responses=_AUDIT_ERRORS)
async def get_diff(
    request: Request,
    _actor: Viewer,
    v1: Annotated[int, Query(ge=1, le=MAX_INTEGER, description="The older version.")],
    v2: Annotated[int | None, Query(ge=1, le=MAX_INTEGER, description="The newer version (default: current).")] = None,
) -> DiffResponse:
    """Return the stored fields that differ from ``v1`` to ``v2``."""
    _metrics(request).count_read("diff")
    store = _store(request)
    changes = await store.diff(v1, v2)
    return DiffResponse(
        v1=v1, v2=v2 if v2 is not None else store.snapshot().version, changes=[ChangeModel.of(c) for c in changes]
    )


@router.post("/rollback", summary="Roll back to an earlier version", responses=_WAITING_WRITE_ERRORS)
async def post_rollback(request: Request, response: Response, body: RollbackRequest, actor: Admin) -> WriteResponse:
    """Write a new version equal in content to ``version`` (admins only)."""
    store = _store(request)
    if body.dry_run:
        preview = await store.rollback(
            body.version, reason="", expected_version=body.expected_version, actor=actor, dry_run=True
        )
        return await preview_response(request, preview, decisions=body.decisions)
    policy = await store.rollback(
        body.version, reason=_reason(body.reason), expected_version=body.expected_version, actor=actor
    )
    _metrics(request).writes.labels("rollback").inc()
    return await written(request, response, _policy_response(store, policy), body.wait)


@router.post(
    "/trading",
    summary="Set a trading state: firm-wide, a strategy's or an instrument's",
    responses=_WAITING_WRITE_ERRORS,
)
async def post_trading(request: Request, response: Response, body: TradingRequest, actor: Operator) -> WriteResponse:
    """Set ``trading.state``, ``strategies.<name>.state`` or ``instruments.<SYMBOL>.state`` to ``state``.

    Toward ``halted`` is tightening (operators); toward ``active`` loosening (admins only). A strategy the policy
    does not hold, a symbol that breaks the symbol pattern or both a strategy and a symbol answer 422.
    """
    store = _store(request)
    path = state_path(store.snapshot(), strategy=body.strategy, symbol=body.symbol)
    if body.dry_run:
        preview = await store.update(
            {path: body.state}, reason="", expected_version=body.expected_version, actor=actor, dry_run=True
        )
        return await preview_response(request, preview, decisions=body.decisions)
    policy = await store.update(
        {path: body.state}, reason=_reason(body.reason), expected_version=body.expected_version, actor=actor
    )
    _metrics(request).writes.labels("trading").inc()
    return await written(request, response, _policy_response(store, policy), body.wait)
