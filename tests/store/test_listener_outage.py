"""A store whose back end's listener reports the store gone answers stale at once, not at the next safety-net check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from policystore import PolicyStore, StoreUnavailableError
from policystore.backends.base import Published
from policystore.backends.memory import MemoryBackend
from policystore.backends.sqlite import SQLiteBackend
from policystore.store.sources import Source
from policystore.testing import SwitchableBackend, memory_url
from support.waiting import eventually


class _ListenerLosesTheStore(MemoryBackend):
    """A memory back end whose listener fails, as a server's connection does, after a switch is thrown."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gone = asyncio.Event()
        self.reachable = True

    async def current_version(self) -> int:
        if not self.reachable:
            raise StoreUnavailableError(self.url, "the server went away")
        return await super().current_version()

    async def notifications(self) -> AsyncIterator[int | Published]:
        if not self.reachable:
            raise StoreUnavailableError(self.url, "the server went away")
        yield 0
        await self.gone.wait()
        raise StoreUnavailableError(self.url, "the server went away")


class TestListenerOutage:
    async def test_listener_failure_marks_the_store_stale_without_waiting_for_the_safety_net(self) -> None:
        """The listener's own StoreUnavailableError makes answers stale at once (the safety net is an hour away)."""
        backend = _ListenerLosesTheStore(memory_url().removeprefix("memory://"))
        store = await PolicyStore.open(backend, lkg_path=None, refresh_interval=3600)
        try:
            assert Source.STORE == store.source
            backend.reachable = False
            backend.gone.set()
            await eventually(lambda: store.stale, 5.0)
            assert Source.STORE != store.source
        finally:
            await store.close()


class TestOpenedDuringOutage:
    async def test_store_opened_while_unreachable_connects_at_its_first_write_once_reachable(
        self, tmp_path: Path
    ) -> None:
        """A one-shot store (no safety net) opened during an outage connects its SQLite file at the next write."""
        path = tmp_path / "policy.db"
        seeded = await PolicyStore.open(f"sqlite:///{path}", lkg_path=None, watch=False)
        await seeded.close()
        switch = SwitchableBackend(SQLiteBackend(path), available=False)
        store = await PolicyStore.open(switch, lkg_path=None, watch=False)
        try:
            assert store.stale
            switch.set_available(True)
            written = await store.update({"modes.NORMAL.max_positions": 12}, reason="after the outage")
            assert 2 == written.version
            assert 12 == store.get("modes.NORMAL.max_positions")
            assert not store.stale
        finally:
            await store.close()
