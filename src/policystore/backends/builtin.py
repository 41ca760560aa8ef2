"""The declarations of the back ends that ship with policystore, one object each.

=============  ===============================================  =============================
back end       schemes                                          last-known-good copy
=============  ===============================================  =============================
memory         ``memory://[NAME]``                               none
sqlite         ``sqlite:///PATH``                                ``PATH.lkg.json``, beside it
redis          ``redis``, ``rediss``, ``redis+sentinel``,        the user's cache folder, one
               ``unix``                                          file per URL (secrets hidden)
postgres       ``postgresql``, ``postgres``                      the same
=============  ===============================================  =============================

Each back end's module is imported only when a URL of its own is opened: a
program that opens a SQLite store never imports redis or psycopg. A Redis
client object the caller made (``redis.asyncio.Redis``) is recognised by the
Redis declaration.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

from policystore.backends.base import Backend
from policystore.backends.declaration import BackendDeclaration
from policystore.errors import ClientTypeError, FieldError, PolicyValidationError
from policystore.redaction import redact

__all__ = ["BUILTIN", "MEMORY", "POSTGRES", "REDIS", "SQLITE", "sqlite_path"]


def _memory(url: str) -> Backend:
    from policystore.backends.memory import MemoryBackend

    return MemoryBackend(url.split("://", 1)[1])


def _no_copy(url: str) -> None:
    """A memory store lives and dies with its process: a copy on disk would outlive it."""
    del url


def sqlite_path(url: str) -> Path:
    """Return the database file a ``sqlite:///PATH`` URL names.

    Raises:
        PolicyValidationError: the URL is not of the form ``sqlite:///PATH``.
    """
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        msg = f"{redact(url)!r} is not of the form sqlite:///PATH"
        raise PolicyValidationError([FieldError("store", msg)])
    return Path(rest[1:].split("?", 1)[0])


def _sqlite(url: str) -> Backend:
    from policystore.backends.sqlite import SQLiteBackend

    return SQLiteBackend(sqlite_path(url))


def _beside_database(url: str) -> Path:
    database = sqlite_path(url)
    return database.with_name(database.name + ".lkg.json")


def _redis(url: str) -> Backend:
    from policystore.backends.redis import RedisBackend

    return RedisBackend.from_url(url)


def _redis_client(client: Any, argument: str) -> Backend | None:
    """Wrap a ``redis.asyncio.Redis`` client; refuse a synchronous one, whose calls cannot be awaited.

    Raises:
        ClientTypeError: ``client`` is a ``redis.Redis`` or ``redis.RedisCluster``.
    """
    # A redis-py client exists only once redis is imported: a program without it is never made to import it.
    if "redis" in sys.modules:
        import redis

        if isinstance(client, redis.Redis | redis.RedisCluster):
            raise ClientTypeError(argument, "redis.asyncio.Redis", client)
    if not hasattr(client, "connection_pool"):
        return None
    from policystore.backends.redis import RedisBackend

    return RedisBackend.from_client(client)


def _postgres(url: str) -> Backend:
    from policystore.backends.postgres import PostgresBackend

    return PostgresBackend.from_url(url)


MEMORY: Final = BackendDeclaration(
    name="memory", schemes=("memory",), example="memory://", open_url=_memory, lkg_path=_no_copy
)
SQLITE: Final = BackendDeclaration(
    name="sqlite", schemes=("sqlite",), example="sqlite:///PATH", open_url=_sqlite, lkg_path=_beside_database
)
REDIS: Final = BackendDeclaration(
    name="redis",
    schemes=("redis", "rediss", "redis+sentinel", "unix"),
    example="redis://HOST:PORT/DB",
    open_url=_redis,
    open_client=_redis_client,
    client_kind="a redis.asyncio.Redis client",
    requires="the redis extra",
    install="policystore[redis]",
)
POSTGRES: Final = BackendDeclaration(
    name="postgres",
    schemes=("postgresql", "postgres"),
    example="postgresql://USER@HOST:PORT/DBNAME",
    open_url=_postgres,
    requires="psycopg",
    install="policystore[postgres]",
)
#: policystore's own back ends, in the order their URL forms are suggested.
BUILTIN: Final = (MEMORY, SQLITE, REDIS, POSTGRES)
