"""A memory store in one line: seeded, private unless named, leaving nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from policystore import Actor, Role, Source
from policystore.testing import memory_store, memory_url, sync_memory_store
from support.waiting import eventually


class TestMemoryUrl:
    """memory_url names a store."""

    def test_memory_url_new_each_call(self) -> None:
        """Without a name, each call names a store of its own."""
        first, second = memory_url(), memory_url()
        assert first.startswith("memory://test-")
        assert first != second

    def test_memory_url_with_name_is_that_store(self) -> None:
        """With a name, the URL is that name's store."""
        assert "memory://orders" == memory_url("orders")


class TestMemoryStore:
    """memory_store opens a seeded store with test defaults."""

    async def test_memory_store_opens_seeded_live_at_version_one(self) -> None:
        """The store holds the built-in policy at version 1, live, and writes at once."""
        store = await memory_store()
        try:
            assert (1, "NORMAL", Source.STORE, False) == (
                store.get("version"),
                store.get("active_mode"),
                store.source,
                store.stale,
            )
            await store.switch_mode("DEFENSIVE", reason="calm")
            assert 3.0 == store.get("risk.max_leverage")
        finally:
            await store.close()

    async def test_memory_stores_without_name_share_nothing(self) -> None:
        """A write through one store is not in another opened the same way."""
        async with await memory_store() as first, await memory_store() as second:
            await first.switch_mode("DEFENSIVE", reason="calm")
            assert (2, 1) == (first.get("version"), second.get("version"))

    async def test_memory_stores_on_one_name_share_the_store(self) -> None:
        """Stores opened on one name share it; with watch=True one hears the other's writes."""
        name = memory_url().removeprefix("memory://")
        async with await memory_store(name) as writer, await memory_store(name, watch=True) as follower:
            await writer.switch_mode("DEFENSIVE", reason="calm")
            await eventually(lambda: 2 == follower.get("version"))
            assert "DEFENSIVE" == follower.get("active_mode")

    async def test_memory_store_options_win_over_defaults(self) -> None:
        """Keyword arguments reach PolicyStore and replace the test defaults."""
        async with await memory_store(actor=Actor("vera", Role.VIEWER), watch=True) as store:
            assert "vera" == store.actor.name

    async def test_memory_store_leaves_no_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """No last-known-good file or anything else is written, here or in the cache folder."""
        monkeypatch.chdir(tmp_path)
        async with await memory_store() as store:
            await store.switch_mode("DEFENSIVE", reason="calm")
        assert [] == await asyncio.to_thread(lambda: list(tmp_path.rglob("*")))


class TestSyncMemoryStore:
    """sync_memory_store: the same for code without an event loop."""

    def test_sync_memory_store_reads_and_writes_without_a_loop(self) -> None:
        """The facade opens seeded, writes and closes, with no event loop of the caller's."""
        store = sync_memory_store()
        try:
            store.set_emergency_mode(True, reason="halt")
            assert (2, False) == (store.get("version"), store.can_open_new_trades())
        finally:
            store.close()
