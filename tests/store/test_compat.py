"""Code written for the older in-house PolicyStore runs unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policystore import PolicyStore, PolicyStoreError, PolicyValidationError, SyncPolicyStore
from policystore.errors import ClientTypeError
from policystore.testing import memory_store
from support.redis_server import RedisServer
from support.waiting import eventually


class Recorder:
    """An event bus of the older kind: ``publish(topic, payload)``."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.published.append((topic, payload))


@pytest.fixture
def redis_db(redis_server: RedisServer) -> int:
    """A Redis database of its own on the shared server, emptied before use."""
    import redis  # the redis extra: the tests that need it are marked, and skipped in the core-only run

    redis_server.start()  # an earlier test may have stopped it
    db = 3
    redis.Redis(port=redis_server.port, db=db).flushdb()
    return db


@pytest.mark.redis
class TestOlderConstructor:
    """``PolicyStore(redis_client=client, event_bus=bus)``, ``initialize()`` and ``shutdown()``."""

    async def test_redis_client_keyword_initialize_and_shutdown(self, redis_server: RedisServer, redis_db: int) -> None:
        """The keyword form opens on the caller's client, publishes to the bus, and shutdown() closes it."""
        import redis.asyncio

        client = redis.asyncio.Redis(port=redis_server.port, db=redis_db)
        bus = Recorder()
        store = PolicyStore(redis_client=client, event_bus=bus)
        await store.initialize()
        try:
            await store.switch_mode("DEFENSIVE", reason="older code")
            assert (2, "DEFENSIVE") == (store.get("version"), store.get("active_mode"))
            assert ("policy.updated", 2) == (bus.published[0][0], bus.published[0][1]["version"])
        finally:
            await store.shutdown()
        with pytest.raises(RuntimeError):
            await store.initialize()  # shut down for good, as after close()
        assert await client.ping()  # the caller's client is the caller's to close
        await client.aclose()

    def test_synchronous_client_refused_in_one_sentence(self, redis_server: RedisServer) -> None:
        """A redis.Redis passed by mistake names the asyncio client to use, at once."""
        import redis

        client = redis.Redis(port=redis_server.port)
        for make in (lambda: PolicyStore(redis_client=client), lambda: PolicyStore(client)):
            with pytest.raises(ClientTypeError) as caught:
                make()
            assert isinstance(caught.value, TypeError)
            assert isinstance(caught.value, PolicyStoreError)
            assert "redis.asyncio.Redis" == caught.value.expected
            message = str(caught.value)
            assert "redis.asyncio.Redis" in message
            assert (0, True) == (message.count(". "), message.endswith("."))  # one sentence

    def test_synchronous_client_refused_by_the_sync_facade_too(self, redis_server: RedisServer) -> None:
        """SyncPolicyStore raises the same error and leaves no thread behind."""
        import redis

        with pytest.raises(ClientTypeError):
            SyncPolicyStore(redis_client=redis.Redis(port=redis_server.port))


class TestOlderConstructorArguments:
    """Arguments that make no store are refused clearly."""

    def test_both_backend_and_redis_client_refused(self) -> None:
        """Two stores named at once is a validation error naming redis_client."""
        with pytest.raises(PolicyValidationError) as caught:
            PolicyStore("memory://", redis_client=object())
        assert ("redis_client",) == caught.value.paths

    def test_object_that_is_no_client_refused(self) -> None:
        """An object that is neither back end, URL nor client is a ClientTypeError naming what it got."""
        with pytest.raises(ClientTypeError) as caught:
            PolicyStore(redis_client={"host": "localhost"})
        assert "builtins.dict" == caught.value.given


class TestOlderReads:
    """Reads and cache handling as the older store's users wrote them."""

    async def test_active_risk_config_twice_is_the_same_object(self) -> None:
        """With no change in between, get_active_risk_config() returns the very same object."""
        store = await memory_store(watch=True)
        try:
            first = await store.get_active_risk_config()
            assert first is await store.get_active_risk_config()
            await store.switch_mode("DEFENSIVE", reason="calm")
            assert 3.0 == (await store.get_active_risk_config()).max_leverage
        finally:
            await store.close()

    @pytest.mark.parametrize("watch", [True, False], ids=["following", "one-shot"])
    async def test_dropping_the_cache_by_hand_is_harmless(self, tmp_path: Path, watch: bool) -> None:
        """``store._cache = None`` and ``store._cache_timestamp = None`` are accepted; reads stay right."""
        url = f"sqlite:///{tmp_path}/policy.db"
        store = await PolicyStore.open(url, watch=watch)
        other = await PolicyStore.open(url, watch=False)
        try:
            store._cache = None
            store._cache_timestamp = None
            assert (1, 5.0) == (store.get("version"), store.get("risk.max_leverage"))
            assert 1 == (await store.get_policy()).version
            assert 5.0 == (await store.get_active_risk_config()).max_leverage
            await other.switch_mode("DEFENSIVE", reason="from elsewhere")
            # Dropping the cache asks the next async read to check the store, following or not.
            store._cache = None
            assert "DEFENSIVE" == (await store.get_policy()).active_mode
            assert 3.0 == (await store.get_active_risk_config()).max_leverage
            assert 2 == await store.get_value("version")
            await other.switch_mode("NORMAL", reason="and back")
            if watch:
                await eventually(lambda: store.get("version") == 3)  # later changes still arrive
                assert "NORMAL" == (await store.get_policy()).active_mode
        finally:
            await other.close()
            await store.close()
