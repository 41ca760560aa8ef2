"""How the server answers an error: its status, its JSON body, its metric label, its OpenAPI description.

Every value here is read from the error's class (see :mod:`policystore.errors`,
where the server's own errors live too, beside the rest of the tree): the
status is :attr:`~policystore.errors.PolicyStoreError.http_status`, the metric
label :attr:`~policystore.errors.PolicyStoreError.metric_label`. Every error
body has the same shape::

    {"error": "<ErrorClass>", "detail": "<one sentence>", ...facts}

where the facts are the error's own (``path`` and ``suggestions``, ``errors``,
``current_version``, ``required_role``...: see
:meth:`~policystore.errors.PolicyStoreError.body_facts`), so clients branch on
data, not on the sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from policystore.errors import (
    AuthenticationError,
    ContentTypeError,
    InternalError,
    MalformedRequestError,
    PayloadTooLargeError,
    PolicyStoreError,
    StreamMessageError,
    error_classes,
)
from policystore.server.response_bodies import ErrorBody

__all__ = [
    "HTTP_STATUS",
    "AuthenticationError",
    "ContentTypeError",
    "InternalError",
    "MalformedRequestError",
    "PayloadTooLargeError",
    "StreamMessageError",
    "error_body",
    "error_responses",
    "refusal_reason",
    "status_for",
]

#: The HTTP status of each error class of :mod:`policystore.errors`, read from the classes
#: (a view for callers who want them all at once; :func:`status_for` asks the error itself).
HTTP_STATUS: Final[Mapping[type[PolicyStoreError], int]] = MappingProxyType(
    {cls: cls.http_status for cls in error_classes()}
)


def status_for(exc: PolicyStoreError) -> int:
    """Return the HTTP status ``exc`` is answered with.

    Args:
        exc: a policystore error.

    Returns:
        Its class's :attr:`~policystore.errors.PolicyStoreError.http_status`, inherited
        from the nearest class that sets one (500 for the base class).
    """
    return exc.http_status


def refusal_reason(exc: PolicyStoreError) -> str:
    """Return the metrics label for a refused request: validation, permission, conflict...

    Args:
        exc: the error the request was refused with.

    Returns:
        Its class's :attr:`~policystore.errors.PolicyStoreError.metric_label`: one short word.
    """
    return exc.metric_label


def error_body(exc: PolicyStoreError) -> dict[str, Any]:
    """Return the JSON body for ``exc``: its class name, its sentence and its facts.

    Args:
        exc: a policystore error.

    Returns:
        ``{"error": ..., "detail": ..., **facts}``.
    """
    return {"error": type(exc).__name__, "detail": str(exc), **exc.body_facts()}


def error_responses(*errors: type[PolicyStoreError]) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` of a route that may answer with ``errors``.

    One entry per status, described by the title and class name of each error
    answered with it ("Version conflict (VersionConflictError).").

    Args:
        *errors: the error classes the route may answer with.

    Returns:
        Status -> ``{"model": ErrorBody, "description": ...}``, by status.
    """
    named: dict[int, list[str]] = {}
    for error in errors:
        named.setdefault(error.http_status, []).append(f"{error.title} ({error.__name__})")
    return {
        status: {"model": ErrorBody, "description": _sentence("; ".join(named[status]))} for status in sorted(named)
    }


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."
