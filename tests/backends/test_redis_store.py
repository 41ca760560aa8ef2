"""PolicyStore on Redis: outages, lost notices, corrupt data, namespaces and the client form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.connection import Connection

from policystore.backends.base import Published
from policystore.backends.redis import RedisBackend
from policystore.errors import StoreUnavailableError
from policystore.model.events import EventType
from policystore.model.history import FieldChange, HistoryEntry
from policystore.server.tokens import TokenStore
from policystore.store.sources import Source
from policystore.store.store import PolicyStore

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


async def eventually(condition: Callable[[], bool], what: str, deadline: float = 15.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            pytest.fail(f"{what} did not happen within {deadline} s")
        await asyncio.sleep(0.01)


def _backend(store: PolicyStore) -> RedisBackend:
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    return backend


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[PolicyStore]:
    store = await PolicyStore.open(redis_url, refresh_interval=3600)
    yield store
    await store.close()


@pytest.fixture
async def raw(redis_server: Any) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis(port=redis_server.port)
    yield client
    await client.aclose()


async def _write_without_publish(raw: redis.asyncio.Redis, backend: RedisBackend, mode: str) -> int:
    """Commit the next version through the keys but publish nothing, as if the notice were lost."""
    document = json.loads(await raw.get(backend.keys.document))
    version = document["version"] + 1
    entry = HistoryEntry(
        version,
        datetime.now(UTC),
        "direct",
        "notice lost",
        (FieldChange("active_mode", document["active_mode"], mode),),
    )
    document |= {"version": version, "active_mode": mode}
    async with raw.pipeline(transaction=True) as pipe:
        pipe.set(backend.keys.document, json.dumps(document))
        pipe.hset(backend.keys.documents, str(version), json.dumps(document))
        pipe.hset(backend.keys.history, str(version), json.dumps(entry.to_dict()))
        pipe.set(backend.keys.version, version)
        await pipe.execute()
    return version


class TestLostNotice:
    """A version whose pub/sub notice never arrived is still found."""

    async def test_unpublished_version_found_by_refresh(self, store: PolicyStore, raw: redis.asyncio.Redis) -> None:
        """refresh() compares versions and installs the unannounced one."""
        version = await _write_without_publish(raw, _backend(store), "DEFENSIVE")
        await store.refresh()
        assert (version, "DEFENSIVE") == (store.snapshot().version, store.get("active_mode"))

    async def test_unpublished_version_found_by_safety_net(self, redis_url: str, raw: redis.asyncio.Redis) -> None:
        """The periodic version check installs it and replays its events."""
        store = await PolicyStore.open(redis_url, refresh_interval=0.2)
        events = store.watch()
        try:
            version = await _write_without_publish(raw, _backend(store), "DEFENSIVE")
            event = await asyncio.wait_for(anext(events), timeout=15)
            assert (version, "notice lost") == (event.version, event.reason)
            assert "DEFENSIVE" == store.get("active_mode")
        finally:
            await store.close()


class TestOutage:
    """Redis down, then back."""

    async def test_down_reads_stale_writes_fail_then_converge(
        self, store: PolicyStore, redis_url: str, redis_server: Any
    ) -> None:
        """Reads answer from the last-known-good copy, writes fail, and the store catches up on return."""
        await store.switch_mode("DEFENSIVE", reason="before the outage")
        redis_server.kill9()

        with pytest.raises(StoreUnavailableError):
            await store.refresh()
        stale = store.explain("active_mode")
        assert (Source.LAST_KNOWN_GOOD, True, "DEFENSIVE", 2) == (stale.source, stale.stale, stale.value, stale.version)
        with pytest.raises(StoreUnavailableError):
            await store.switch_mode("NORMAL", reason="during the outage")
        assert await store.can_open_new_trades()

        redis_server.start()
        other = await PolicyStore.open(redis_url, watch=False, lkg_path=None)
        await other.set_emergency_mode(True, reason="written elsewhere after the restart")
        await other.close()
        await eventually(lambda: store.snapshot().version == 3 and not store.stale, "reconverging to version 3")
        live = store.explain("emergency.active")
        assert (Source.STORE, False, True) == (live.source, live.stale, live.value)
        assert not await store.can_open_new_trades()

    async def test_kill9_after_acknowledged_writes_loses_nothing(
        self, store: PolicyStore, redis_url: str, redis_server: Any
    ) -> None:
        """Every acknowledged write survives kill -9 (appendfsync always), and writing resumes."""
        modes = ["DEFENSIVE", "NORMAL"] * 10
        for number, mode in enumerate(modes):
            await store.switch_mode(mode, reason=f"write {number}")
        expected = store.snapshot().document()
        redis_server.kill9()
        redis_server.start()

        reopened = await PolicyStore.open(redis_url, watch=False, lkg_path=None)
        try:
            assert expected == reopened.snapshot().document()
            history = await reopened.history(limit=100)
            assert list(range(21, 0, -1)) == [e.version for e in history]
            assert [f"write {n}" for n in range(20)] == [e.reason for e in reversed(history[:-1])]
            await reopened.switch_mode("DEFENSIVE", reason="after the restart")
            assert 22 == reopened.snapshot().version
        finally:
            await reopened.close()


class TestCorruptDocument:
    """Garbage written into the document key by something other than policystore."""

    async def test_garbage_document_keeps_last_good_then_recovers(
        self, store: PolicyStore, raw: redis.asyncio.Redis
    ) -> None:
        """Readers keep the last good version, writes fail clearly, and a repaired store is followed again."""
        await store.switch_mode("DEFENSIVE", reason="last good")
        backend = _backend(store)
        good = await raw.get(backend.keys.document)
        await raw.set(backend.keys.document, b"{this is not json")
        await raw.set(backend.keys.version, 3)
        await raw.publish(backend.keys.channel, b"garbage notice")

        await eventually(lambda: store.stale, "going stale on the corrupt document")
        assert (2, "DEFENSIVE", Source.LAST_KNOWN_GOOD) == (
            store.snapshot().version,
            store.get("active_mode"),
            store.source,
        )
        with pytest.raises(StoreUnavailableError, match="not valid JSON"):
            await store.switch_mode("NORMAL", reason="on top of garbage")

        repaired = json.loads(good) | {"version": 3, "active_mode": "NORMAL"}
        entry = HistoryEntry(
            3, datetime.now(UTC), "operator", "repair", (FieldChange("active_mode", "DEFENSIVE", "NORMAL"),)
        )
        await raw.hset(backend.keys.history, "3", json.dumps(entry.to_dict()))
        await raw.hset(backend.keys.documents, "3", json.dumps(repaired))
        await raw.set(backend.keys.document, json.dumps(repaired))
        await raw.publish(backend.keys.channel, json.dumps({"version": 3}))
        await eventually(lambda: not store.stale, "following the repaired store")
        assert (3, "NORMAL") == (store.snapshot().version, store.get("active_mode"))

    async def test_invalid_policy_refused_keeps_last_good(self, store: PolicyStore, raw: redis.asyncio.Redis) -> None:
        """A well-formed document that breaks the policy's rules is refused, announced, and not installed."""
        await store.switch_mode("DEFENSIVE", reason="last good")
        events = store.watch()
        backend = _backend(store)
        document = json.loads(await raw.get(backend.keys.document))
        document["version"] = 3
        document["modes"]["NORMAL"]["max_positions"] = 0  # below the minimum of 1
        entry = HistoryEntry(3, datetime.now(UTC), "intruder", "out of range", ())
        async with raw.pipeline(transaction=True) as pipe:
            pipe.set(backend.keys.document, json.dumps(document))
            pipe.hset(backend.keys.documents, "3", json.dumps(document))
            pipe.hset(backend.keys.history, "3", json.dumps(entry.to_dict()))
            pipe.set(backend.keys.version, 3)
            pipe.publish(backend.keys.channel, json.dumps({"version": 3}))
            await pipe.execute()

        event = await asyncio.wait_for(anext(events), timeout=15)
        assert (EventType.REJECTED, 3) == (event.type, event.version)
        assert "modes.NORMAL.max_positions" in event.reason
        assert (2, "DEFENSIVE", Source.LAST_KNOWN_GOOD) == (
            store.snapshot().version,
            store.get("active_mode"),
            store.source,
        )
        with pytest.raises(StoreUnavailableError, match="invalid and was refused"):
            await store.refresh()
        assert 2 == store.snapshot().version


