"""Who is calling: bearer tokens to an :class:`~policystore.Actor`, and the least role a route needs.

Routes declare the role they need with ``Depends(require(Role.OPERATOR))``.
The role a change needs beyond that (an admin to raise risk or turn the kill
switch off) is the store's decision: the actor is passed to every write, and
the store raises :class:`~policystore.PermissionDeniedError` itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from policystore.model.roles import Actor, Role
from policystore.server.errors import AuthenticationError
from policystore.server.tokens import TokenRecord, TokenStore

__all__ = ["authenticate", "bearer", "require", "token_from_header"]

#: The OpenAPI security scheme; errors are ours (401 with our body), not FastAPI's.
bearer = HTTPBearer(auto_error=False, description="An API token made with 'policystore token create'.")


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


def require(role: Role) -> Callable[..., Awaitable[Actor]]:
    """Return a FastAPI dependency that admits callers with at least ``role``.

    Args:
        role: the least role the route needs.

    Returns:
        A dependency that yields the caller's :class:`Actor`.
    """

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Actor:
        tokens: TokenStore = request.app.state.tokens
        actor = await authenticate(tokens, credentials.credentials if credentials else None)
        actor.require(role, f"{request.method} {request.url.path}")
        return actor

    return dependency
