"""The fleet over HTTP: ``GET /v1/fleet``, and the wait a write body may ask for with ``"wait": SECONDS``.

A write route makes its write, then hands its answer to :func:`written`: with a
wait it waits for every live member of the fleet to apply the write's version.
When one had not by the time the wait ran out the answer is 202
(:class:`~policystore.errors.FleetIncompleteError`'s status: the write was made,
but not yet everywhere), still carrying the write's result, with the members
that had not applied it under ``fleet.missing``. The server is a member of the
fleet itself: its store follows changes.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from policystore.errors import (
    AuthenticationError,
    FleetIncompleteError,
    PermissionDeniedError,
    PolicyValidationError,
    StoreUnavailableError,
)
from policystore.model.fleet import FleetAck, FleetMember
from policystore.model.roles import Actor, Role
from policystore.server.auth import require
from policystore.server.errors import error_responses
from policystore.server.health import ServerMetrics, count_members
from policystore.server.response_bodies import (
    FleetAckModel,
    FleetMemberModel,
    FleetResponse,
    PolicyResponse,
    WrittenResponse,
)
from policystore.store.store import PolicyStore

__all__ = ["WAIT_RESPONSE", "confirmed", "router", "wait_response", "written"]


def wait_response(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 202 a write with a wait may answer with ``model`` as its body, for the OpenAPI description."""
    return {
        FleetIncompleteError.http_status: {
            "model": model,
            "description": (
                f"{FleetIncompleteError.title[:1].upper()}{FleetIncompleteError.title[1:]} "
                f"({FleetIncompleteError.__name__}): the write was made, but a live member of the fleet had not "
                "applied it when the body's wait ran out; fleet.missing names them."
            ),
        }
    }


#: The 202 a write route with a wait may answer.
WAIT_RESPONSE: Final = wait_response(WrittenResponse)

router = APIRouter(prefix="/v1", tags=["fleet"])
Viewer = Annotated[Actor, Depends(require(Role.VIEWER))]


def _member(member: FleetMember) -> FleetMemberModel:
    return FleetMemberModel.model_validate(member.to_dict())


def _ack(ack: FleetAck, unread: str | None = None) -> FleetAckModel:
    return FleetAckModel.model_validate({**ack.to_dict(), "unread": unread})


async def written(request: Request, response: Response, answer: PolicyResponse, wait: float | None) -> WrittenResponse:
    """Return a write's answer, after waiting ``wait`` seconds at most for the fleet to apply its version.

    Args:
        request: the write's request.
        response: the response, whose status becomes 202 when the fleet did not confirm in time.
        answer: the write's result.
        wait: the body's ``wait``; None for no wait.

    Returns:
        The result, with ``fleet`` after a wait.
    """
    if wait is None:
        return WrittenResponse(**answer.model_dump())
    return WrittenResponse(**answer.model_dump(), fleet=await confirmed(request, response, answer.version, wait))


async def confirmed(request: Request, response: Response, version: int, wait: float) -> FleetAckModel:
    """Wait ``wait`` seconds at most for the fleet to apply ``version``; make ``response`` a 202 when it did not.

    Args:
        request: the write's request.
        response: the response, whose status becomes 202 when the fleet did not confirm in time.
        version: the version the write made.
        wait: the body's ``wait``.

    Returns:
        How far the fleet got.
    """
    store: PolicyStore = request.app.state.store
    metrics: ServerMetrics = request.app.state.metrics
    unread = None
    try:
        ack = await store.wait_for_fleet(version, timeout=wait)
    except StoreUnavailableError as exc:
        # The write was made; the fleet could not be read to confirm it. Said as an unconfirmed wait.
        ack, unread = FleetAck(version, complete=False, acked=(), missing=(), waited=wait), str(exc)
    metrics.fleet_waits.labels("complete" if ack.complete else "incomplete").inc()
    if not ack.complete:
        response.status_code = FleetIncompleteError.http_status
    return _ack(ack, unread)


@router.get(
    "/fleet",
    summary="Every process that follows the store",
    responses=error_responses(AuthenticationError, PermissionDeniedError, PolicyValidationError, StoreUnavailableError),
)
async def get_fleet(request: Request, _actor: Viewer) -> FleetResponse:
    """Return the members of the store's fleet with the version each has applied and when each was last heard."""
    store: PolicyStore = request.app.state.store
    metrics: ServerMetrics = request.app.state.metrics
    metrics.count_read("fleet")
    members = await store.fleet()
    version = await store.backend.current_version()
    count = count_members(members, version)
    metrics.set_fleet(count)
    return FleetResponse(
        version=version,
        members=[_member(m) for m in members],
        live=count.live,
        lost=count.lost,
        behind=count.behind,
    )
