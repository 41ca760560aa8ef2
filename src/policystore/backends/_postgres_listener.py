"""Following a namespace's notices on one listening connection of its own, across reconnects.

Every process keeps one connection that has run ``LISTEN`` on the namespace's
channel, read straight off its socket (see :mod:`._postgres_session`); pooled
connections serve everything else but the two statements a follower sends on
every change, which go on the listening connection: the read that confirms a
notice (:data:`NEWEST`, or :data:`VERSION` when a later version overtook it) and
the fleet report (:data:`REPORT`). The iterator
yields the same hints as the Redis back end's: 0 once listening (first time and
after every reconnect), each notice as :func:`~._postgres_layout.hint_of` reads
it, and 0 when the connection is lost, since notices sent while no one listened
are gone and the store must be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Final, Protocol

import psycopg
from psycopg import AsyncConnection, sql

from policystore.backends._postgres_layout import FIND_KEY, NEWEST_TEXT, VERSION_TEXT, channel_for, hint_of
from policystore.backends._postgres_records import PUT_PASSING
from policystore.backends._postgres_session import ListeningSession, Rows, SessionLostError, StatementError
from policystore.backends._report_requests import requested_version
from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError

__all__ = ["NEWEST", "REPORT", "Listening", "listen"]

log = logging.getLogger("policystore.postgres")
Connection = AsyncConnection[tuple[Any, ...]]

#: Seconds of silence on the listening connection before it is checked with a query.
_KEEPALIVE: Final = 5.0
#: Seconds one wait for a notice lasts before the listener checks whether it was closed.
_POLL: Final = 0.25
#: The statements every listening connection prepares, by name: its namespace's notice
#: key, its newest document's text (the read that confirms a notice), a version's text
#: (which confirms a notice overtaken by a later version), and the fleet report of the
#: process (sent for the versions it applies, at most every 50 ms, and every second).
_KEY: Final = b"policystore_key"
NEWEST: Final = b"policystore_newest"
VERSION: Final = b"policystore_version"
REPORT: Final = b"policystore_report"


def _numbered(query: str) -> str:
    """``query`` with psycopg's ``%s`` placeholders as the server's own ``$1``, ``$2``, ..."""
    count = iter(range(1, query.count("%s") + 1))
    return re.sub("%s", lambda _: f"${next(count)}", query)


_PREPARED: Final = {
    _KEY: _numbered(FIND_KEY),
    NEWEST: _numbered(NEWEST_TEXT),
    VERSION: _numbered(VERSION_TEXT),
    REPORT: _numbered(PUT_PASSING),
}


class _Rows(Protocol):
    def __call__(self, what: str, query: str, params: tuple[Any, ...]) -> Awaitable[list[tuple[Any, ...]]]: ...


class Listening:
    """The session of a back end's newest listener, while it lasts, and the statements it answers.

    Each statement goes on a pooled connection instead while no session listens.

    Args:
        namespace: the back end's namespace.
        url: its URL, password removed, for errors.
        fetch: runs a query on a pooled connection (the back end's own).
        write: runs a statement on a pooled connection (the back end's own).
    """

    def __init__(self, namespace: str, url: str, *, fetch: _Rows, write: _Rows) -> None:
        self.session: ListeningSession | None = None
        self._namespace = namespace
        self._url = url
        self._fetch = fetch
        self._write = write

    def usable(self) -> ListeningSession | None:
        """The session, when there is one and statements may be sent on it."""
        session = self.session
        return session if session is not None and session.usable else None

    def newest_text(self) -> asyncio.Future[bytes | None]:
        """Start one read of the newest document's stored text (see :meth:`PostgresBackend.newest_text`)."""
        return self._text(NEWEST, NEWEST_TEXT, (self._namespace, self._namespace))

    def version_text(self, version: int) -> asyncio.Future[bytes | None]:
        """Start one read of a version's stored text (see :meth:`PostgresBackend.version_text`)."""
        return self._text(VERSION, VERSION_TEXT, (self._namespace, str(version)))

    def _text(self, name: bytes, query: str, params: tuple[str, ...]) -> asyncio.Future[bytes | None]:
        """Read one document's text: prepared ``name`` on the session, else ``query`` on a pooled connection."""
        session = self.usable()
        if session is None:
            return asyncio.ensure_future(self._pooled_text(query, params))
        # Settled from the answer's callback, not by a task of its own: one wake-up fewer per notice.
        text: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        session.prepared(name, params).add_done_callback(lambda answer: self._settle(text, answer))
        return text

    async def report(self, what: str, params: tuple[str, str, str, str]) -> None:
        """Write a fleet member's record with :data:`~._postgres_records.PUT_PASSING`.

        Raises:
            StoreUnavailableError: PostgreSQL failed, or gave no answer in time.
        """
        session = self.usable()
        if session is None:
            await self._write(what, PUT_PASSING, params)
            return
        try:
            await session.prepared(REPORT, params)
        except (SessionLostError, StatementError) as exc:
            raise StoreUnavailableError(self._url, f"PostgreSQL failed while {what} ({exc})") from exc

    def _settle(self, text: asyncio.Future[bytes | None], answer: asyncio.Future[Rows]) -> None:
        if text.done():
            return  # the reader gave up waiting
        failure = answer.exception() if not answer.cancelled() else SessionLostError("the read was cancelled")
        if failure is None:
            rows = answer.result()
            text.set_result(rows[0][0] if rows else None)
            return
        error = StoreUnavailableError(self._url, f"PostgreSQL failed while reading the policy ({failure})")
        error.__cause__ = failure
        text.set_exception(error)

    async def _pooled_text(self, query: str, params: tuple[str, ...]) -> bytes | None:
        rows = await self._fetch("reading the policy", query, params)
        return str(rows[0][0]).encode() if rows and rows[0][0] is not None else None


async def listen(
    conninfo: str,
    options: dict[str, Any],
    *,
    namespace: str,
    within: float,
    closed: asyncio.Event,
    url: str,
    listening: Listening,
    requested: Callable[[int], None],
) -> AsyncIterator[int | Published]:
    """Yield each notice on the namespace's channel; 0 after every (re)connect and on connection loss.

    Args:
        conninfo: the libpq connection string.
        options: keyword arguments of the connection.
        namespace: the namespace whose channel is listened to.
        within: seconds connecting (and each keepalive query) may take.
        closed: set to end the iterator.
        url: the store's URL, password removed, for the log.
        listening: where the session is kept while it lasts.
        requested: called with the version of each report request heard (see
            :mod:`~policystore.backends._report_requests`), which yields nothing.

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
            session: ListeningSession | None = None
            try:
                # Cancelled at the timeout, _open closes what it made: connecting and its statements
                # (whose own timeout ends the session) leave no query for psycopg to cancel.
                async with asyncio.timeout(within):
                    conn, opened, key = await _open(conninfo, options, namespace, within)
                listening.session = session = opened
                yield 0  # listening (first time, or again after a reconnect): re-read
                pause = 0.05
                async with contextlib.aclosing(_notices(opened, namespace, key, closed, requested)) as hints:
                    async for hint in hints:
                        yield hint
            except (StoreUnavailableError, psycopg.Error, OSError, TimeoutError, StatementError) as exc:
                log.debug("Policy notifications from %s lost: %s", url, exc)
            else:
                return  # closed
            finally:
                if session is not None:
                    session.close()
                    if listening.session is session:
                        listening.session = None
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
            yield 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), timeout=pause)
            pause = min(pause * 2, 1.0)
    finally:
        stop.cancel()


async def _open(
    conninfo: str, options: dict[str, Any], namespace: str, within: float
) -> tuple[Connection, ListeningSession, str | None]:
    """Connect, prepare the statements, read the namespace's notice key, then LISTEN.

    A key made in between is read when a notice needs it.
    """
    conn = await AsyncConnection.connect(conninfo, **options)
    session: ListeningSession | None = None
    try:
        session = ListeningSession(conn, channel_for(namespace), timeout=within)
        for name, query in _PREPARED.items():
            await session.prepare(name, query)
        key = await _key(session, namespace)
        await session.command(sql.SQL("LISTEN {}").format(sql.Identifier(channel_for(namespace))).as_string(conn))
    except BaseException:
        if session is not None:
            session.close()
        await conn.close()
        raise
    return conn, session, key


async def _key(session: ListeningSession, namespace: str) -> str | None:
    """The namespace's notice key, or None while it has no version."""
    rows = await session.prepared(_KEY, (namespace,))
    return rows[0][0].decode(session.encoding) if rows and rows[0][0] is not None else None


async def _notices(
    session: ListeningSession,
    namespace: str,
    key: str | None,
    closed: asyncio.Event,
    requested: Callable[[int], None],
) -> AsyncGenerator[int | Published, None]:
    """Yield hints from one listening session until ``closed``; raise when the session is lost."""
    loop = asyncio.get_running_loop()
    heard = loop.time()
    while not closed.is_set():
        payload = await session.next(_POLL)
        if payload is None:
            if loop.time() - heard > _KEEPALIVE:
                # Silence may be a dead connection that TCP has not noticed: ask for a sign of life.
                await session.command("SELECT 1")
                heard = loop.time()
            continue
        heard = loop.time()
        asked = requested_version(payload)
        if asked is not None:
            requested(asked)  # a waiter's request, no change: nothing to check
            continue
        hint = hint_of(payload, key)
        if hint is None:
            # Signed under another key: the namespace is new since the key was read, or was made
            # anew. Read the key again; a notice that still does not verify is only a reason to check.
            key = await _key(session, namespace)
            hint = hint_of(payload, key)
            yield 0 if hint is None else hint
        else:
            yield hint
