"""The ``/v1`` JSON routes: reads for viewers, writes for operators and admins, the audit trail.

Every write passes the caller's :class:`~policystore.Actor` (the token's name
and role) to the store, which records the name as the author and refuses a
change the role may not make. Request bodies reject unknown fields, so an
author cannot be smuggled in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.server.auth import require
from policystore.server.health import ServerMetrics
from policystore.store.store import PolicyStore

__all__ = ["ERROR_RESPONSES", "ErrorBody", "router"]


class ErrorBody(BaseModel):
    """Every error's body: the error class, one sentence, and the error's facts."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="The error class, such as VersionConflictError.")
    detail: str = Field(description="What was wrong, in one sentence.")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Malformed request.",
        401: "No token, or an unknown one.",
        403: "The token's role is too low.",
        404: "Unknown policy path.",
        409: "Version conflict; the body has current_version.",
        413: "Request body too large.",
        422: "Invalid input; the body lists every failed field.",
        503: "The store cannot be reached; nothing changed.",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}


#: Errors every authenticated route may answer with.
ERROR_RESPONSES: Final = _errors(401, 403, 422)
_WRITE_ERRORS: Final = _errors(400, 401, 403, 404, 409, 413, 422, 503)

router = APIRouter(prefix="/v1", tags=["policy"])

Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Admin = Annotated[Actor, Depends(require(Role.ADMIN))]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="Why; recorded in history.")]
ExpectedVersion = Annotated[
    int | None,
    Field(default=None, ge=1, description="Write only if the store is at this version (else 409)."),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModeRequest(_Body):
    """Switch the active mode."""

    mode: str = Field(min_length=1, max_length=64, description="The mode to make active, such as DEFENSIVE.")
    reason: Reason
    expected_version: ExpectedVersion = None


class PatchRequest(_Body):
    """Change values by path, as one new version, all or nothing."""

    changes: dict[str, Any] = Field(description="Path -> new value, such as {'modes.NORMAL.max_leverage': 4}.")
    reason: Reason
    expected_version: ExpectedVersion = None


class EmergencyRequest(_Body):
    """Turn the kill switch on (operators) or off (admins)."""

    active: bool = Field(description="True stops all new trades.")
    reason: Reason
    expected_version: ExpectedVersion = None


class RollbackRequest(_Body):
    """Write a new version equal in content to an earlier one."""

    version: int = Field(ge=1, description="The version to return to.")
    reason: Reason
    expected_version: ExpectedVersion = None


class PolicyResponse(BaseModel):
    """The whole policy with its version and where it was read from."""

    version: int
    source: str = Field(description="store, last_known_good, environment or default.")
    stale: bool = Field(description="True when the live store could not be read.")
    policy: dict[str, Any] = Field(description="The policy document.")


class ValueResponse(BaseModel):
    """One value with its source and version."""

    path: str
    value: Any
    source: str
    version: int
    stale: bool
    detail: str


class PathsResponse(BaseModel):
    """Every valid dot path."""

    paths: list[str]


class ChangeModel(BaseModel):
    """One field before and after a write."""

    path: str
    old: Any
    new: Any

    @classmethod
    def of(cls, change: FieldChange) -> ChangeModel:
        """Build from a :class:`FieldChange`."""
        return cls(path=change.path, old=change.old, new=change.new)


class HistoryEntryModel(BaseModel):
    """One write of the audit trail."""

    version: int
    at: datetime
    by: str = Field(description="The author: the name of the token that made the change.")
    reason: str
    changes: list[ChangeModel]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryEntryModel:
        """Build from a :class:`HistoryEntry`."""
        return cls(
            version=entry.version,
            at=entry.at,
            by=entry.by,
            reason=entry.reason,
            changes=[ChangeModel.of(c) for c in entry.changes],
        )


class HistoryResponse(BaseModel):
    """History entries, newest first."""

    entries: list[HistoryEntryModel]


class DiffResponse(BaseModel):
    """Fields that differ between two versions."""

    v1: int
    v2: int
    changes: list[ChangeModel]


def _store(request: Request) -> PolicyStore:
    store: PolicyStore = request.app.state.store
    return store


def _metrics(request: Request) -> ServerMetrics:
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


def _policy_response(store: PolicyStore, policy: Policy | None = None) -> PolicyResponse:
    shown = policy or store.snapshot()
    return PolicyResponse(version=shown.version, source=store.source.value, stale=store.stale, policy=shown.document())


@router.get("/policy", summary="The whole policy", responses=ERROR_RESPONSES)
async def get_policy(request: Request, _actor: Viewer) -> PolicyResponse:
    """Return the whole policy with its version, from this server's snapshot."""
    _metrics(request).reads.labels("policy").inc()
    return _policy_response(_store(request))


@router.get("/values/{path}", summary="One value by dot path", responses=_errors(401, 403, 404, 422))
async def get_value(
    request: Request,
    _actor: Viewer,
    path: Annotated[str, Path(description="A dot path such as risk.max_leverage; see /v1/paths.")],
) -> ValueResponse:
    """Return the value at ``path`` with its source, version and staleness."""
    _metrics(request).reads.labels("value").inc()
    explained = _store(request).explain(path)
    return ValueResponse(**explained.to_dict())


@router.get("/paths", summary="Every valid dot path", responses=ERROR_RESPONSES)
async def get_paths(request: Request, _actor: Viewer) -> PathsResponse:
    """Return every readable dot path, sorted."""
    _metrics(request).reads.labels("paths").inc()
    return PathsResponse(paths=_store(request).paths())


@router.post("/mode", summary="Switch the active mode", responses=_WRITE_ERRORS)
async def post_mode(request: Request, body: ModeRequest, actor: Operator) -> PolicyResponse:
    """Switch the active mode; a switch to a looser mode needs an admin."""
    store = _store(request)
    policy = await store.switch_mode(body.mode, reason=body.reason, expected_version=body.expected_version, actor=actor)
    _metrics(request).writes.labels("mode").inc()
    return _policy_response(store, policy)


@router.patch("/policy", summary="Change values by path", responses=_WRITE_ERRORS)
async def patch_policy(request: Request, body: PatchRequest, actor: Operator) -> PolicyResponse:
    """Apply path -> value changes as one version; a change that raises risk needs an admin."""
    store = _store(request)
    policy = await store.update(body.changes, reason=body.reason, expected_version=body.expected_version, actor=actor)
    _metrics(request).writes.labels("update").inc()
    return _policy_response(store, policy)


@router.post("/emergency", summary="Turn the kill switch on or off", responses=_WRITE_ERRORS)
async def post_emergency(request: Request, body: EmergencyRequest, actor: Operator) -> PolicyResponse:
    """Turn the kill switch on (any operator) or off (admins only)."""
    store = _store(request)
    policy = await store.set_emergency_mode(
        body.active, reason=body.reason, expected_version=body.expected_version, actor=actor
    )
    _metrics(request).writes.labels("emergency").inc()
    return _policy_response(store, policy)


@router.get("/history", summary="The audit trail, newest first", responses=_errors(401, 403, 422, 503))
async def get_history(
    request: Request,
    _actor: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many entries.")] = 50,
    before: Annotated[int | None, Query(ge=1, description="Only entries older than this version.")] = None,
) -> HistoryResponse:
    """Return up to ``limit`` history entries, newest first."""
    _metrics(request).reads.labels("history").inc()
    entries = await _store(request).history(limit, before)
    return HistoryResponse(entries=[HistoryEntryModel.of(e) for e in entries])


@router.get("/diff", summary="What changed between two versions", responses=_errors(401, 403, 422, 503))
async def get_diff(
    request: Request,
    _actor: Viewer,
    v1: Annotated[int, Query(ge=1, le=2**53, description="The older version.")],
    v2: Annotated[int | None, Query(ge=1, le=2**53, description="The newer version (default: current).")] = None,
) -> DiffResponse:
    """Return the stored fields that differ from ``v1`` to ``v2``."""
    _metrics(request).reads.labels("diff").inc()
    store = _store(request)
    changes = await store.diff(v1, v2)
    return DiffResponse(
        v1=v1, v2=v2 if v2 is not None else store.snapshot().version, changes=[ChangeModel.of(c) for c in changes]
    )


@router.post("/rollback", summary="Roll back to an earlier version", responses=_WRITE_ERRORS)
async def post_rollback(request: Request, body: RollbackRequest, actor: Admin) -> PolicyResponse:
    """Write a new version equal in content to ``version`` (admins only)."""
    store = _store(request)
    policy = await store.rollback(body.version, reason=body.reason, expected_version=body.expected_version, actor=actor)
    _metrics(request).writes.labels("rollback").inc()
    return _policy_response(store, policy)
