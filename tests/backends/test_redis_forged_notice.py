"""A forged change notice, PUBLISHed on the namespace's channel with the keys untouched, never loosens a process.

A notice that loosens (by ``risk_increases``, or by opening a gate that a refused
or rewound version holds shut) is confirmed against the stored document, one
GET, before it is installed. A notice that only tightens is installed at once:
holding a stricter policy is safe, and the periodic check brings the process
back to the store's true version, which it follows as a store that went back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio

from policystore import Actor, PolicyChanged, PolicyStore, Role, StoreUnavailableError
from policystore.backends._redis_layout import COMMIT_LUA, CommitCall
from policystore.backends.redis import RedisBackend
from policystore.model.history import HistoryEntry
from policystore.model.policy import Policy
from support.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]
OPERATOR = Actor("ops", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


@pytest.fixture
async def raw(redis_server: Any) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client on the test server: the forger's."""
    client = redis.asyncio.Redis(port=redis_server.port)
    yield client
    await client.aclose()


def keys_of(store: PolicyStore) -> Any:
    """The Redis keys of the store's namespace."""
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    return backend.keys


def forged_call(store: PolicyStore, base: Policy, changes: dict[str, Any]) -> CommitCall:
    """The commit a writer would send for the version after ``base`` with ``changes``, laid out exactly as genuine."""
    document = base.document()
    for path, value in changes.items():
        section, _, field = path.partition(".")
        if field:
            document[section][field] = value
        else:
            document[section] = value
    now = datetime.now(UTC)
    version = base.version + 1
    document |= {"version": version, "updated_at": now.isoformat(), "updated_by": "forger", "reason": "forged"}
    return CommitCall.build(keys_of(store), document, HistoryEntry(version, now, "forger", "forged", ()))


async def publish_only(raw: redis.asyncio.Redis, call: CommitCall) -> None:
    """PUBLISH the call's notice on the channel, touching no key."""
    _version, document_json, _entry, channel, header = call.args
    await raw.publish(str(channel), f"{header}\n{document_json}")