class TestNamespaces:
    """Several policies in one Redis."""

    async def test_two_namespaces_isolated(self, redis_server: Any) -> None:
        """Writes, history and notices of one namespace never reach the other."""
        one = await PolicyStore.open(redis_server.url(namespace="acct1-iso"), refresh_interval=3600)
        two = await PolicyStore.open(redis_server.url(namespace="acct2-iso"), refresh_interval=3600)
        try:
            for number in range(4):
                await two.update({"strategies.moderate.cooldown_seconds": 10 + number}, reason="ahead")
            notices = _backend(two).notifications()
            assert 0 == await asyncio.wait_for(anext(notices), timeout=10)
            await one.switch_mode("DEFENSIVE", reason="only acct1")
            await two.update({"strategies.moderate.cooldown_seconds": 99}, reason="acct2 again")
            hint = await asyncio.wait_for(anext(notices), timeout=10)
            assert isinstance(hint, Published)
            assert 6 == hint.version
            assert (2, "DEFENSIVE") == (one.snapshot().version, one.get("active_mode"))
            assert (6, "NORMAL") == (two.snapshot().version, two.get("active_mode"))
            assert [2, 1] == [e.version for e in await one.history()]
            await notices.aclose()
        finally:
            for store in (one, two):
                await _backend(store).close()
                await store.close()


