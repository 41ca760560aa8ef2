"""The one table from error class to HTTP status, and the JSON body every error answers with.

Every error body has the same shape::

    {"error": "<ErrorClass>", "detail": "<one sentence>", ...facts}

where the facts are the error's attributes (``path`` and ``suggestions``,
``errors``, ``current_version``, ``required_role``...), so clients branch on
data, not on the sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from policystore.errors import (
    PermissionDeniedError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    UnknownPathError,
    VersionConflictError,
)

__all__ = [
    "HTTP_STATUS",
    "AuthenticationError",
    "ContentTypeError",
    "InternalError",
    "MalformedRequestError",
    "PayloadTooLargeError",
    "StreamMessageError",
    "error_body",
    "refusal_reason",
    "status_for",
]


class AuthenticationError(PolicyStoreError):
    """Raised when a request carries no token, or one the server does not know (HTTP 401).

    Attributes:
        reason: why the token was refused, in a few words.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Authentication failed: {reason}; send 'Authorization: Bearer <token>'.")


class MalformedRequestError(PolicyStoreError):
    """Raised when a request body cannot be read as JSON at all (HTTP 400): bad syntax, or bytes that are not UTF-8.

    Attributes:
        reason: what the parser found wrong.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"The request body is not valid JSON: {reason}.")


class ContentTypeError(PolicyStoreError):
    """Raised when a request body is not labelled ``Content-Type: application/json`` (HTTP 400).

    The contract answers invalid input with 400 or 422, so this is a 400
    rather than a 415; the sentence names the header to send.

    Attributes:
        content_type: the Content-Type the request came with, or None if it had none.
    """

    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        got = f"it came as {content_type!r}" if content_type else "it came with no Content-Type"
        super().__init__(f"The request body must be a JSON object sent with 'Content-Type: application/json'; {got}.")


class PayloadTooLargeError(PolicyStoreError):
    """Raised when a request body is larger than the server accepts (HTTP 413).

    Attributes:
        limit: the largest body accepted, in bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")


class StreamMessageError(PolicyStoreError):
    """Raised when the change stream's first message is not ``{"token": "..."}`` (close code 1007).

    Attributes:
        received: what came instead, in a few words ("a binary frame", "not JSON"...).
    """

    def __init__(self, received: str) -> None:
        self.received = received
        super().__init__(
            'The stream\'s first message must be the JSON text {"token": "<API token>"} '
            f"(or connect with the header 'Authorization: Bearer <API token>'); it was {received}."
        )


class InternalError(PolicyStoreError):
    """What an unexpected failure of the server answers as (HTTP 500); the log has the traceback.

    Attributes:
        method: the request's method.
        path: the request's path.
        writes: whether the request could have changed the policy.
    """

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.writes = method.upper() not in {"GET", "HEAD", "OPTIONS"}
        outcome = (
            "; the change may or may not have been made, so read the policy back before repeating it"
            if self.writes
            else ""
        )
        super().__init__(f"The server failed unexpectedly while answering {method} {path} (see its log){outcome}.")


#: The one table from error class to HTTP status; the most specific class wins.
HTTP_STATUS: Final[Mapping[type[PolicyStoreError], int]] = {
    MalformedRequestError: 400,
    ContentTypeError: 400,
    StreamMessageError: 400,
    PolicyValidationError: 422,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    UnknownPathError: 404,
    VersionConflictError: 409,
    PayloadTooLargeError: 413,
    StoreUnavailableError: 503,
    InternalError: 500,
}

#: Refusal reasons the metrics count, by error class.
_REASONS: Final[Mapping[type[PolicyStoreError], str]] = {
    PolicyValidationError: "validation",
    UnknownPathError: "validation",
    PayloadTooLargeError: "validation",
    MalformedRequestError: "validation",
    ContentTypeError: "validation",
    StreamMessageError: "validation",
    AuthenticationError: "authentication",
    PermissionDeniedError: "permission",
    VersionConflictError: "conflict",
    StoreUnavailableError: "unavailable",
    InternalError: "internal",
}


def _lookup(exc: PolicyStoreError, table: Mapping[type[PolicyStoreError], Any], default: Any) -> Any:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default


def status_for(exc: PolicyStoreError) -> int:
    """Return the HTTP status for ``exc`` from :data:`HTTP_STATUS`.

    Args:
        exc: a policystore error.

    Returns:
        The status of the nearest listed class in its hierarchy; 500 if none is listed.
    """
    status: int = _lookup(exc, HTTP_STATUS, 500)
    return status


def refusal_reason(exc: PolicyStoreError) -> str:
    """Return the metrics label for a refused request: validation, permission, conflict...

    Args:
        exc: the error the request was refused with.

    Returns:
        One short word naming the kind of refusal.
    """
    reason: str = _lookup(exc, _REASONS, "other")
    return reason


def _facts(exc: PolicyStoreError) -> dict[str, Any]:  # noqa: PLR0911 - one return per error class
    if isinstance(exc, UnknownPathError):
        return {"path": exc.path, "suggestions": list(exc.suggestions)}
    if isinstance(exc, PolicyValidationError):
        return {"errors": [{"path": e.path, "message": e.message} for e in exc.errors]}
    if isinstance(exc, VersionConflictError):
        return {"expected_version": exc.expected_version, "current_version": exc.current_version}
    if isinstance(exc, PermissionDeniedError):
        return {"actor": exc.actor, "role": exc.role, "required_role": exc.required_role}
    if isinstance(exc, StoreUnavailableError):
        return {"store": exc.url}
    if isinstance(exc, PayloadTooLargeError):
        return {"limit": exc.limit}
    if isinstance(exc, ContentTypeError):
        return {"content_type": exc.content_type}
    return {}


def error_body(exc: PolicyStoreError) -> dict[str, Any]:
    """Return the JSON body for ``exc``: its class name, its sentence and its facts.

    Args:
        exc: a policystore error.

    Returns:
        ``{"error": ..., "detail": ..., **facts}``.
    """
    return {"error": type(exc).__name__, "detail": str(exc), **_facts(exc)}