class GateSampler:
    """Records the version and verdict of a store's gate at every turn of the event loop."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self.samples: list[tuple[int, bool]] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            gate = self.store.gate()
            self.samples.append((gate.policy.version, gate.allowed))
            await asyncio.sleep(0)

    async def stop(self) -> list[tuple[int, bool]]:
        """Stop sampling; return the samples."""
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task
        return self.samples


class TestForgedLoosening:
    """A forged notice that turns the kill switch off."""

    async def test_forged_kill_switch_off_is_never_installed(self, redis_url: str, raw: redis.asyncio.Redis) -> None:
        """The process never reports can_trade True and never installs the forged version."""
        store = await PolicyStore.open(redis_url, lkg_path=None, refresh_interval=3600)
        writer = await PolicyStore.open(redis_url, watch=False, lkg_path=None)
        try:
            halted = await writer.set_emergency_mode(True, reason="venue down", actor=OPERATOR)
            await eventually(lambda: store.get("version") == halted.version)
            installed: list[tuple[int, str]] = []
            store.subscribe(lambda event: installed.append((event.version, event.by)))
            sampler = GateSampler(store)
            await publish_only(raw, forged_call(store, halted, {"emergency": {"active": False}}))
            # Notices arrive in order: once the genuine one after it is held, the forged one was dealt with.
            real = await writer.update({"modes.NORMAL.max_positions": 20}, reason="after the forgery", actor=OPERATOR)
            await eventually(lambda: store.get("version") == real.version)
            samples = await sampler.stop()
            assert [] == [sample for sample in samples if sample[1]]
            assert {(real.version, "ops")} == set(installed)
            assert (True, False, "ops") == (store.get("emergency.active"), store.stale, store.get("updated_by"))
        finally:
            await writer.close()
            await store.close()

    async def test_forged_notice_cannot_open_a_gate_a_refused_version_holds(
        self, redis_url: str, raw: redis.asyncio.Redis
    ) -> None:
        """While the store's newest version is refused as invalid, a valid notice of that number opens nothing.

        Only a read of the store, which finds the repair, lets the process trade again.
        """
        store = await PolicyStore.open(redis_url, lkg_path=None, refresh_interval=3600)
        admin = await PolicyStore.open(redis_url, watch=False, lkg_path=None, actor=ADMIN)
        keys = keys_of(store)
        try:
            held = store.snapshot()
            modes = held.document()["modes"]
            modes["NORMAL"]["max_leverage"] = 1000.0  # above the hard cap: the model refuses it
            invalid = forged_call(store, held, {"modes": modes})
            await raw.set(keys.document, invalid.args[1])
            await raw.hset(keys.documents, "2", invalid.args[1])
            await raw.hset(keys.history, "2", invalid.args[2])
            await raw.set(keys.version, 2)
            with pytest.raises(StoreUnavailableError):
                await store.refresh()
            assert not store.gate().allowed
            sampler = GateSampler(store)
            await publish_only(raw, forged_call(store, held, {"active_mode": "DEFENSIVE"}))
            repaired = await admin.rollback(1, reason="repair the faulty write")
            await eventually(lambda: store.get("version") == repaired.version)
            samples = await sampler.stop()
            assert [] == [sample for sample in samples if sample[1] and sample[0] < repaired.version]
            assert store.gate().allowed
        finally:
            await admin.close()
            await store.close()


class TestGenuineLoosening:
    """A genuine loosening still travels by its notice, confirmed by one read of the stored document."""

    async def test_genuine_loosening_confirmed_by_one_get_and_installed(
        self, redis_url: str, raw: redis.asyncio.Redis
    ) -> None:
        """Committed by the real script: the follower reads the document key once more than for a tightening."""
        store = await PolicyStore.open(redis_url, lkg_path=None, refresh_interval=3600)
        commit = raw.register_script(COMMIT_LUA)

        async def commands_for(changes: dict[str, Any]) -> dict[str, int]:
            """Commit ``changes`` and wait until the follower holds them; the commands Redis ran meanwhile."""
            call = forged_call(store, store.snapshot(), changes)
            before = await raw.info("commandstats")
            await commit(keys=call.keys, args=call.args)
            await eventually(lambda: store.get("version") == call.version)
            after = await raw.info("commandstats")
            return {
                name: int(after.get(f"cmdstat_{name}", {}).get("calls", 0))
                - int(before.get(f"cmdstat_{name}", {}).get("calls", 0))
                for name in ("get", "hget", "hmget", "mget")
            }

        try:
            # A tightening first: once it is held, the subscription is live and its first re-read is done.
            await commands_for({"active_mode": "DEFENSIVE"})
            tightening = await commands_for({"active_mode": "DEFENSIVE", "reason": "again"})
            heard: list[PolicyChanged] = []
            store.subscribe(heard.append)
            loosening = await commands_for({"active_mode": "AGGRESSIVE_SMALL_ACCOUNT"})
            # The commit script's own commands are the same for both; the confirmation is one GET.
            assert tightening | {"get": tightening["get"] + 1} == loosening
            assert ("AGGRESSIVE_SMALL_ACCOUNT", [store.get("version")]) == (
                store.get("active_mode"),
                [event.version for event in heard],
            )
        finally:
            await store.close()


class TestForgedTightening:
    """A forged notice that only tightens: installed at once, then corrected by the periodic check."""

    async def test_forged_tightening_installed_then_the_store_is_followed_back(
        self, redis_url: str, raw: redis.asyncio.Redis
    ) -> None:
        """The stricter forged mode is held until the periodic check finds the store never had it.

        A forged notice cannot be told apart from a genuine version a failover lost, so the
        process follows the store as one that went back: it fails closed and turns the kill
        switch on, for every process, until an admin confirms the policy.
        """
        store = await PolicyStore.open(redis_url, lkg_path=None, refresh_interval=0.5)
        try:
            heard: list[tuple[int, str]] = []
            store.subscribe(lambda event: heard.append((event.version, event.by)))
            forged = forged_call(store, store.snapshot(), {"active_mode": "DEFENSIVE"})
            await publish_only(raw, forged)
            await eventually(lambda: (forged.version, "forger") in heard)  # installed at once: stricter is safe
            await eventually(lambda: store.get("emergency.active") is True)
            stored = json.loads(await raw.get(keys_of(store).document))
            assert (stored["version"], datetime.fromisoformat(stored["updated_at"])) == (
                store.get("version"),
                store.snapshot().updated_at,
            )
            assert ("NORMAL", False) == (store.get("active_mode"), await store.can_open_new_trades())
            assert "went back" in store.get("emergency.reason")
        finally:
            await store.close()