class Recorder:
    """A system event bus that keeps what it is given."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.published.append((topic, payload))


class TestClientForm:
    """``PolicyStore(redis_client, event_bus=bus)``, the older constructor."""

    async def test_client_and_bus_publishes_own_writes(self, redis_server: Any) -> None:
        """A store built on a Redis client works and publishes its writes' events to the bus."""
        client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=1)
        await client.flushdb()
        bus = Recorder()
        store = PolicyStore(client, event_bus=bus)
        await store.initialize()
        try:
            await store.switch_mode("DEFENSIVE", reason="client form")
            await store.set_emergency_mode(True, reason="client form")
            topics = [(topic, payload["version"]) for topic, payload in bus.published]
            expected = [
                ("policy.updated", 2),
                ("policy.mode.changed", 2),
                ("policy.updated", 3),
                ("policy.emergency", 3),
            ]
            assert expected == topics
            assert "policystore:default:version" == _backend(store).keys.version
            assert b"3" == await client.get("policystore:default:version")
        finally:
            await store.close()
        assert await client.ping()  # the caller's client stays open
        await client.flushdb()
        await client.aclose()


class _OwnConnection(Connection):
    """A caller's own connection class, read through redis-py's pub/sub reader."""


class TestDecodingClient:
    """A ``redis.asyncio.Redis`` made with ``decode_responses=True`` works exactly as one made without it."""

    @pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoding"])
    @pytest.mark.parametrize("reader", ["direct", "redis-py"])
    async def test_client_store_reads_writes_history_notices_and_tokens(
        self, redis_url: str, decode: bool, reader: str
    ) -> None:
        """PolicyStore(client): reads, writes, history, following another process's writes, and token checks."""
        base, _, query = redis_url.partition("?")
        namespace = query.removeprefix("namespace=")
        options: dict[str, Any] = {"decode_responses": decode}
        if reader == "redis-py":
            options["connection_class"] = _OwnConnection
        client = redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool.from_url(base, **options))
        store = PolicyStore(RedisBackend.from_client(client, namespace=namespace), refresh_interval=3600)
        await store.initialize()
        other = await PolicyStore.open(redis_url, refresh_interval=3600, lkg_path=None)
        heard: list[tuple[str, int]] = []
        store.subscribe(lambda event: heard.append((event.type.value, event.version)))
        try:
            assert (1, False, 5.0) == (store.snapshot().version, store.stale, store.get("risk.max_leverage"))
            await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="own write")
            await other.switch_mode("DEFENSIVE", reason="another process")
            await eventually(lambda: store.snapshot().version == 3, "the other process's write to arrive")
            history = await store.history(10)
            secret = await TokenStore(store.backend).create("desk-1", "operator")
            record = await TokenStore(store.backend).authenticate(secret)
        finally:
            await other.close()
            await store.close()
            await client.aclose()

        assert ("DEFENSIVE", 3.0) == (store.snapshot().active_mode, store.get("risk.max_leverage"))
        assert ("policy.updated", 3) in heard
        assert [(3, "another process"), (2, "own write"), (1, "initial policy")] == [
            (e.version, e.reason) for e in history
        ]
        assert record is not None
        assert ("desk-1", "operator") == (record.name, record.role.value)


