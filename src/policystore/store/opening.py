"""Which back end a store's constructor arguments name, and what opening one without creating says.

The first argument of :class:`~policystore.store.store.PolicyStore` may be a
back end, a URL or a Redis client; code written for the older store passes the
client as ``redis_client=``. A synchronous client is refused here, in one
sentence, rather than failing at the first ``await`` deep inside a read.
"""

from __future__ import annotations

import os
from typing import Any, Final

from policystore.backends.base import Backend
from policystore.errors import ClientTypeError, FieldError, PolicyValidationError
from policystore.store.urls import DEFAULT_URL, backend_for_url

__all__ = ["NO_POLICY_REASON", "backend_for"]

#: Why ``initialize()`` refuses a store that holds no policy when opened with ``create=False``.
NO_POLICY_REASON: Final = "no policy store exists there; run 'policystore init' to create one"


def backend_for(backend: Backend | str | Any | None, redis_client: Any) -> Backend:
    """Return the back end a constructor's first argument (or ``redis_client=``) names.

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
        return backend_for_url(backend)
    if isinstance(backend, Backend):
        return backend
    from policystore.backends.redis import RedisBackend

    _require_async_client(argument, backend)
    return RedisBackend.from_client(backend)


def _require_async_client(argument: str, client: Any) -> None:
    """Refuse a synchronous redis-py client, whose calls return values where awaitables are needed.

    Raises:
        ClientTypeError: ``client`` is a ``redis.Redis``, or no Redis client at all.
    """
    import redis

    if isinstance(client, redis.Redis | redis.RedisCluster):
        raise ClientTypeError(argument, "redis.asyncio.Redis", client)
    if not hasattr(client, "connection_pool"):
        raise ClientTypeError(argument, "a Backend, a store URL or a redis.asyncio.Redis client", client)
