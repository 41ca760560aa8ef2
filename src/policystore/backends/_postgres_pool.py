"""The pooled connections of a PostgreSQL back end: every call bounded in time, every failure StoreUnavailableError.

Everything but the listening connection (see :mod:`._postgres_listener`) goes
through one pool per back end. The first call on it checks the tables (and
creates them in a new database, see :mod:`._postgres_schema`); a pooled
connection that died with a server restart is replaced and the call tried once
more, within the same timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from policystore.backends._postgres_calls import (
    POOL_PREFIX,
    ReportingConnection,
    bounded,
    describe,
    quiet_pool_attempts,
)
from policystore.backends._postgres_schema import NoTablesError, ensure_schema
from policystore.backends._postgres_urls import PostgresTarget
from policystore.errors import StoreUnavailableError

__all__ = ["PooledCalls"]

T = TypeVar("T")
Connection = AsyncConnection[tuple[Any, ...]]

#: Connections each process's pool holds at most (the listener has its own).
_POOL_SIZE: Final = 4


class PooledCalls:
    """One back end's pool, and its calls.

    Args:
        target: the parsed URL.
        url: the URL to show, password removed.
    """

    def __init__(self, target: PostgresTarget, url: str) -> None:
        self.url = url
        self.timeout = target.timeout
        self._target = target
        self._pool: AsyncConnectionPool[ReportingConnection] | None = None
        self._schema_ready = False
        #: Whether a database without the tables gets them (see PostgresBackend.connect).
        self.create = True

    async def close(self) -> None:
        """Close the pool (a later call opens a new one)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await pool.close(timeout=self.timeout)

    async def _open_pool(self) -> AsyncConnectionPool[ReportingConnection]:
        if self._pool is None:
            quiet_pool_attempts()
            # reconnect_timeout=0: a connection that cannot be made is given up at once rather than
            # retried with a backoff that grows to minutes; the next call asks for a new one, so a
            # server that returns is used by the next call, not after the pool's next backoff step.
            self._pool = AsyncConnectionPool(
                self._target.conninfo,
                kwargs=self._target.connect_options,
                connection_class=ReportingConnection,
                min_size=1,
                max_size=_POOL_SIZE,
                timeout=self.timeout,
                reconnect_timeout=0,
                num_workers=2,
                name=f"{POOL_PREFIX}{self._target.namespace}",
                open=False,
            )
            await self._pool.open(wait=False)
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection to a database whose tables were checked (and created, if new)."""
        pool = await self._open_pool()
        async with pool.connection() as conn:
            if not self._schema_ready:
                await self._ensure_schema(conn)
                self._schema_ready = True
            yield conn

    async def _ensure_schema(self, conn: Connection) -> None:
        problem = await ensure_schema(conn, create=self.create)
        if problem is not None:
            raise StoreUnavailableError(self.url, f"the database's policystore tables do not fit: {problem}")

    def unavailable(self, what: str, exc: BaseException) -> StoreUnavailableError:
        """The StoreUnavailableError that says why ``what`` failed with ``exc``."""
        if isinstance(exc, StoreUnavailableError):
            return exc
        if isinstance(exc, TimeoutError | PoolTimeout):
            # The pool connects in the background: its last failure, if the newest attempt failed, is the reason.
            failure = ReportingConnection.last_failure(self._target.conninfo)
            because = f" (the last attempt to connect failed: {failure})" if failure else ""
            return StoreUnavailableError(self.url, f"no answer within {self.timeout:g} s while {what}{because}")
        if isinstance(exc, psycopg.errors.UndefinedTable):
            self._schema_ready = False  # dropped behind our back: checked again on the next call
        return StoreUnavailableError(
            self.url, f"PostgreSQL failed while {what} ({type(exc).__name__}: {describe(exc)})"
        )

    def no_tables(self) -> StoreUnavailableError:
        """The StoreUnavailableError of a write to a database without the tables, opened without creating them."""
        return StoreUnavailableError(
            self.url, "the database holds no policystore tables, and this store was opened without creating them"
        )

    async def call(self, what: str, operation: Callable[[Connection], Awaitable[T]]) -> T:
        """Run one read-only or idempotent operation within the timeout; every failure is StoreUnavailableError.

        A connection that fails (the server restarted since it was pooled) is
        replaced and the operation tried once more, within the same timeout.
        """

        async def attempt() -> T:
            try:
                async with self.connection() as conn:
                    return await operation(conn)
            except PoolTimeout:
                raise
            except psycopg.OperationalError:
                await self.forget_dead_connections()
                async with self.connection() as conn:
                    return await operation(conn)

        try:
            return await bounded(attempt(), self.timeout)
        except (TimeoutError, psycopg.Error, OSError) as exc:
            raise self.unavailable(what, exc) from exc

    async def forget_dead_connections(self) -> None:
        """Drop the pooled connections that no longer answer (after a restart every idle one is dead)."""
        if self._pool is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._pool.check()

    async def fetch(self, what: str, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        """Return the rows of one query; none while the database has no tables and none were to be made."""
        try:
            return await self.call(what, lambda conn: _rows(conn, query, params))
        except NoTablesError:
            return []  # opened without creating: nothing there reads as an empty store

    async def write(self, what: str, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows; refused while the database has no tables and none were to be made."""
        try:
            return await self.call(what, lambda conn: _rows(conn, query, params))
        except NoTablesError as exc:
            raise self.no_tables() from exc


async def _rows(conn: Connection, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
    return await (await conn.execute(query, params)).fetchall()
