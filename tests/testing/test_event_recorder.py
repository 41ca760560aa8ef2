"""The event recorder: every event a store delivers, in order, and waits for a count or a version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from policystore import EventType, PolicyStore
from policystore.testing import EventRecorder, memory_store, sync_memory_store


@pytest.fixture
async def store() -> AsyncIterator[PolicyStore]:
    """A memory store of the test's own."""
    opened = await memory_store()
    yield opened
    await opened.close()


class TestRecording:
    """What the recorder keeps."""

    async def test_events_recorded_in_version_order(self, store: PolicyStore) -> None:
        """Each write's event is recorded once, oldest first, with its version."""
        recorder = EventRecorder(store)
        await store.switch_mode("DEFENSIVE", reason="calm")
        await store.set_emergency_mode(True, reason="halt")
        events = await recorder.wait_for(2)
        assert [(2, EventType.UPDATED), (3, EventType.UPDATED)] == [(e.version, e.type) for e in events]
        assert [2, 3] == recorder.versions

    async def test_types_chosen_as_for_subscribe(self, store: PolicyStore) -> None:
        """Asked for a kind, the recorder keeps that kind's events too."""
        recorder = EventRecorder(store, types=["policy.updated", EventType.MODE_CHANGED])
        await store.switch_mode("DEFENSIVE", reason="calm", updated_by="bob")
        event = await recorder.wait_for_version(2, kind="policy.mode.changed")
        assert ("bob", {"active_mode": "DEFENSIVE"}) == (event.by, event.new)
        assert [EventType.UPDATED, EventType.MODE_CHANGED] == [e.type for e in recorder.events]

    async def test_stop_records_nothing_more_and_keeps_what_was(self, store: PolicyStore) -> None:
        """After stop() (or the end of a with-block) later writes are not recorded."""
        with EventRecorder(store) as recorder:
            await store.switch_mode("DEFENSIVE", reason="calm")
            await recorder.wait_for(1)
        await store.set_emergency_mode(True, reason="halt")
        await asyncio.sleep(0.05)
        assert [2] == recorder.versions

    async def test_clear_forgets_what_was_recorded(self, store: PolicyStore) -> None:
        """clear() empties the record; waits count from there."""
        recorder = EventRecorder(store)
        await store.switch_mode("DEFENSIVE", reason="calm")
        await recorder.wait_for(1)
        recorder.clear()
        await store.set_emergency_mode(True, reason="halt")
        assert [3] == [e.version for e in await recorder.wait_for(1)]


class TestWaiting:
    """Waits end when the event arrives, or fail naming what was recorded."""

    async def test_wait_started_before_the_write_ends_when_it_lands(self, store: PolicyStore) -> None:
        """A wait already running is woken by the event it waits for."""
        recorder = EventRecorder(store)
        waiting = asyncio.create_task(recorder.wait_for_version(3))
        await asyncio.sleep(0)
        await store.switch_mode("DEFENSIVE", reason="calm")
        await store.switch_mode("NORMAL", reason="back")
        assert 3 == (await asyncio.wait_for(waiting, 5)).version

    async def test_wait_timeout_names_what_was_awaited_and_recorded(self, store: PolicyStore) -> None:
        """Too few events: TimeoutError naming the count wanted and the events recorded."""
        recorder = EventRecorder(store)
        await store.switch_mode("DEFENSIVE", reason="calm")
        with pytest.raises(TimeoutError) as caught:
            await recorder.wait_for(2, timeout=0.1)
        assert "2 event(s) not recorded within 0.1 s; recorded: policy.updated of version 2" == str(caught.value)

    async def test_wait_for_version_timeout_names_the_version(self, store: PolicyStore) -> None:
        """A version that never comes: TimeoutError naming it; nothing recorded says so."""
        recorder = EventRecorder(store)
        with pytest.raises(TimeoutError) as caught:
            await recorder.wait_for_version(5, kind=EventType.EMERGENCY, timeout=0.05)
        assert "the policy.emergency event of version 5 not recorded within 0.05 s; recorded: nothing" == str(
            caught.value
        )


class TestSyncStore:
    """With a SyncPolicyStore, events come on the facade's thread and the caller blocks for them."""

    def test_blocking_waits_see_the_facade_threads_events(self) -> None:
        """wait_for_blocking and wait_for_version_blocking return what the store's thread recorded."""
        store = sync_memory_store()
        try:
            recorder = EventRecorder(store, types=["policy.updated", "policy.emergency"])
            store.set_emergency_mode(True, reason="halt")
            assert [2, 2] == [e.version for e in recorder.wait_for_blocking(2)]
            assert "halt" == recorder.wait_for_version_blocking(2, kind="policy.emergency").reason
            with pytest.raises(TimeoutError):
                recorder.wait_for_blocking(3, timeout=0.05)
        finally:
            store.close()
