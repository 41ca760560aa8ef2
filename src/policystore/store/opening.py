"""Which back end a store's constructor arguments name, and what opening one without creating says.

The first argument of :class:`~policystore.store.store.PolicyStore` may be a
back end, a URL or a client object a back end wraps (a Redis client); code
written for the older store passes the client as ``redis_client=``. The
back-end registry (:mod:`policystore.backends.registry`) turns a URL or a
client into a back end: the store names none. A synchronous Redis client is
refused there, in one sentence, rather than failing at the first ``await``
deep inside a read.
"""

from __future__ import annotations

import os
from typing import Any, Final

from policystore.backends.base import Backend
from policystore.backends.registry import REGISTRY
from policystore.errors import FieldError, PolicyValidationError
from policystore.store.urls import DEFAULT_URL

__all__ = ["NO_POLICY_REASON", "backend_for"]

#: Why ``initialize()`` refuses a store that holds no policy when opened with ``create=False``.
NO_POLICY_REASON: Final = "no policy store exists there; run 'policystore init' to create one"


def backend_for(backend: Backend | str | Any | None, redis_client: Any) -> Backend:
    """Return the back end a constructor's first argument (or ``redis_client=``) names.

    Args:
        backend: a back end, a store URL, a client object, or None for
            ``POLICYSTORE_URL`` (the default URL without it).
        redis_client: a client given by keyword, as the older store took it.

    Returns:
        The back end, not yet connected.

    Raises:
        ClientTypeError: a synchronous Redis client, or an object that is no back end or client.
        PolicyValidationError: both arguments were given, or the URL names no known store.
    """
    argument = "backend"
    if redis_client is not None:
        if backend is not None:
            msg = "give either a back end or redis_client=, not both"
            raise PolicyValidationError([FieldError("redis_client", msg)])
        backend, argument = redis_client, "redis_client"
    if backend is None:
        backend = os.environ.get("POLICYSTORE_URL") or DEFAULT_URL
    if isinstance(backend, str):
        return REGISTRY.open_url(backend)
    if isinstance(backend, Backend):
        return backend
    return REGISTRY.open_client(backend, argument)
