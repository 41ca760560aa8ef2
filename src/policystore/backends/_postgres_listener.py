"""Following a namespace's notices on one listening connection of its own, across reconnects.

Every process keeps one connection that has run ``LISTEN`` on the namespace's
channel; pooled connections serve everything else. The iterator yields the same
hints as the Redis back end's: 0 once listening (first time and after every
reconnect), each notice as :func:`~._postgres_layout.hint_of` reads it, and 0
when the connection is lost, since notices sent while no one listened are gone
and the store must be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection, sql

from policystore.backends._postgres_calls import bounded
from policystore.backends._postgres_layout import hint_of
from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError

__all__ = ["listen"]

log = logging.getLogger("policystore.postgres")
Connection = AsyncConnection[tuple[Any, ...]]

#: Seconds of silence on the listening connection before it is checked with a query.
_KEEPALIVE: Final = 5.0
#: Seconds one wait for a notice lasts before the listener checks whether it was closed.
_POLL: Final = 0.25


async def listen(
    conninfo: str, options: dict[str, Any], *, channel: str, within: float, closed: asyncio.Event, url: str
) -> AsyncIterator[int | Published]:
    """Yield each notice on ``channel``; 0 after every (re)connect and on connection loss.

    Args:
        conninfo: the libpq connection string.
        options: keyword arguments of the connection.
        channel: the namespace's channel.
        within: seconds connecting (and each keepalive query) may take.
        closed: set to end the iterator.
        url: the store's URL, password removed, for the log.

    Never raises for a lost connection: it yields 0 (so the listener checks,
    finds the store unreachable and goes stale), then reconnects with a growing
    pause of at most 1 s, and yields 0 once listening again. Ends when ``closed``
    is set.
    """
    pause = 0.05
    stop = asyncio.ensure_future(closed.wait())
    try:
        while not closed.is_set():
            conn: Connection | None = None
            try:
                conn = await bounded(_open(conninfo, options, channel), within)
                yield 0  # listening (first time, or again after a reconnect): re-read
                pause = 0.05
                async with contextlib.aclosing(_notices(conn, channel, within, closed)) as hints:
                    async for hint in hints:
                        yield hint
            except (StoreUnavailableError, psycopg.Error, OSError, TimeoutError) as exc:
                log.debug("Policy notifications from %s lost: %s", url, exc)
            else:
                return  # closed
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
            yield 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), timeout=pause)
            pause = min(pause * 2, 1.0)
    finally:
        stop.cancel()


async def _open(conninfo: str, options: dict[str, Any], channel: str) -> Connection:
    conn = await AsyncConnection.connect(conninfo, **options)
    try:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    except BaseException:
        await conn.close()
        raise
    return conn


async def _notices(
    conn: Connection, channel: str, within: float, closed: asyncio.Event
) -> AsyncGenerator[int | Published, None]:
    """Yield hints from one listening connection until ``closed``; raise when the connection is lost."""
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while not closed.is_set():
        async for notice in conn.notifies(timeout=_POLL):
            heard = loop.time()
            if notice.channel == channel:
                yield hint_of(notice.payload)
        if loop.time() - heard > _KEEPALIVE:
            # Silence may be a dead connection that TCP has not noticed: ask for a sign of life.
            await bounded(conn.execute("SELECT 1"), within)
            heard = loop.time()
