"""The listening connection, read straight off its socket: notices, and the few statements a follower sends often.

Every process that follows a store wakes for every change, so whatever one
notice costs is paid once per process, and so is every statement the change
leads to: the read that confirms a loosening notice, and the fleet report of
the version applied. Through psycopg's query machinery and its pool each of
those costs several times what it does here. This session registers the
socket with the event loop once, hands each notice over as libpq parses it,
and runs prepared statements with libpq's own asynchronous calls, in the
order they were asked for, one at a time: a request leaves at the call, so
its round trip overlaps whatever the caller does next.

A statement that gets no answer within the timeout ends the session (a late
answer must never answer a later statement), as does a lost connection: every
statement waiting fails with :class:`SessionLostError`, and the listener opens
a new session and has the store read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg import AsyncConnection, pq

__all__ = ["MAX_QUEUED", "ListeningSession", "Rows", "SessionLostError", "StatementError"]

Connection = AsyncConnection[tuple[Any, ...]]
#: The rows of a statement, each value as the server's text (None for NULL).
Rows = list[tuple[bytes | None, ...]]
#: Notices received and not yet taken before the session is ended as too slow: the
#: listener re-reads the store, which loses nothing, instead of memory growing without bound.
MAX_QUEUED: Final = 10_000
_ANSWERED: Final = frozenset({pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK})


class SessionLostError(ConnectionError):
    """The listening connection was lost, closed, or gave no answer in time."""


class StatementError(Exception):
    """The server refused one statement; the session goes on."""


@dataclass(slots=True)
class _Call:
    send: Callable[[pq.abc.PGconn], None]
    answer: asyncio.Future[Rows]
    results: list[pq.abc.PGresult] = field(default_factory=list)


class ListeningSession:
    """One connection's notices on one channel, and its statements, read by a reader registered once.

    Args:
        conn: a connected psycopg connection, idle, in autocommit; the session
            owns its socket from now on (psycopg must not run queries on it).
        channel: the channel whose notices are kept (any other is ignored).
        timeout: seconds one statement may wait for its answer.
    """

    def __init__(self, conn: Connection, channel: str, *, timeout: float) -> None:
        self._conn = conn
        self._pgconn = conn.pgconn
        self._fd = self._pgconn.socket
        self.encoding = conn.info.encoding
        self._relname = channel.encode(self.encoding)
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._payloads: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._calls: deque[_Call] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._writing = False
        self._lost: SessionLostError | None = None
        self._loop.add_reader(self._fd, self._readable)

    @property
    def usable(self) -> bool:
        """Whether statements may still be sent."""
        return self._lost is None

    # -- notices -------------------------------------------------------------------

    async def next(self, within: float) -> str | None:
        """Return the next notice's payload, or None when none came within ``within`` seconds.

        Raises:
            SessionLostError: the session ended, once every notice before was returned.
        """
        if not self._payloads and self._lost is None:
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(within, _settle, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._payloads:
            return self._payloads.popleft()
        if self._lost is not None:
            raise self._lost
        return None

    # -- statements ----------------------------------------------------------------

    def prepared(self, name: bytes, params: Sequence[str]) -> asyncio.Future[Rows]:
        """Run the prepared statement ``name``: sent now, or once those asked for before it are answered.

        Returns:
            The future of its rows; it raises StatementError when the server refused the
            statement, and SessionLostError when the session ended first.
        """
        values = [param.encode(self.encoding) for param in params]
        return self._call(lambda pgconn: pgconn.send_query_prepared(name, values))

    def prepare(self, name: bytes, query: str) -> asyncio.Future[Rows]:
        """Prepare ``query`` (parameters ``$1``, ``$2``, ...) as ``name`` on this connection."""
        return self._call(lambda pgconn: pgconn.send_prepare(name, query.encode(self.encoding)))

    def command(self, query: str) -> asyncio.Future[Rows]:
        """Run one statement without parameters (``LISTEN``, ``SELECT 1``)."""
        return self._call(lambda pgconn: pgconn.send_query(query.encode(self.encoding)))

    def close(self) -> None:
        """End the session: statements waiting fail; the connection itself is the caller's to close."""
        self._fail(SessionLostError("the listening connection was closed"))

    def _call(self, send: Callable[[pq.abc.PGconn], None]) -> asyncio.Future[Rows]:
        answer: asyncio.Future[Rows] = self._loop.create_future()
        answer.add_done_callback(_retrieve)
        if self._lost is not None:
            answer.set_exception(self._lost)
            return answer
        self._calls.append(_Call(send, answer))
        if len(self._calls) == 1:
            self._send()
        return answer

    def _send(self) -> None:
        try:
            self._calls[0].send(self._pgconn)
            if self._pgconn.flush() and not self._writing:  # the rest goes when the socket takes it
                self._loop.add_writer(self._fd, self._writable)
                self._writing = True
        except psycopg.Error as exc:
            self._fail(SessionLostError(f"sending a statement failed ({exc})"))
            return
        self._timer = self._loop.call_later(self._timeout, self._expired)

    def _writable(self) -> None:
        try:
            left = self._pgconn.flush()
        except psycopg.Error as exc:
            self._fail(SessionLostError(f"sending a statement failed ({exc})"))
            return
        if not left:
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _expired(self) -> None:
        self._timer = None
        self._fail(SessionLostError(f"no answer within {self._timeout:g} s"))

    # -- reading the socket ----------------------------------------------------------

    def _readable(self) -> None:
        pgconn = self._pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as exc:  # the server closed the connection, or the network did
            self._fail(SessionLostError(f"the listening connection was lost ({exc})"))
            return
        self._take_notices()
        if self._calls:
            self._collect()
            # libpq parses what follows an answer (a notice sent once the statement ended, in
            # the same read) while the answer is taken: no later read of the socket would.
            self._take_notices()
        payloads = self._payloads
        if len(payloads) > MAX_QUEUED:
            payloads.clear()  # too far behind to catch up by reading notices: the listener re-reads the store
            self._fail(SessionLostError(f"more than {MAX_QUEUED} notices were waiting to be read"))
        elif payloads and self._waiter is not None:
            _settle(self._waiter)

    def _take_notices(self) -> None:
        pgconn, payloads = self._pgconn, self._payloads
        while (notice := pgconn.notifies()) is not None:
            if notice.relname == self._relname:
                payloads.append(notice.extra.decode(self.encoding, errors="replace"))

    def _collect(self) -> None:
        """Take the answers of the statement in flight; once it is complete, settle it and send the next."""
        pgconn, call = self._pgconn, self._calls[0]
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is not None:
                call.results.append(result)
                continue
            self._calls.popleft()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not call.answer.done():
                _settle_call(call, self.encoding)
            if self._calls:
                self._send()
            return

    def _fail(self, error: SessionLostError) -> None:
        if self._lost is None:
            self._lost = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        while self._calls:
            answer = self._calls.popleft().answer
            if not answer.done():
                answer.set_exception(self._lost)
        if self._waiter is not None:
            _settle(self._waiter)


def _settle_call(call: _Call, encoding: str) -> None:
    """Answer a complete statement: its rows, or the first refusal among its results."""
    for result in call.results:
        if result.status not in _ANSWERED:
            message = result.get_error_message(encoding).strip() or f"status {pq.ExecStatus(result.status).name}"
            call.answer.set_exception(StatementError(message))
            return
    rows: Rows = []
    for result in call.results:
        width = result.nfields
        rows.extend(tuple(result.get_value(row, column) for column in range(width)) for row in range(result.ntuples))
    call.answer.set_result(rows)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _retrieve(answer: asyncio.Future[Rows]) -> None:
    """Take a statement's failure even when no one waits for it (its caller gave up), so none is reported unhandled."""
    if not answer.cancelled():
        answer.exception()
