"""The change subscription, read straight off its socket.

Every process on a host wakes for every change, so whatever one message costs
is paid once per process. redis-py's pub/sub reader costs more per message than
everything the store then does with the notice: it wakes a task per read, builds
a dict per message and (redis-py 8) formats every message, document included,
for a debug log. This reader hands each reply to the listener as hiredis parses
it from the bytes the event loop received.

It serves plain TCP and Unix-socket connections, with or without a password.
Anything else (TLS, Sentinel, a credential provider, a caller's own connection
class) keeps redis-py's reader: :func:`endpoint_of` returns None for those.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

__all__ = ["Endpoint", "RedisPyReplies", "Replies", "Subscription", "SubscriptionLostError", "command", "endpoint_of"]

#: Replies received and not yet taken before the connection is dropped as too slow: the
#: listener re-reads the store, which loses nothing, instead of memory growing without
#: bound (Redis itself cuts off a pub/sub client that falls this far behind).
MAX_QUEUED: Final = 10_000


class SubscriptionLostError(ConnectionError):
    """The subscription's connection closed, or the server sent something it should not have."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom a subscription connects.

    Attributes:
        host: the server's host name (TCP), or None.
        port: its port (TCP).
        path: the server's socket file (Unix), or None.
        username: the ACL user, or None for the default user.
        password: the password, or None for none; never part of the repr.
    """

    host: str | None
    port: int
    path: str | None
    username: str | None
    password: str | None = field(repr=False)


def endpoint_of(client: Redis) -> Endpoint | None:
    """Return where ``client`` connects, when this reader can connect there too; otherwise None."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if kwargs.get("credential_provider") is not None:
        return None
    username, password = kwargs.get("username"), kwargs.get("password")
    # Exact classes: a subclass (TLS, Sentinel, a caller's own) may connect another way.
    if pool.connection_class is Connection:
        return Endpoint(str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379)), None, username, password)
    if pool.connection_class is UnixDomainSocketConnection and kwargs.get("path"):
        return Endpoint(None, 0, str(kwargs["path"]), username, password)
    return None


def command(*words: str | bytes) -> bytes:
    """Encode one command in the Redis protocol (RESP)."""
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Subscription(asyncio.Protocol):
    """One connection subscribed to one channel; :meth:`receive` returns its replies in order.

    Build one with :meth:`open`. Replies are parsed as they arrive, in the
    event loop's read callback, and queued; a reader waiting in
    :meth:`receive` is woken by the first one.
    """

    def __init__(self) -> None:
        self._parser = hiredis.Reader()
        self._replies: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: SubscriptionLostError | None = None
        self._transport: asyncio.Transport | None = None
        #: When the wait in progress (or the last one) runs out, by the loop's clock, and the
        #: timer that ends it: one timer serves wait after wait until a deadline passes, rather
        #: than one made and cancelled for every reply (every process wakes for every change).
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, channel: str) -> Subscription:
        """Connect to ``endpoint``, authenticate if it has a password, and subscribe to ``channel``.

        The confirmations come later through :meth:`receive`: ``OK`` for the
        password, then ``["subscribe", channel, 1]``. Bound the call with a
        timeout: connecting does not time out by itself.

        Raises:
            OSError: the connection could not be made.
        """
        loop = asyncio.get_running_loop()
        if endpoint.path is not None:
            _, protocol = await loop.create_unix_connection(cls, endpoint.path)
        else:
            _, protocol = await loop.create_connection(cls, endpoint.host or "localhost", endpoint.port)
        if endpoint.password:  # as redis-py: an empty password means none
            # The default user by password alone, which servers before Redis 6 also accept.
            named = endpoint.username not in {None, "", "default"}
            protocol.send("AUTH", *((endpoint.username or "", endpoint.password) if named else (endpoint.password,)))
        protocol.send("SUBSCRIBE", channel)
        return protocol

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - create_connection gives a stream transport
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        parser, replies = self._parser, self._replies
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not False:
                replies.append(reply)
        except hiredis.ProtocolError as exc:
            self._abort(SubscriptionLostError(f"the server sent something that is not the Redis protocol ({exc})"))
            return
        if len(replies) > MAX_QUEUED:
            replies.clear()  # too far behind to catch up by reading: the listener re-reads the store
            self._abort(SubscriptionLostError(f"more than {MAX_QUEUED} notices were waiting to be read"))
        elif replies:
            self._wake()  # not for part of a reply: receive() waits for whole ones

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SubscriptionLostError(f"the connection closed ({exc or 'by the server'})"))

    # -- use ---------------------------------------------------------------------

    def send(self, *words: str | bytes) -> None:
        """Send one command.

        Raises:
            SubscriptionLostError: the connection is gone.
        """
        if self._lost is not None or self._transport is None:
            raise self._lost or SubscriptionLostError("not connected")
        self._transport.write(command(*words))

    async def ping(self) -> None:
        """Ask the server for a sign of life; it answers ``["pong", b""]`` through :meth:`receive`."""
        self.send("PING")

    async def receive(self, within: float) -> Any:
        """Return the next reply, or None when none came within ``within`` seconds.

        Replies that arrived before the connection was lost are returned first.

        Raises:
            SubscriptionLostError: the connection is gone and every reply was returned.
        """
        if not self._replies and self._lost is None:
            loop = asyncio.get_running_loop()
            self._deadline = deadline = loop.time() + within
            timer = self._timer
            if timer is not None and timer.when() > deadline:
                timer.cancel()  # set for a longer wait: this one ends sooner
                timer = None
            if timer is None:
                self._timer = loop.call_at(deadline, self._time_up)
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self._replies:
            return self._replies.popleft()
        if self._lost is not None:
            raise self._lost
        return None

    async def aclose(self) -> None:
        """Close the connection; a waiting :meth:`receive` raises SubscriptionLostError."""
        self._abort(SubscriptionLostError("the subscription was closed"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _time_up(self) -> None:
        """The timer ran out: end the wait in progress if its deadline passed, else wait on until it does."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._time_up)
            return
        self._timer = None
        self._wake()

    def _abort(self, error: SubscriptionLostError) -> None:
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: SubscriptionLostError) -> None:
        if self._lost is None:
            self._lost = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            _settle(waiter)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Replies(Protocol):
    """What the listener reads one subscription through."""

    async def receive(self, within: float) -> Any:
        """Return the next reply (``[kind, channel, data]`` for a message), or None after ``within`` seconds."""

    async def ping(self) -> None:
        """Ask for a sign of life."""

    async def aclose(self) -> None:
        """Close the subscription."""


class RedisPyReplies:
    """redis-py's pub/sub reader, for the connections :class:`Subscription` does not serve.

    Args:
        pubsub: a subscribed ``redis.asyncio.client.PubSub``.
    """

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def receive(self, within: float) -> Any:
        """Return the next reply as ``[kind, channel, data]``, or None after ``within`` seconds.

        Raises:
            SubscriptionLostError: a decoding client could not decode a notice.
        """
        try:
            message = await self._pubsub.get_message(timeout=within)
        except UnicodeDecodeError as exc:
            # A decoding client met bytes that are not text (policystore publishes only UTF-8): the
            # notice is lost, so the subscription is dropped and the listener re-reads the store.
            raise SubscriptionLostError(f"a notice was not UTF-8 text ({exc.reason})") from exc
        if message is None:
            return None
        return [message.get("type"), message.get("channel"), message.get("data")]

    async def ping(self) -> None:
        """Ask for a sign of life."""
        await self._pubsub.ping()

    async def aclose(self) -> None:
        """Close the subscription and its connection."""
        await self._pubsub.aclose()
