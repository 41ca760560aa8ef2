"""The outage switch: any back end made unreachable and reachable again, its data untouched."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from policystore import PolicyStore, Source, StoreUnavailableError
from policystore.backends.base import Backend, Published, RecordStore
from policystore.backends.memory import MemoryBackend
from policystore.testing import SwitchableBackend
from policystore.testing._harness import document, entry
from support.waiting import eventually


@pytest.fixture
def name() -> str:
    """A memory store's name no other test shares."""
    return f"switch-{uuid.uuid4().hex}"


async def _listen(backend: Backend, hints: list[int | Published]) -> None:
    async for hint in backend.notifications():
        hints.append(hint)  # noqa: PERF401 - each hint is seen as it arrives, not when the listener ends


class TestSwitch:
    """Switched off, every call fails as an unreachable store's does; switched on, all is as it was."""

    async def test_switched_off_every_call_raises_store_unavailable_naming_the_url(self, name: str) -> None:
        """Each call of the protocol raises StoreUnavailableError with the store's URL while off."""
        backend = SwitchableBackend(MemoryBackend(name))
        await backend.connect()
        await backend.commit(document(1), entry(1))
        backend.set_available(False)
        calls = [
            backend.connect(),
            backend.current_version(),
            backend.load(),
            backend.commit(document(2), entry(2)),
            backend.history(10),
            backend.entries(0, 1),
            backend.records.all("tokens"),
            backend.records.get("tokens", "k"),
            backend.records.put("tokens", "k", {"v": 1}),
            backend.records.add("tokens", "k", {"v": 1}),
            backend.records.delete("tokens", "k"),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError) as caught:
                await call
            assert (f"memory://{name}", "the store is switched off") == (caught.value.url, caught.value.reason)
        assert not backend.available

    async def test_switched_on_again_data_as_before_the_outage(self, name: str) -> None:
        """Nothing written while off lands, and what was there before reads back after."""
        backend = SwitchableBackend(MemoryBackend(name))
        await backend.commit(document(1), entry(1))
        await backend.records.put("tokens", "ada", {"role": "admin"})
        with backend.outage():
            with pytest.raises(StoreUnavailableError):
                await backend.commit(document(2), entry(2))
            with pytest.raises(StoreUnavailableError):
                await backend.records.put("tokens", "bob", {"role": "viewer"})
        assert backend.available
        assert (1, document(1), [entry(1)], {"ada": {"role": "admin"}}) == (
            await backend.current_version(),
            await backend.load(),
            await backend.history(10),
            await backend.records.all("tokens"),
        )

    async def test_outage_block_switches_back_on_after_an_error(self, name: str) -> None:
        """Leaving the with-block by an exception still ends the outage."""
        backend = SwitchableBackend(MemoryBackend(name))
        with pytest.raises(RuntimeError), backend.outage():
            raise RuntimeError("test body failed")
        assert 0 == await backend.current_version()

    async def test_starts_switched_off_when_asked(self, name: str) -> None:
        """available=False makes a store unreachable from its first call; close() still works."""
        backend = SwitchableBackend(MemoryBackend(name), available=False)
        with pytest.raises(StoreUnavailableError):
            await backend.connect()
        await backend.close()
        assert "SwitchableBackend('memory://" + name + "', switched off)" == repr(backend)

    def test_is_a_backend(self, name: str) -> None:
        """The wrapper passes the Backend protocol's runtime check, and keeps the wrapped back end's URL."""
        wrapped = MemoryBackend(name)
        backend = SwitchableBackend(wrapped)
        assert isinstance(backend, Backend)
        assert isinstance(backend.records, RecordStore)
        assert (wrapped, wrapped.url) == (backend.wrapped, backend.url)


class TestListeners:
    """Listeners hear 0 at each switch, and nothing of the store while it is off."""

    async def test_listener_hears_zero_when_switched_off_and_on(self, name: str) -> None:
        """Off: 0 (re-read, find it unreachable); commits elsewhere unheard; on: 0 (re-read, go live)."""
        backend = SwitchableBackend(MemoryBackend(name))
        writer = MemoryBackend(name)
        hints: list[int | Published] = []
        task = asyncio.create_task(_listen(backend, hints))
        try:
            await eventually(lambda: [0] == hints)  # a new listener is told to check
            backend.set_available(False)
            await eventually(lambda: [0, 0] == hints)
            await writer.commit(document(1), entry(1))
            await asyncio.sleep(0.05)
            assert [0, 0] == hints
            backend.set_available(True)
            await eventually(lambda: [0, 0, 0] == hints)
            await writer.commit(document(2), entry(2))
            await eventually(lambda: 4 == len(hints))
            assert isinstance(hints[3], Published)
            assert 2 == hints[3].version
        finally:
            task.cancel()

    async def test_listening_while_switched_off_hears_zero_then_zero_when_on(self, name: str) -> None:
        """A listener started during an outage is told to check at once (and goes stale), and again after it."""
        backend = SwitchableBackend(MemoryBackend(name), available=False)
        hints: list[int | Published] = []
        task = asyncio.create_task(_listen(backend, hints))
        try:
            await eventually(lambda: [0] == hints)
            await asyncio.sleep(0.05)
            assert [0] == hints  # the wrapped back end's own first hint is not heard while off
            backend.set_available(True)
            await eventually(lambda: [0, 0] == hints)
        finally:
            task.cancel()

    async def test_close_ends_listeners(self, name: str) -> None:
        """Closing the wrapper closes the wrapped back end, which ends the listeners."""
        backend = SwitchableBackend(MemoryBackend(name))
        hints: list[int | Published] = []
        task = asyncio.create_task(_listen(backend, hints))
        await eventually(lambda: bool(hints))
        await backend.close()
        await asyncio.wait_for(task, 5)
        assert [0] == hints


class _WithExtras(MemoryBackend):
    """A back end with a method of its own beyond the protocol, as a user's may have."""

    label = "extras"

    async def compact(self) -> int:
        return len(self._check().documents)


class TestPassThrough:
    """Attributes beyond the protocol reach the wrapped back end; its coroutines obey the switch."""

    async def test_extra_coroutine_passes_through_and_fails_while_off(self, name: str) -> None:
        """An extra coroutine method answers while on and raises StoreUnavailableError while off."""
        backend = SwitchableBackend(_WithExtras(name))
        await backend.commit(document(1), entry(1))
        assert (1, "extras") == (await backend.compact(), backend.label)
        with backend.outage(), pytest.raises(StoreUnavailableError):
            await backend.compact()

    def test_missing_attribute_is_an_attribute_error(self, name: str) -> None:
        """A name neither has raises AttributeError, as on the wrapped back end."""
        backend = SwitchableBackend(MemoryBackend(name))
        with pytest.raises(AttributeError):
            _ = backend.no_such_thing


class TestStoreOverIt:
    """A PolicyStore over a switched back end rides the outage out."""

    async def test_store_goes_stale_refuses_writes_and_comes_back(self, name: str) -> None:
        """During an outage from its first moment: stale from the held copy, writes refused; after: live."""
        backend = SwitchableBackend(MemoryBackend(name))
        store = await PolicyStore.open(backend, lkg_path=None, environ={})
        try:
            with backend.outage():
                await eventually(lambda: store.stale)
                assert Source.LAST_KNOWN_GOOD == store.source
                with pytest.raises(StoreUnavailableError):
                    await store.switch_mode("DEFENSIVE", reason="calm")
            await eventually(lambda: not store.stale)
            await store.switch_mode("DEFENSIVE", reason="calm")
            assert (2, Source.STORE) == (store.get("version"), store.source)
        finally:
            await store.close()
