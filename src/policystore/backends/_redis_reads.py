"""The reads that confirm change notices, written straight to their own connection.

A notice that would loosen what a process holds is installed only once one
read of the store finds the notice's document there (see
:mod:`policystore.store.notices`). Every process on a host makes that read at
the same moment, so what it costs is paid once per process, on the path every
change takes to ``watch()``: through redis-py a ``GET`` costs several times
what this connection does, and its request leaves only when the task that
sends it next runs. :meth:`DirectReads.get` writes the request at the call,
so the round trip overlaps whatever the caller does next, and returns the
stored bytes as hiredis parses them.

It serves the connections :class:`~policystore.backends._redis_subscription.Subscription`
serves (plain TCP and Unix sockets, with or without a password); anything else
keeps redis-py (see :func:`~policystore.backends._redis_subscription.endpoint_of`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
from redis.asyncio import Redis

from policystore.backends._redis_subscription import Endpoint, command, endpoint_of
from policystore.errors import StoreUnavailableError

__all__ = ["DirectReads", "NewestText", "ReadsLostError"]


class ReadsLostError(ConnectionError):
    """The connection closed, the server refused a request, or it sent something it should not have."""


class DirectReads(asyncio.Protocol):
    """One connection for single-key reads; replies are matched to requests in the order they were sent.

    Build one with :meth:`open`. A connection that failed, or whose caller gave
    up waiting, is not used again: :attr:`usable` turns False and the owner
    opens a new one, so a late reply can never answer a later request.
    """

    def __init__(self) -> None:
        self._parser = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._lost: ReadsLostError | None = None
        self._transport: asyncio.Transport | None = None

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

    def get(self, key: str) -> asyncio.Future[Any]:
        """Send ``GET key`` now; the future answers the stored bytes, or None when the key is absent.

        Raises:
            ReadsLostError: the connection is gone (also through the future).
        """
        return self.request("GET", key)

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
                    answer.set_exception(ReadsLostError(f"the server refused a request ({reply})"))
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


class NewestText:
    """Reads of one key's stored bytes for a back end, each request sent at the call when it can be.

    The connection is opened on first use, and again after one fails; a client
    :class:`DirectReads` cannot serve is read through ``fallback`` instead.

    Args:
        client: returns the back end's Redis client (made on first use).
        key: the key to read.
        url: the store's URL without its password, for errors.
        timeout: seconds one read (or opening the connection) may take.
        fallback: reads the key through redis-py; raises StoreUnavailableError.
        closed: tells whether the back end is closed, when no connection may be opened.
    """

    def __init__(
        self,
        client: Callable[[], Redis],
        key: str,
        url: str,
        *,
        timeout: float,
        fallback: Callable[[], Awaitable[bytes | None]],
        closed: Callable[[], bool],
    ) -> None:
        self._client = client
        self._key = key
        self._url = url
        self._timeout = timeout
        self._fallback = fallback
        self._closed = closed
        self._reads: DirectReads | None = None

    def read(self) -> asyncio.Future[bytes | None]:
        """Start one read; the request leaves now when a connection is open.

        Returns:
            A future of the stored bytes (None when the key is absent); it raises
            StoreUnavailableError when the read fails or takes longer than the timeout.
        """
        reads = self._reads
        if reads is not None and reads.usable:
            return asyncio.ensure_future(self._answer(reads, reads.get(self._key)))
        return asyncio.ensure_future(self._open_and_read())

    def close(self) -> None:
        """Close the connection; reads still waiting fail."""
        if self._reads is not None:
            self._reads.close()
            self._reads = None

    async def _open_and_read(self) -> bytes | None:
        client = self._client()
        endpoint = endpoint_of(client)
        if endpoint is None:
            return await self._fallback()
        db = int(client.connection_pool.connection_kwargs.get("db") or 0)
        try:
            async with asyncio.timeout(self._timeout):
                reads = await DirectReads.open(endpoint, db)
        except (TimeoutError, ReadsLostError, OSError) as exc:
            raise self._unavailable(exc) from exc
        current = self._reads
        if self._closed():
            reads.close()
            raise self._unavailable(ReadsLostError("the store was closed"))
        if current is not None and current.usable:
            reads.close()  # another read opened one first
            reads = current
        self._reads = reads
        return await self._answer(reads, reads.get(self._key))

    async def _answer(self, reads: DirectReads, answer: asyncio.Future[Any]) -> bytes | None:
        try:
            async with asyncio.timeout(self._timeout):
                reply = await answer
        except (TimeoutError, ReadsLostError, OSError) as exc:
            # Not used again: a reply that comes late must not answer a later read.
            reads.close()
            raise self._unavailable(exc) from exc
        if reply is not None and not isinstance(reply, bytes):
            raise self._unavailable(ReadsLostError(f"the server answered {type(reply).__name__}, not the stored text"))
        return reply

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        what = f"no answer within {self._timeout:g} s" if isinstance(exc, TimeoutError) else f"{exc}"
        return StoreUnavailableError(self._url, f"reading the policy failed ({what})")
