"""policystore.testing as a user's tests write it; checked by ``mypy --strict`` with tests/typing."""

from __future__ import annotations

import asyncio
import uuid

from policystore import PolicyChanged, PolicyStore, SyncPolicyStore
from policystore.backends.base import Backend
from policystore.backends.memory import MemoryBackend
from policystore.testing import (
    CHECKS,
    BackendFactory,
    EventRecorder,
    SwitchableBackend,
    memory_store,
    memory_url,
    run_conformance,
    sync_memory_store,
)
from policystore.testing.conformance import Check, check_name


async def record_a_switch() -> list[int]:
    """Open a memory store, record its events, ride out an outage."""
    store: PolicyStore = await memory_store(watch=True)
    recorder = EventRecorder(store, types=["policy.updated"])
    await store.switch_mode("DEFENSIVE", reason="calm")
    event: PolicyChanged = await recorder.wait_for_version(2, kind="policy.updated", timeout=5)
    events: list[PolicyChanged] = await recorder.wait_for(1)
    recorder.stop()
    backend = SwitchableBackend(MemoryBackend(memory_url().removeprefix("memory://")))
    as_protocol: Backend = backend
    with backend.outage():
        available: bool = backend.available
    del as_protocol, available, event
    await store.close()
    return [e.version for e in events]


def record_sync() -> int:
    """The same with the facade, blocking."""
    store: SyncPolicyStore = sync_memory_store()
    with EventRecorder(store) as recorder:
        store.set_emergency_mode(True, reason="halt")
        version = recorder.wait_for_blocking(1)[0].version
    store.close()
    return version


async def conform() -> list[str]:
    """Run the conformance suite on a back end of one's own."""

    def fresh() -> BackendFactory:
        name = uuid.uuid4().hex
        return BackendFactory(open=lambda: MemoryBackend(name), timeout=5.0)

    first: Check = CHECKS[0]
    await first(fresh())
    names: list[str] = [check_name(check) for check in CHECKS]
    del names
    return await run_conformance(fresh)


if __name__ == "__main__":
    asyncio.run(record_a_switch())
    record_sync()
    asyncio.run(conform())