class TestFollowingByNotice:
    """A follower installs each version from its notice, whatever part of the policy it changes."""

    async def test_mixed_changes_follower_matches_writer_with_events(self, redis_url: str) -> None:
        """Mode switches (compared line by line) and other changes (validated in full) alternate; nothing drifts."""
        writer = await PolicyStore.open(redis_url, watch=False, lkg_path=None)
        follower = await PolicyStore.open(redis_url, refresh_interval=3600, lkg_path=None)
        heard: list[tuple[int, str]] = []
        try:
            writes: list[Callable[[], Any]] = [
                lambda: writer.switch_mode("DEFENSIVE", reason="calm"),
                lambda: writer.update({"modes.NORMAL.max_leverage": 2.5}, reason="tighten"),
                lambda: writer.switch_mode("NORMAL", reason="back"),
                lambda: writer.set_emergency_mode(True, reason="halt"),
                lambda: writer.switch_mode("AGGRESSIVE_SMALL_ACCOUNT", reason="try"),
            ]
            for n, write in enumerate(writes):
                if n == 2:  # a subscriber from here on: events carry the published entries
                    follower.subscribe(lambda event: heard.append((event.version, event.reason)))
                await write()
                version = writer.snapshot().version
                await eventually(lambda v=version: follower.snapshot().version == v, f"version {version} reached")
                assert writer.snapshot().document() == follower.snapshot().document()
                assert writer.get("risk.max_leverage") == follower.get("risk.max_leverage")
            # One version may make several events (a mode change and an update); each names its version.
            assert list(dict.fromkeys(heard)) == [
                (4, "back"),
                (5, "halt"),
                (6, "try"),
            ]
        finally:
            await follower.close()
            await writer.close()

    async def test_notice_with_bad_entry_reread_for_subscriber(
        self, store: PolicyStore, raw: redis.asyncio.Redis
    ) -> None:
        """A notice whose entry is unreadable is not installed from; the version is read back, events and all."""
        heard: list[str] = []
        store.subscribe(lambda event: heard.append(event.reason))
        backend = _backend(store)
        version = await _write_without_publish(raw, backend, "DEFENSIVE")
        document = await raw.get(backend.keys.document)
        await raw.publish(backend.keys.channel, b'{"version": %d, "entry": {"version": x}}\n' % version + document)
        await eventually(lambda: store.snapshot().version == version, "the version read back")
        assert "DEFENSIVE" == store.get("active_mode")
        await eventually(lambda: "notice lost" in heard, "the stored entry's event")
