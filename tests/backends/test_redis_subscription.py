"""The change subscription read straight off its socket, and the connections that keep redis-py's reader."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.connection import Connection, SSLConnection

from policystore.backends import _redis_subscription as subscription_module
from policystore.backends._redis_subscription import Endpoint, Subscription, SubscriptionLostError, endpoint_of
from policystore.backends.base import Published
from policystore.backends.redis import RedisBackend
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy
from support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PASSWORD = "s3cret-pw"  # noqa: S105 - the test server's own


def _version(n: int) -> tuple[dict[str, Any], HistoryEntry]:
    document = default_policy().document() | {"version": n, "active_mode": "DEFENSIVE"}
    return document, HistoryEntry(n, AT, "tester", f"write {n}", (FieldChange("active_mode", "NORMAL", "DEFENSIVE"),))


async def _next(iterator: AsyncIterator[int | Published]) -> int | Published:
    return await asyncio.wait_for(anext(iterator), timeout=10)


async def _commit_version_one(backend: RedisBackend, notices: AsyncIterator[int | Published]) -> Published:
    """Commit version 1 and return its notice (zeros of a subscription still settling are passed over)."""
    await backend.commit(*_version(1))
    while (hint := await _next(notices)) == 0:
        pass
    assert isinstance(hint, Published)
    return hint


async def _commit_and_hear(url: str) -> Published:
    """Open a back end at ``url``, commit version 1 and return the notice its own subscription heard."""
    backend = RedisBackend.from_url(url)
    await backend.connect()
    try:
        notices = backend.notifications()
        assert 0 == await _next(notices)  # subscribed
        return await _commit_version_one(backend, notices)
    finally:
        await backend.close()


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[RedisServer]:
    """A redis-server that wants a password, also listening on a Unix socket."""
    server = RedisServer(options=("--requirepass", PASSWORD))
    socket_path = server.dir / "redis.sock"
    server.options = (*server.options, "--unixsocket", str(socket_path), "--unixsocketperm", "700")
    with server:
        yield server


class TestWhereItConnects:
    """Which connections the direct reader serves."""

    def test_plain_url_endpoint_has_host_port_password(self) -> None:
        """A redis:// client is served directly, with its user and password."""
        client = redis.asyncio.Redis.from_url("redis://alice:pw@db.example:6390/3")
        assert Endpoint("db.example", 6390, None, "alice", "pw") == endpoint_of(client)

    def test_unix_url_endpoint_has_path(self) -> None:
        """A unix:// client is served directly through its socket file."""
        client = redis.asyncio.Redis.from_url("unix:///run/redis.sock?db=2")
        assert Endpoint(None, 0, "/run/redis.sock", None, None) == endpoint_of(client)

    def test_tls_and_custom_connections_keep_redis_py(self) -> None:
        """TLS, a subclass of the connection class, or a credential provider: no direct reader."""

        class Traced(Connection):
            pass

        class Provider:
            def get_credentials(self) -> tuple[str]:
                return ("pw",)

            async def get_credentials_async(self) -> tuple[str]:
                return ("pw",)

        assert endpoint_of(redis.asyncio.Redis.from_url("rediss://db.example:6390/0")) is None
        assert (
            endpoint_of(redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool(connection_class=Traced)))
            is None
        )
        assert endpoint_of(redis.asyncio.Redis(credential_provider=Provider())) is None  # type: ignore[arg-type]
        assert issubclass(SSLConnection, Connection)  # why the check is on the exact class


