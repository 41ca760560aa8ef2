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
from policystore.backends._postgres_layout import FIND_KEY, channel_for, hint_of
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
    conninfo: str, options: dict[str, Any], *, namespace: str, within: float, closed: asyncio.Event, url: str
) -> AsyncIterator[int | Published]:
    """Yield each notice on the namespace's channel; 0 after every (re)connect and on connection loss.

    Args:
        conninfo: the libpq connection string.
        options: keyword arguments of the connection.
        namespace: the namespace whose channel is listened to.
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
                listening, key = await bounded(_open(conninfo, options, namespace), within)
                conn = listening
                yield 0  # listening (first time, or again after a reconnect): re-read
                pause = 0.05
                async with contextlib.aclosing(_notices(listening, namespace, key, within, closed)) as hints:
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


async def _open(conninfo: str, options: dict[str, Any], namespace: str) -> tuple[Connection, str | None]:
    """Connect, read the namespace's notice key, then LISTEN (a key made in between is read when needed)."""
    conn = await AsyncConnection.connect(conninfo, **options)
    try:
        key = await _key(conn, namespace)
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel_for(namespace))))
    except BaseException:
        await conn.close()
        raise
    return conn, key


async def _key(conn: Connection, namespace: str) -> str | None:
    """The namespace's notice key, or None while it has no version."""
    row = await (await conn.execute(FIND_KEY, (namespace,))).fetchone()
    return None if row is None else str(row[0])


async def _notices(
    conn: Connection, namespace: str, key: str | None, within: float, closed: asyncio.Event
) -> AsyncGenerator[int | Published, None]:
    """Yield hints from one listening connection until ``closed``; raise when the connection is lost."""
    channel = channel_for(namespace)
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while not closed.is_set():
        unverified: str | None = None
        # Closed explicitly when left: it holds the connection's lock, which the queries below need.
        async with contextlib.aclosing(conn.notifies(timeout=_POLL)) as notices:
            async for notice in notices:
                heard = loop.time()
                if notice.channel != channel:
                    continue
                hint = hint_of(notice.payload, key)
                if hint is None:
                    unverified = notice.payload
                    break
                yield hint
        if unverified is not None:
            # Signed under another key: the namespace is new since the key was read, or was made
            # anew. Read the key again; a notice that still does not verify is only a reason to check.
            key = await bounded(_key(conn, namespace), within)
            hint = hint_of(unverified, key)
            yield 0 if hint is None else hint
        elif loop.time() - heard > _KEEPALIVE:
            # Silence may be a dead connection that TCP has not noticed: ask for a sign of life.
            await bounded(conn.execute("SELECT 1"), within)
            heard = loop.time()
