"""Calls to PostgreSQL: bounded in time however the driver answers a cancellation; connections that say why they fail.

psycopg answers a cancelled query by asking the server to cancel it and waiting
(up to seconds) for it to stop, so a call cancelled at its timeout would outlast
the timeout, against a server that has stopped answering most of all. A call is
run as a task of its own instead: past the timeout it is abandoned, cancelled and
left to end by itself; its connection goes back to the pool (or is closed) then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, ClassVar, Final, Self, TypeVar

import psycopg
from psycopg import AsyncConnection

__all__ = ["POOL_PREFIX", "ReportingConnection", "bounded", "describe", "quiet_pool_attempts"]

T = TypeVar("T")
#: How the name of every pool policystore makes begins.
POOL_PREFIX: Final = "policystore-"
#: Calls abandoned and still ending, and connections being closed after them: a task
#: needs a reference until it is done.
_ENDING: Final[set[asyncio.Task[Any]]] = set()


async def bounded(work: Coroutine[Any, Any, T], within: float) -> T:
    """Return what ``work`` returns within ``within`` seconds; past it, abandon it and raise TimeoutError.

    Raises:
        TimeoutError: ``work`` did not end in time.
        BaseException: whatever ``work`` raised.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
    except BaseException:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise TimeoutError
    return task.result()


def _abandon(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _ENDING.add(task)
    task.add_done_callback(_ended)


def _ended(task: asyncio.Task[Any]) -> None:
    """Retrieve an abandoned call's outcome, and close a connection it opened too late to be used."""
    _ENDING.discard(task)
    if task.cancelled():
        return
    result = task.exception() or task.result()
    if isinstance(result, tuple) and result and isinstance(result[0], AsyncConnection):
        result = result[0]  # a connection returned with what was read on it
    if isinstance(result, AsyncConnection):
        closing = task.get_loop().create_task(result.close())
        _ENDING.add(closing)
        closing.add_done_callback(_ENDING.discard)


class ReportingConnection(AsyncConnection[tuple[Any, ...]]):
    """A connection that remembers why the last attempt to make one failed, per connection string.

    The pool makes connections in the background and tells a waiting caller only
    that none came in time; this keeps the reason (a wrong password, a standby
    where a primary was asked for, a refused port) for the caller's message.
    """

    _failures: ClassVar[dict[str, str]] = {}

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """Connect as psycopg does, remembering why an attempt failed."""
        try:
            conn = await super().connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            cls._failures[conninfo] = describe(exc)
            raise
        cls._failures.pop(conninfo, None)
        return conn

    @classmethod
    def last_failure(cls, conninfo: str) -> str | None:
        """Why the newest attempt to connect with ``conninfo`` failed, or None if it succeeded."""
        return cls._failures.get(conninfo)


def describe(exc: BaseException) -> str:
    """Return a driver error's text on one line: one failure per host, without libpq's hints."""
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Is the server running", "HINT:"))]
    for n, line in enumerate(lines):
        if line.startswith("Multiple connection attempts failed"):
            lines = [failure.removeprefix("- ") for failure in lines[n + 1 :]]  # each host's own failure
            break
    return "; ".join(lines).rstrip(".") or type(exc).__name__


class _PoolAttemptsAtDebug(logging.Filter):
    """Lower psycopg_pool's warning for each failed connection attempt of policystore's pools to DEBUG.

    During an outage the pool tries on every call; the store already reports
    the outage once, with the last attempt's reason (see ReportingConnection).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno == logging.WARNING and args and str(args[0]).startswith(POOL_PREFIX):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def quiet_pool_attempts() -> None:
    """Install :class:`_PoolAttemptsAtDebug` on psycopg_pool's logger, once."""
    pool_log = logging.getLogger("psycopg.pool")
    if not any(isinstance(f, _PoolAttemptsAtDebug) for f in pool_log.filters):
        pool_log.addFilter(_PoolAttemptsAtDebug())
