"""One event per change: listeners hear ``policy.updated`` once per version unless they ask for other kinds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from policystore import EventType, PolicyChanged, PolicyStore, PolicyValidationError, SyncPolicyStore
from policystore.backends.memory import MemoryBackend
from policystore.testing import memory_url
from support.waiting import eventually


class Recorder:
    """An external event bus: every topic and payload it is given."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.published.append((topic, payload))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[PolicyStore]:
    """A freshly opened store of each back end."""
    opened = await PolicyStore.open(store_url)
    yield opened
    await opened.close()


async def three_changes(store: PolicyStore) -> None:
    """A limit change, a mode switch and the kill switch turned on: versions 2, 3 and 4."""
    await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="tune", updated_by="ann")
    await store.switch_mode("DEFENSIVE", reason="calm", updated_by="bob")
    await store.set_emergency_mode(True, reason="halt", updated_by="cat")


class TestOneEventPerChange:
    """Without ``types=``, each change arrives once; ``types=`` gives exactly the kinds named."""

    async def test_subscribe_default_hears_each_change_once(self, store: PolicyStore) -> None:
        """A mode switch and a kill switch are one policy.updated event each, not two events."""
        seen: list[PolicyChanged] = []
        store.subscribe(seen.append)
        await three_changes(store)
        await store.update({"modes.NORMAL.max_positions": 20}, reason="a fence", updated_by="dan")
        await eventually(lambda: any(e.version == 5 for e in seen))  # events arrive in version order
        assert [(v, EventType.UPDATED) for v in (2, 3, 4, 5)] == [(e.version, e.type) for e in seen]
        assert {"active_mode": "DEFENSIVE"} == seen[1].new

    async def test_watch_default_yields_each_change_once(self, store: PolicyStore) -> None:
        """watch() without types yields one event per version."""
        events = store.watch()
        await three_changes(store)
        received = [await asyncio.wait_for(anext(events), timeout=10) for _ in range(3)]
        assert [2, 3, 4] == [e.version for e in received]
        assert {EventType.UPDATED} == {e.type for e in received}

    async def test_subscribe_types_delivers_exactly_those_kinds(self, store: PolicyStore) -> None:
        """Asked for mode switches (by value) and the kill switch (by kind), a listener hears only those."""
        seen: list[PolicyChanged] = []
        store.subscribe(seen.append, types=["policy.mode.changed", EventType.EMERGENCY])
        await three_changes(store)
        await eventually(lambda: len(seen) >= 2)
        assert [(3, EventType.MODE_CHANGED), (4, EventType.EMERGENCY)] == [(e.version, e.type) for e in seen]

    async def test_watch_types_single_kind_as_a_string(self, store: PolicyStore) -> None:
        """A single string counts as a list of one."""
        events = store.watch(types="policy.emergency")
        await three_changes(store)
        event = await asyncio.wait_for(anext(events), timeout=10)
        assert (4, EventType.EMERGENCY) == (event.version, event.type)

    async def test_unknown_type_refused_naming_types(self, store: PolicyStore) -> None:
        """A kind that does not exist is a validation error, not a listener that never hears anything."""
        for call in (lambda: store.subscribe(print, types=["policy.mode_changed"]), lambda: store.watch(types=["x"])):
            with pytest.raises(PolicyValidationError) as caught:
                call()
            assert ("types",) == caught.value.paths

    async def test_trading_state_change_heard_as_its_kind_and_once_by_default(self, store: PolicyStore) -> None:
        """A state change at any scope is policy.trading to those who ask; a default listener hears it once."""
        trading: list[PolicyChanged] = []
        default: list[PolicyChanged] = []
        store.subscribe(trading.append, types=[EventType.TRADING])
        store.subscribe(default.append)
        await store.update({"trading.max_daily_loss": 500.0}, reason="a limit, no state", updated_by="ann")
        await store.update({"instruments.BTC.state": "halted"}, reason="exchange outage", updated_by="bob")
        await store.update({"strategies.moderate.state": "reducing"}, reason="wind down", updated_by="cat")
        await eventually(lambda: len(trading) >= 2 and len(default) >= 3)
        assert [(3, EventType.TRADING), (4, EventType.TRADING)] == [(e.version, e.type) for e in trading]
        assert {"instruments.BTC.state": "halted"} == trading[0].new
        assert [(v, EventType.UPDATED) for v in (2, 3, 4)] == [(e.version, e.type) for e in default]

    async def test_rejected_notice_heard_by_default(self) -> None:
        """policy.rejected is no change but a warning: a default listener hears it."""
        backend = MemoryBackend(f"events-{uuid.uuid4().hex}")
        store = PolicyStore(backend, lkg_path=None, environ={})
        await store.initialize()
        seen: list[PolicyChanged] = []
        store.subscribe(seen.append)
        try:
            document = store.snapshot().document()
            document["modes"]["NORMAL"]["max_leverage"] = 1000.0
            document["version"] = 2
            entry = (await store.history(limit=1))[0]
            await backend.commit(document, type(entry)(2, entry.at, "tool", "bad", ()))
            await eventually(lambda: bool(seen))
            assert [(EventType.REJECTED, 2)] == [(e.type, e.version) for e in seen]
        finally:
            await store.close()

    async def test_external_bus_still_receives_every_kind(self) -> None:
        """The system bus given as event_bus keeps receiving updated plus each kind, as before."""
        bus = Recorder()
        store = PolicyStore(memory_url(), event_bus=bus, lkg_path=None)
        await store.initialize()
        try:
            await store.switch_mode("DEFENSIVE", reason="calm")
            assert ["policy.updated", "policy.mode.changed"] == [topic for topic, _ in bus.published]
        finally:
            await store.close()


class TestSyncFacadeEvents:
    """SyncPolicyStore mirrors ``types=``."""

    def test_sync_subscribe_and_watch_take_types(self, tmp_path: Path) -> None:
        """The facade's listeners hear one event per change by default and the kinds named otherwise."""
        with SyncPolicyStore.open(f"sqlite:///{tmp_path}/policy.db") as store:
            default: list[PolicyChanged] = []
            store.subscribe(default.append)
            modes = store.watch(types=[EventType.MODE_CHANGED])
            store.switch_mode("DEFENSIVE", reason="calm", updated_by="bob")
            event = next(modes)
            assert (2, EventType.MODE_CHANGED) == (event.version, event.type)
            assert [(2, EventType.UPDATED)] == [(e.version, e.type) for e in default]
