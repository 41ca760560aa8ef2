"""Opening a store: without creating one, with the SQLite file private to its owner, and a damaged history."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import uuid
from pathlib import Path

import pytest

from policystore import PolicyStore, Source, StoreUnavailableError, SyncPolicyStore
from policystore.backends.memory import MemoryBackend
from policystore.store.store import NO_POLICY_REASON
from policystore.testing import SwitchableBackend
from support.redis_server import RedisServer


def files_under(folder: Path) -> list[str]:
    """Every file and folder below ``folder``, relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def file_modes(folder: Path) -> dict[str, int]:
    """The permission bits of every file in ``folder``, by name."""
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


class TestOpenWithoutCreating:
    """``create=False``: a store that holds no policy is an error and nothing at all is written."""

    async def test_sqlite_no_file_refused_and_neither_file_nor_folder_created(self, tmp_path: Path) -> None:
        """No file at the path: initialize raises, naming 'policystore init'; no file, folder or copy appears."""
        folder = tmp_path / "not-yet"
        with pytest.raises(StoreUnavailableError) as caught:
            await PolicyStore.open(f"sqlite:///{folder}/policy.db", create=False)
        assert NO_POLICY_REASON == caught.value.reason
        assert "policystore init" in str(caught.value)
        assert [] == files_under(tmp_path)

    async def test_sqlite_file_without_a_store_refused_and_left_as_it_was(self, tmp_path: Path) -> None:
        """A file that holds no policy tables is no store: refused, and its bytes are not touched."""
        db = tmp_path / "other.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE unrelated (x)")
        conn.close()
        before = db.read_bytes()
        with pytest.raises(StoreUnavailableError) as caught:
            await PolicyStore.open(f"sqlite:///{db}", create=False)
        assert NO_POLICY_REASON == caught.value.reason
        assert before == db.read_bytes()
        assert ["other.db"] == files_under(tmp_path)

    async def test_memory_empty_store_refused(self) -> None:
        """An empty memory store (version 0) is not seeded."""
        backend = MemoryBackend(f"nocreate-{uuid.uuid4().hex}")
        store = PolicyStore(backend, create=False, lkg_path=None)
        with pytest.raises(StoreUnavailableError) as caught:
            await store.initialize()
        await store.close()
        assert NO_POLICY_REASON == caught.value.reason
        assert 0 == await backend.current_version()

    @pytest.mark.redis
    async def test_redis_empty_namespace_refused_and_no_key_written(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """A real Redis with nothing in the namespace: refused; no key and no last-known-good copy appear."""
        import redis.asyncio  # the redis extra: the test is marked, and skipped in the core-only run

        redis_server.start()  # an earlier test may have stopped it
        namespace = f"nocreate-{uuid.uuid4().hex}"
        with pytest.raises(StoreUnavailableError) as caught:
            await PolicyStore.open(redis_server.url(namespace=namespace), create=False)
        client = redis.asyncio.Redis(port=redis_server.port)
        try:
            keys = [key async for key in client.scan_iter(match=f"policystore:{namespace}:*")]
        finally:
            await client.aclose()
        assert (NO_POLICY_REASON, []) == (caught.value.reason, keys)
        assert [] == files_under(tmp_path / "cache")

    async def test_existing_store_opens_with_create_false(self, store_url: str) -> None:
        """A store that holds a policy opens as usual, on every back end."""
        first = await PolicyStore.open(store_url)
        await first.switch_mode("DEFENSIVE", reason="calm")
        again = await PolicyStore.open(store_url, create=False)
        try:
            assert (2, "DEFENSIVE", Source.STORE) == (again.get("version"), again.get("active_mode"), again.source)
        finally:
            await again.close()
            await first.close()

    async def test_unreachable_store_still_opens_stale(self) -> None:
        """A store that cannot be reached at all is an outage, not an absence: it opens stale."""
        backend = SwitchableBackend(MemoryBackend(f"nocreate-{uuid.uuid4().hex}"), available=False)
        store = PolicyStore(backend, create=False, lkg_path=None)
        await store.initialize()
        try:
            assert (True, Source.DEFAULT) == (store.stale, store.source)
        finally:
            await store.close()

    def test_sync_facade_takes_create_false(self, tmp_path: Path) -> None:
        """SyncPolicyStore.open passes create=False through and stops its thread when refused."""
        with pytest.raises(StoreUnavailableError):
            SyncPolicyStore.open(f"sqlite:///{tmp_path}/missing/policy.db", create=False)
        assert [] == files_under(tmp_path)
        assert not [t for t in threading.enumerate() if t.name == "policystore-sync"]


class TestSQLiteFileMode:
    """The SQLite file holds token hashes: a new one is readable by its owner only."""

    async def test_new_database_and_its_wal_and_shm_created_0600(self, tmp_path: Path) -> None:
        """The file, and the -wal and -shm files SQLite adds beside it, are created with mode 0600."""
        db = tmp_path / "policy.db"
        store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=None)
        try:
            await store.switch_mode("DEFENSIVE", reason="calm")
            modes = file_modes(tmp_path)
        finally:
            await store.close()
        assert {"policy.db", "policy.db-wal", "policy.db-shm"} <= set(modes)
        assert {0o600} == {modes[name] for name in ("policy.db", "policy.db-wal", "policy.db-shm")}

    async def test_existing_database_keeps_the_mode_its_owner_gave_it(self, tmp_path: Path) -> None:
        """A file the user made (here 0640) is not chmodded."""
        db = tmp_path / "policy.db"
        sqlite3.connect(db).close()
        db.chmod(0o640)
        store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=None)
        await store.close()
        assert 0o640 == stat.S_IMODE(db.stat().st_mode)


class TestSQLiteDamagedHistory:
    """A malformed history entry is a damaged store (503), as with Redis, not an uncaught error (500)."""

    @pytest.mark.parametrize(
        "entry",
        ["not json", json.dumps([1, 2]), json.dumps({"version": 2}), json.dumps({"version": 7, "at": "x"})],
        ids=["not-json", "a-list", "missing-fields", "bad-time"],
    )
    async def test_malformed_entry_raises_store_unavailable_naming_it(self, tmp_path: Path, entry: str) -> None:
        """history() and the replay of missed versions raise StoreUnavailableError naming the entry."""
        db = tmp_path / "policy.db"
        store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=None, watch=False)
        try:
            await store.switch_mode("DEFENSIVE", reason="calm")
            with sqlite3.connect(db) as conn:
                conn.execute("UPDATE policy_versions SET entry = ? WHERE version = 2", (entry,))
            conn.close()
            for read in (store.history(), store.backend.entries(1, 2)):
                with pytest.raises(StoreUnavailableError) as caught:
                    await read
                assert "history entry 2" in caught.value.reason
        finally:
            await store.close()
