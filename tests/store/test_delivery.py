"""Handing events on: a watch() iterator has each event before the delivering task goes on to anything else."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from policystore import PolicyChanged, PolicyStore
from policystore.model.events import events_for
from policystore.model.history import FieldChange, HistoryEntry
from policystore.store.bus import EventBus
from policystore.store.outbox import Outbox

AT = datetime(2026, 4, 5, 6, 7, 8, tzinfo=UTC)


def _entry(version: int) -> HistoryEntry:
    return HistoryEntry(version, AT, "ops", "switch", (FieldChange("active_mode", "NORMAL", "DEFENSIVE"),))


class TestWatchHandOff:
    """The outbox lets watch() iterators take what it handed them before it returns."""

    async def test_watch_has_each_event_when_delivery_returns(self) -> None:
        """Events delivered in one go are all taken by the iterator, in order, by the time deliver() returns."""
        bus = EventBus()
        outbox = Outbox(bus, closed=lambda: False)
        seen: list[str] = []

        async def follow() -> None:
            async for event in bus.watch(types=["policy.updated", "policy.mode.changed"]):
                seen.append(event.event_id)  # noqa: PERF401 - read before the iterator ends

        task = asyncio.create_task(follow())
        await asyncio.sleep(0)  # the iterator waits for its first event
        try:
            outbox.add(events_for(_entry(2), 1))
            outbox.add(events_for(_entry(3), 2))
            await outbox.deliver()
            assert ["2:policy.updated", "2:policy.mode.changed", "3:policy.updated", "3:policy.mode.changed"] == seen
        finally:
            bus.close()
            await task

    async def test_delivery_with_no_iterator_waiting_still_delivers_to_subscribers(self) -> None:
        """With only subscribe() callbacks, each is called once per event, in order."""
        bus = EventBus()
        outbox = Outbox(bus, closed=lambda: False)
        called: list[int] = []
        bus.subscribe(lambda event: called.append(event.version))
        outbox.add(events_for(_entry(2), 1) + events_for(_entry(3), 2))
        await outbox.deliver()
        assert [2, 3] == called
        assert not outbox.pending

    async def test_write_returns_after_its_watchers_saw_it_and_the_snapshot_held_it(self) -> None:
        """A write's own process: when the write returns, watch() has its event, and saw the new snapshot."""
        store = await PolicyStore.open("memory://", lkg_path=None)
        seen: list[tuple[int, int]] = []

        async def follow() -> None:
            async for event in store.watch():
                seen.append((event.version, store.get("version")))  # noqa: PERF401 - read before it ends

        task = asyncio.create_task(follow())
        await asyncio.sleep(0)
        try:
            switched = await store.switch_mode("DEFENSIVE", reason="calm")
            limited = await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="less")
            assert [(switched.version, switched.version), (limited.version, limited.version)] == seen
        finally:
            await store.close()
            await task

    async def test_subscriber_sees_the_event_version_in_the_snapshot(self) -> None:
        """A subscribe() callback reads the version its event announces (or a newer one)."""
        store = await PolicyStore.open("memory://", lkg_path=None)
        read: list[tuple[int, int]] = []

        def note(event: PolicyChanged) -> None:
            read.append((event.version, store.get("version")))

        store.subscribe(note)
        try:
            written = await store.switch_mode("DEFENSIVE", reason="calm")
            assert [(written.version, written.version)] == read
        finally:
            await store.close()
