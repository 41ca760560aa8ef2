"""The reads that confirm change notices, and the fleet's reports, written straight to a connection of their own.

A notice that would loosen what a process holds is installed only once one
read of the store finds the notice's document there (see
:mod:`policystore.store.notices`). Every process on a host makes that read at
the same moment, so what it costs is paid once per process, on the path every
change takes to ``watch()``: through redis-py a ``GET`` costs several times
what this connection does, and its request leaves only when the task that
sends it next runs. :meth:`DirectCalls.read` writes the request at the call,
so the round trip overlaps whatever the caller does next, and returns the
stored bytes as hiredis parses them. Each member of the fleet reports every
version it installs (see :mod:`policystore.store.fleet`) over the same
connection, for the same reason.

It serves the connections :class:`~policystore.backends._redis_subscription.Subscription`
serves (plain TCP and Unix sockets, with or without a password); anything else
keeps redis-py (see :func:`~policystore.backends._redis_subscription.endpoint_of`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import hiredis
from redis.asyncio import Redis

from policystore.backends._redis_subscription import Endpoint, command, endpoint_of
from policystore.errors import StoreUnavailableError

__all__ = ["DirectCalls", "DirectReads", "ReadsLostError", "ReadsRefusedError"]


class ReadsLostError(ConnectionError):
    """The connection closed, the server refused a request, or it sent something it should not have."""


class ReadsRefusedError(ReadsLostError):
    """The server answered a request with an error: that request failed, the connection did not."""


#: Asks the server not to answer the command after it (nor this one).
_SKIP_REPLY: Final = command("CLIENT", "REPLY", "SKIP")


class DirectReads(asyncio.Protocol):
    """One connection for single commands; replies are matched to requests in the order they were sent.

    Build one with :meth:`open`. A connection that failed, or whose caller gave
    up waiting, is not used again: :attr:`usable` turns False and the owner
    opens a new one, so a late reply can never answer a later request.
    """

    def __init__(self) -> None:
        self._parser = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._lost: ReadsLostError | None = None
        self._transport: asyncio.Transport | None = None
        #: Whether the server was found to skip replies when asked (``CLIENT REPLY SKIP``);
        #: None until asked (see :meth:`DirectCalls.tell`).
        self.skips: bool | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, db: int) -> DirectReads:
        """Connect to ``endpoint``, authenticate if it has a password, and select ``db``.

        Bound the call with a timeout: connecting does not time out by itself.

        Raises:
            OSError: the connection could not be made.
            ReadsLostError: the server refused the password or the database.
        """
        loop = asyncio.get_running_loop()
        if endpoint.path is not None:
            _, protocol = await loop.create_unix_connection(cls, endpoint.path)
        else:
            _, protocol = await loop.create_connection(cls, endpoint.host or "localhost", endpoint.port)
        answers = []
        if endpoint.password:  # as redis-py: an empty password means none
            named = endpoint.username not in {None, "", "default"}
            words = (endpoint.username or "", endpoint.password) if named else (endpoint.password,)
            answers.append(protocol.request("AUTH", *words))
        if db:
            answers.append(protocol.request("SELECT", str(db)))
        try:
            for answer in answers:
                await answer
        except BaseException:
            protocol.close()
            raise
        return protocol

    @property
    def usable(self) -> bool:
        """Whether requests may still be sent on this connection."""
        return self._lost is None and self._transport is not None

    def request(self, *words: str | bytes) -> asyncio.Future[Any]:
        """Send one command now and return the future of its reply.

        Raises:
            ReadsLostError: the connection is gone; an error reply fails the future with it too.
        """
        if self._lost is not None or self._transport is None:
            raise self._lost or ReadsLostError("not connected")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        self._transport.write(command(*words))
        return answer

    def send_unanswered(self, *words: str | bytes) -> None:
        """Send one command after ``CLIENT REPLY SKIP``: the server answers neither, so nothing waits here.

        Only on a connection whose server skips replies when asked (:attr:`skips`);
        replies to the requests sent before still come, in order.

        Raises:
            ReadsLostError: the connection is gone.
        """
        if self._lost is not None or self._transport is None:
            raise self._lost or ReadsLostError("not connected")
        self._transport.write(_SKIP_REPLY + command(*words))

    def close(self) -> None:
        """Close the connection; requests still waiting fail."""
        self._fail(ReadsLostError("the connection was closed"))
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - create_connection gives a stream transport
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while (reply := self._parser.gets()) is not False:
                if not self._waiting:
                    self._fail(ReadsLostError("the server answered a request that was not sent"))
                    if self._transport is not None:
                        self._transport.abort()
                    return
                answer = self._waiting.popleft()
                if answer.done():
                    continue  # the caller stopped waiting (and closed the connection)
                if isinstance(reply, hiredis.ReplyError):
                    answer.set_exception(ReadsRefusedError(f"the server refused a request ({reply})"))
                else:
                    answer.set_result(reply)
        except hiredis.ProtocolError as exc:
            self._fail(ReadsLostError(f"the server sent something that is not the Redis protocol ({exc})"))
            if self._transport is not None:
                self._transport.abort()

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ReadsLostError(f"the connection closed ({exc or 'by the server'})"))

    def _fail(self, error: ReadsLostError) -> None:
        if self._lost is None:
            self._lost = error
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error)


class DirectCalls:
    """Commands of a back end on a connection of its own, each request sent at the call when it can be.

    The connection is opened on first use, and again after one fails; a client
    :class:`DirectReads` cannot serve is called through ``fallback`` instead.
    Besides the reads that confirm notices, it carries the fleet's reports (see
    :meth:`RedisRecords.put_unlogged <policystore.backends._redis_records.RedisRecords.put_unlogged>`):
    a command costs a fraction of what it costs through redis-py, in a
    process that makes one for every version it installs.

    Args:
        client: returns the back end's Redis client (made on first use).
        url: the store's URL without its password, for errors.
        timeout: seconds one command (or opening the connection) may take.
        fallback: runs a command through redis-py, answering its reply's bytes; it is
            given what the command does (for its error) and the command's words, and
            raises StoreUnavailableError.
        closed: tells whether the back end is closed, when no connection may be opened.
    """

    def __init__(
        self,
        client: Callable[[], Redis],
        url: str,
        *,
        timeout: float,
        fallback: Callable[..., Awaitable[Any]],
        closed: Callable[[], bool],
    ) -> None:
        self._client = client
        self._url = url
        self._timeout = timeout
        self._fallback = fallback
        self._closed = closed
        self._reads: DirectReads | None = None

    def read(self, *words: str) -> asyncio.Future[bytes | None]:
        """Start one read of stored bytes (``GET key``, ``HGET key field``); the request leaves now when it can.

        Returns:
            A future of the stored bytes (None when there are none); it raises
            StoreUnavailableError when the read fails or takes longer than the timeout.
        """
        reads = self._reads
        if reads is None or not reads.usable:
            return asyncio.ensure_future(self._text(self._open_and_call(_READING, words)))
        # No task of its own: the reply settles the future (one read per loosening notice in
        # every process on the host, so each turn of the loop saved counts).
        loop = asyncio.get_running_loop()
        answer = reads.request(*words)
        outcome: asyncio.Future[bytes | None] = loop.create_future()
        timer = loop.call_later(self._timeout, self._expire, reads, outcome)
        answer.add_done_callback(partial(self._settle_text, reads, outcome, timer))
        return outcome

    async def tell(self, what: str, *words: str | bytes) -> None:
        """Send one command whose reply no one needs, now; where the server can skip it, none is read.

        The first command on each connection is sent with its reply, which shows
        that it works, and the server is then asked whether it skips replies
        (``CLIENT REPLY SKIP``, which an ACL may refuse); after that each command
        is one write and nothing more. A command the server refuses once it skips
        replies fails unseen: use this only where a later check would show it
        (the fleet's logged reports, see :mod:`policystore.store.fleet`).

        Raises:
            StoreUnavailableError: a command sent with its reply failed, or the connection is gone.
        """
        reads = self._reads
        if reads is not None and reads.usable and reads.skips:
            reads.send_unanswered(*words)
            return
        await self.call(what, *words)
        reads = self._reads
        if reads is not None and reads.usable and reads.skips is None:
            reads.skips = await self._skips_replies(reads)

    async def call(self, what: str, *words: str | bytes) -> Any:
        """Send one command (now, when a connection is open) and return its reply.

        Args:
            what: what the command does, for the error (``"reading the policy"``).
            *words: the command.

        Raises:
            StoreUnavailableError: the command failed, was refused, or took longer than the timeout.
        """
        return await self._send(what, words)

    def _send(self, what: str, words: tuple[str | bytes, ...]) -> Awaitable[Any]:
        """Write the command now when a connection is open; the awaitable answers its reply."""
        reads = self._reads
        if reads is not None and reads.usable:
            return self._answer(what, reads, reads.request(*words))
        return self._open_and_call(what, words)

    def close(self) -> None:
        """Close the connection; commands still waiting fail."""
        if self._reads is not None:
            self._reads.close()
            self._reads = None

    async def _text(self, reply: Awaitable[Any]) -> bytes | None:
        answer = await reply
        if answer is not None and not isinstance(answer, bytes):
            raise self._unavailable(_READING, _not_text(answer))
        return answer

    def _settle_text(
        self,
        reads: DirectReads,
        outcome: asyncio.Future[bytes | None],
        timer: asyncio.TimerHandle,
        answer: asyncio.Future[Any],
    ) -> None:
        """Pass a read's reply (or its failure) on to the future :meth:`get` returned."""
        timer.cancel()
        if outcome.done():
            return  # timed out already, or the caller cancelled it
        error = answer.exception()
        if error is not None:
            reads.close()  # not used again: the requests behind it may be answered out of turn
            outcome.set_exception(self._unavailable(_READING, error))
            return
        reply = answer.result()
        if reply is not None and not isinstance(reply, bytes):
            outcome.set_exception(self._unavailable(_READING, _not_text(reply)))
        else:
            outcome.set_result(reply)

    def _expire(self, reads: DirectReads, outcome: asyncio.Future[bytes | None]) -> None:
        """A read took longer than the timeout: it fails, and its connection is not used again."""
        if not outcome.done():
            outcome.set_exception(self._unavailable(_READING, TimeoutError()))
        reads.close()  # a reply that comes late must not answer a later read

    async def _skips_replies(self, reads: DirectReads) -> bool | None:
        """Whether the server skips replies when asked; None when the question went unanswered (ask again)."""
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await reads.request("CLIENT", "REPLY", "ON") == b"OK")
        except ReadsRefusedError:
            return False  # refused (an ACL, an older server): every command is sent with its reply
        except (TimeoutError, ReadsLostError, OSError):
            reads.close()
            return None

    async def _open_and_call(self, what: str, words: tuple[str | bytes, ...]) -> Any:
        client = self._client()
        endpoint = endpoint_of(client)
        if endpoint is None:
            return await self._fallback(what, *words)
        db = int(client.connection_pool.connection_kwargs.get("db") or 0)
        try:
            async with asyncio.timeout(self._timeout):
                reads = await DirectReads.open(endpoint, db)
        except (TimeoutError, ReadsLostError, OSError) as exc:
            raise self._unavailable(what, exc) from exc
        current = self._reads
        if self._closed():
            reads.close()
            raise self._unavailable(what, ReadsLostError("the store was closed"))
        if current is not None and current.usable:
            reads.close()  # another command opened one first
            reads = current
        self._reads = reads
        return await self._answer(what, reads, reads.request(*words))

    async def _answer(self, what: str, reads: DirectReads, answer: asyncio.Future[Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await answer
        except (TimeoutError, ReadsLostError, OSError) as exc:
            # Not used again: a reply that comes late must not answer a later command.
            reads.close()
            raise self._unavailable(what, exc) from exc

    def _unavailable(self, what: str, exc: BaseException) -> StoreUnavailableError:
        reason = f"no answer within {self._timeout:g} s" if isinstance(exc, TimeoutError) else f"{exc}"
        return StoreUnavailableError(self._url, f"{what} failed ({reason})")


_READING: Final = "reading the policy"


def _not_text(reply: object) -> ReadsLostError:
    return ReadsLostError(f"the server answered {type(reply).__name__}, not the stored text")
