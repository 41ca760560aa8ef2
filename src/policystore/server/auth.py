"""Who is calling: bearer tokens to an :class:`~policystore.Actor`, and the least role a route needs.

Routes declare the role they need with ``Depends(require(Role.OPERATOR))``.
The role a change needs beyond that (an admin to raise risk or turn the kill
switch off) is the store's decision: the actor is passed to every write, and
the store raises :class:`~policystore.PermissionDeniedError` itself.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security import HTTPBearer
from fastapi.security.base import SecurityBase

from policystore.model.roles import Actor, Role
from policystore.server.errors import AuthenticationError
from policystore.server.tokens import TokenRecord, TokenStore

__all__ = ["RoleRequirement", "authenticate", "bearer", "require", "token_from_header"]

_DESCRIPTION = "An API token made with 'policystore token create'."
#: The OpenAPI security scheme; errors are ours (401 with our body), not FastAPI's.
bearer = HTTPBearer(auto_error=False, description=_DESCRIPTION)


def token_from_header(value: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header value, or None.

    Args:
        value: the header's value, or None when absent.

    Returns:
        The token, or None if the header is absent or of another scheme.
    """
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(tokens: TokenStore, secret: str | None) -> Actor:
    """Return the actor a token stands for.

    Args:
        tokens: the token table.
        secret: the presented token, or None.

    Returns:
        ``Actor(token name, token role)``.

    Raises:
        AuthenticationError: no token, or an unknown or revoked one.
        StoreUnavailableError: the token table cannot be loaded.
    """
    if not secret:
        raise AuthenticationError("no bearer token was sent")
    record: TokenRecord | None = await tokens.authenticate(secret)
    if record is None:
        raise AuthenticationError("the token is unknown or revoked")
    return Actor(record.name, record.role)


class RoleRequirement(SecurityBase):
    """A FastAPI dependency admitting callers whose bearer token has at least ``role``; it yields their Actor.

    It is a security scheme itself (the same ``HTTPBearer`` scheme as
    :data:`bearer` in the OpenAPI document), rather than a dependency on
    :data:`bearer`: FastAPI resolves each level of dependencies anew for every
    request, and this check runs on every read.

    Args:
        role: the least role the route needs.
    """

    def __init__(self, role: Role) -> None:
        self.role = role
        self.model = HTTPBearerModel(description=_DESCRIPTION)
        self.scheme_name = bearer.scheme_name

    async def __call__(self, request: Request) -> Actor:
        """Return the caller's actor.

        Raises:
            AuthenticationError: no token, or an unknown or revoked one.
            PermissionDeniedError: the token's role is below :attr:`role`.
            StoreUnavailableError: the token table cannot be loaded.
        """
        tokens: TokenStore = request.app.state.tokens
        actor = await authenticate(tokens, token_from_header(request.headers.get("authorization")))
        if actor.role.rank < self.role.rank:  # the action is named only for a refusal
            actor.require(self.role, f"{request.method} {request.url.path}")
        return actor


def require(role: Role) -> RoleRequirement:
    """Return a FastAPI dependency that admits callers with at least ``role``.

    Args:
        role: the least role the route needs.

    Returns:
        A dependency that yields the caller's :class:`Actor`.
    """
    return RoleRequirement(role)