class TestDirectReader:
    """The direct reader against real servers, and against a server that misbehaves."""

    async def test_password_protected_server_notices_arrive(self, guarded_server: RedisServer) -> None:
        """The reader authenticates with the URL's password, with or without a user name."""
        for userinfo in (f":{PASSWORD}", f"default:{PASSWORD}"):
            url = f"redis://{userinfo}@127.0.0.1:{guarded_server.port}/0?namespace=pw{len(userinfo)}"
            hint = await _commit_and_hear(url)
            assert (1, "DEFENSIVE") == (hint.version, hint.entry.changes[0].new)

    async def test_unix_socket_notices_arrive(self, guarded_server: RedisServer) -> None:
        """The reader connects through a Unix socket file."""
        url = f"unix://:{PASSWORD}@{guarded_server.dir / 'redis.sock'}?namespace=unix"
        assert 1 == (await _commit_and_hear(url)).version

    async def test_wrong_password_yields_zero_not_hang(self, guarded_server: RedisServer) -> None:
        """A refused password is a lost subscription (0, check now), retried, never a hang."""
        backend = RedisBackend.from_url(f"redis://:wrong@127.0.0.1:{guarded_server.port}/0?namespace=wrong")
        notices = backend.notifications()
        try:
            assert 0 == await _next(notices)
            assert 0 == await _next(notices)  # retried, refused again
        finally:
            await backend.close()

    async def test_garbage_from_server_loses_subscription(self) -> None:
        """Bytes that are not the Redis protocol end the subscription with a clear error."""
        with _server_answering(b"this is not redis\r\n") as port:
            subscription = await Subscription.open(Endpoint("127.0.0.1", port, None, None, None), "changes")
            with pytest.raises(SubscriptionLostError, match="not the Redis protocol"):
                await subscription.receive(5)
            await subscription.aclose()

    async def test_message_then_close_raises_lost(self, redis_server: RedisServer) -> None:
        """Messages arrive in order as [kind, channel, data]; after close, receive raises."""
        subscription = await Subscription.open(Endpoint("127.0.0.1", redis_server.port, None, None, None), "chan-x")
        assert [b"subscribe", b"chan-x", 1] == await subscription.receive(5)
        publisher = redis.asyncio.Redis(port=redis_server.port)
        try:
            for data in (b"one", b"two"):
                await publisher.publish("chan-x", data)
        finally:
            await publisher.aclose()
        assert [b"message", b"chan-x", b"one"] == await subscription.receive(5)
        assert [b"message", b"chan-x", b"two"] == await subscription.receive(5)
        await subscription.aclose()
        with pytest.raises(SubscriptionLostError, match="closed"):
            await subscription.receive(5)

    async def test_reader_far_behind_loses_subscription(
        self, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Notices piling up unread drop the connection (the listener then re-reads) instead of growing memory."""
        monkeypatch.setattr(subscription_module, "MAX_QUEUED", 5)
        subscription = await Subscription.open(Endpoint("127.0.0.1", redis_server.port, None, None, None), "pile")
        publisher = redis.asyncio.Redis(port=redis_server.port)
        try:
            assert b"subscribe" == (await subscription.receive(5))[0]
            for n in range(20):
                await publisher.publish("pile", str(n))
            await publisher.ping()  # Redis answers in order: every notice was sent
            await asyncio.sleep(0.2)  # and has had time to arrive, unread

            async def drain() -> None:
                while await subscription.receive(5) is not None:
                    pass

            with pytest.raises(SubscriptionLostError, match="waiting to be read"):
                await drain()
        finally:
            await publisher.aclose()
            await subscription.aclose()

    async def test_nothing_within_wait_returns_none(self, redis_server: RedisServer) -> None:
        """A quiet channel returns None after the wait, and a ping is answered."""
        subscription = await Subscription.open(Endpoint("127.0.0.1", redis_server.port, None, None, None), "quiet")
        try:
            assert b"subscribe" == (await subscription.receive(5))[0]
            assert await subscription.receive(0.05) is None
            await subscription.ping()
            assert [b"pong", b""] == await subscription.receive(5)
        finally:
            await subscription.aclose()


class TestConnectionKilled:
    """The server drops the subscription mid-stream."""

    async def test_client_kill_yields_zero_then_resumes(self, redis_url: str, redis_server: RedisServer) -> None:
        """A subscription killed by the server is a lost one (0, check now); notices flow again after resubscribing."""
        backend = RedisBackend.from_url(redis_url)
        admin = redis.asyncio.Redis(port=redis_server.port)
        try:
            notices = backend.notifications()
            assert 0 == await _next(notices)
            await admin.client_kill_filter(_type="pubsub")
            assert 0 == await _next(notices)  # lost
            while not (await admin.pubsub_numsub(backend.keys.channel))[0][1]:
                assert 0 == await _next(notices)  # retried until subscribed again
            assert 1 == (await _commit_version_one(backend, notices)).version
        finally:
            await admin.aclose()
            await backend.close()


class TestRedisPyReader:
    """Connections the direct reader does not serve still hear every change."""

    async def test_custom_connection_class_notices_arrive(self, redis_url: str) -> None:
        """A caller's client with its own connection class is read through redis-py."""

        class Traced(Connection):
            pass

        base, _, query = redis_url.partition("?")
        client = redis.asyncio.Redis.from_url(base, connection_class=Traced)
        assert endpoint_of(client) is None
        backend = RedisBackend.from_client(client, namespace=query.split("=", 1)[1])
        try:
            notices = backend.notifications()
            assert 0 == await _next(notices)
            assert 1 == (await _commit_version_one(backend, notices)).version
        finally:
            await backend.close()
            await client.aclose()


class _server_answering:  # noqa: N801 - used as a context manager, named for how it reads
    """A loopback server that answers every connection with ``reply`` and keeps it open."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply
        self._listener = socket.socket()
        self._accepted: list[socket.socket] = []

    def __enter__(self) -> int:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()
        return int(self._listener.getsockname()[1])

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        self._accepted.append(connection)
        connection.recv(1024)
        connection.sendall(self._reply)

    def __exit__(self, *_exc: object) -> None:
        for connection in self._accepted:
            connection.close()
        self._listener.close()


class TestWaitsShareATimer:
    """One timer serves wait after wait: a wait still ends at its own time, never sooner."""

    async def test_a_wait_outlives_the_timer_an_earlier_shorter_wait_left(self, redis_server: RedisServer) -> None:
        """A 0.05 s wait answered at once leaves its timer set; the 0.4 s wait after it returns None no sooner."""
        subscription = await Subscription.open(Endpoint("127.0.0.1", redis_server.port, None, None, None), "timers")
        publisher = redis.asyncio.Redis(port=redis_server.port)
        loop = asyncio.get_running_loop()
        try:
            assert b"subscribe" == (await subscription.receive(5))[0]
            await publisher.publish("timers", "now")
            assert [b"message", b"timers", b"now"] == await subscription.receive(0.05)
            started = loop.time()
            assert await subscription.receive(0.4) is None
            assert loop.time() - started >= 0.4
            assert await subscription.receive(0.05) is None  # a shorter wait after a longer one ends on time too
        finally:
            await publisher.aclose()
            await subscription.aclose()
