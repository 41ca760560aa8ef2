"""The store's own safety rules: what it refuses, records and fails closed on, whatever the caller does."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policystore import (
    Actor,
    EventType,
    PermissionDeniedError,
    PolicyChanged,
    PolicyStore,
    PolicyValidationError,
    Role,
    StoreUnavailableError,
)
from policystore.backends.memory import MemoryBackend
from policystore.model.history import HistoryEntry

OPERATOR = Actor("otto", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


@pytest.fixture
async def backend() -> MemoryBackend:
    """A named in-process store no other test shares."""
    return MemoryBackend(f"safety-{uuid.uuid4().hex}")


@pytest.fixture
async def store(backend: MemoryBackend, tmp_path: Path) -> AsyncIterator[PolicyStore]:
    """A store on ``backend`` with its own last-known-good file."""
    opened = PolicyStore(backend, lkg_path=tmp_path / "lkg.json", environ={})
    await opened.initialize()
    yield opened
    await opened.close()


class TestSubscribersMayWrite:
    """Events are delivered outside the store's lock."""

    async def test_subscriber_that_writes_does_not_hang_the_store(self, store: PolicyStore) -> None:
        """A risk guard that reacts to a mode change by writing completes, and its event is delivered too."""
        seen: list[tuple[int, EventType]] = []

        async def guard(event: PolicyChanged) -> None:
            seen.append((event.version, event.type))
            if event.type is EventType.MODE_CHANGED:
                await store.set_emergency_mode(True, reason="mode changed: halt until reviewed", updated_by="guard")

        store.subscribe(guard)
        await asyncio.wait_for(store.switch_mode("DEFENSIVE", reason="storm"), timeout=5)
        assert (3, True) == (store.get("version"), store.get("emergency.active"))
        assert [2, 2, 3, 3] == [version for version, _ in seen]
        assert EventType.EMERGENCY == seen[-1][1]

    async def test_watch_sees_versions_in_order_with_a_writing_subscriber(self, store: PolicyStore) -> None:
        """A write made inside a subscriber is delivered after the event that caused it."""
        versions: list[int] = []

        async def follow() -> None:
            async for event in store.watch():
                versions.append(event.version)
                if event.version == 3:
                    return

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(0)

        async def writer(event: PolicyChanged) -> None:
            if event.version == 2:
                await store.update({"modes.NORMAL.max_positions": 10}, reason="follow-up", actor=OPERATOR)

        store.subscribe(writer)
        await store.update({"modes.NORMAL.max_positions": 20}, reason="first", actor=OPERATOR)
        await asyncio.wait_for(watcher, timeout=5)
        assert versions == sorted(versions)
        assert [2, 3] == sorted(set(versions))


class TestRefusedVersionFailsClosed:
    """A newer version that cannot be read stops new trades until a valid one is installed."""

    @staticmethod
    async def commit_invalid(backend: MemoryBackend, store: PolicyStore) -> None:
        """Write a version the model refuses (leverage above the hard cap), as a faulty tool would."""
        document = store.snapshot().document()
        document["modes"]["NORMAL"]["max_leverage"] = 1000.0
        document["version"] = 2
        entry = HistoryEntry(2, datetime.now(UTC), "faulty-tool", "bad write", ())
        await backend.commit(document, entry)

    async def test_invalid_newer_version_refused_and_trading_stops(
        self, backend: MemoryBackend, store: PolicyStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Readers keep version 1, hear a rejection event, and may open no new trade."""
        rejected: list[PolicyChanged] = []
        store.subscribe(lambda event: rejected.append(event) if event.type is EventType.REJECTED else None)
        assert await store.can_open_new_trades()
        await self.commit_invalid(backend, store)
        with caplog.at_level(logging.ERROR, logger="policystore"), pytest.raises(StoreUnavailableError) as caught:
            await store.refresh()
        assert "modes.NORMAL.max_leverage" in str(caught.value)
        assert (1, 5.0) == (store.get("version"), store.get("modes.NORMAL.max_leverage"))
        assert [2] == [event.version for event in rejected]
        assert not await store.can_open_new_trades()

    async def test_rollback_repairs_an_invalid_newest_version(self, backend: MemoryBackend, store: PolicyStore) -> None:
        """An admin can roll back over the invalid version; trading resumes on the repaired one."""
        await self.commit_invalid(backend, store)
        with pytest.raises(StoreUnavailableError):
            await store.refresh()
        repaired = await store.rollback(1, reason="undo the faulty write", actor=ADMIN)
        assert (3, 5.0) == (repaired.version, repaired.modes["NORMAL"].max_leverage)
        assert (3, False) == (store.get("version"), store.stale)
        assert await store.can_open_new_trades()

    async def test_import_repairs_an_invalid_newest_version(self, backend: MemoryBackend, store: PolicyStore) -> None:
        """A whole-document import also writes over the invalid version."""
        good = store.snapshot().document()
        await self.commit_invalid(backend, store)
        imported = await store.replace_policy(good, reason="restore from export", actor=ADMIN)
        assert 3 == imported.version
        assert await store.can_open_new_trades()

    async def test_patch_on_an_invalid_newest_version_still_refused(
        self, backend: MemoryBackend, store: PolicyStore
    ) -> None:
        """A field patch needs the stored content, so it cannot build on an invalid version."""
        await self.commit_invalid(backend, store)
        with pytest.raises(StoreUnavailableError):
            await store.update({"modes.NORMAL.max_positions": 5}, reason="tune")
        assert 2 == await backend.current_version()


class TestKillSwitchRecord:
    """Who turned the kill switch on, and when, is the store's record."""

    @pytest.mark.parametrize("path", ["emergency.activated_by", "emergency.activated_at"])
    async def test_activation_record_cannot_be_written(self, store: PolicyStore, path: str) -> None:
        """A patch naming the record is refused and changes nothing."""
        with pytest.raises(PolicyValidationError) as caught:
            await store.update({path: "2020-01-01T00:00:00+00:00"}, reason="forge", actor=ADMIN)
        assert path in str(caught.value)
        assert (1, None) == (store.get("version"), store.get(path))

    async def test_patch_turning_it_on_records_the_writer(self, store: PolicyStore) -> None:
        """Turning it on by a field patch stamps the author like set_emergency_mode does."""
        await store.update({"emergency.active": True, "emergency.reason": "venue down"}, reason="halt", actor=OPERATOR)
        assert ("otto", True) == (store.get("emergency.activated_by"), store.get("emergency.activated_at") is not None)

    async def test_rearming_keeps_who_stopped_trading_first(self, store: PolicyStore) -> None:
        """A second 'on' replaces the reason but not the first activation record."""
        first = await store.set_emergency_mode(True, reason="venue down", actor=OPERATOR)
        second = await store.set_emergency_mode(True, reason="still down", actor=Actor("bob", Role.OPERATOR))
        assert ("otto", first.emergency.activated_at, "still down") == (
            second.emergency.activated_by,
            second.emergency.activated_at,
            second.emergency.reason,
        )

    async def test_import_cannot_name_another_activator(self, store: PolicyStore) -> None:
        """An imported document's record is replaced by the importer's."""
        document = store.snapshot().document()
        document["emergency"] = {
            "active": True,
            "reason": "imported halt",
            "activated_by": "someone-else",
            "activated_at": "2020-01-01T00:00:00+00:00",
        }
        imported = await store.replace_policy(document, reason="import", actor=ADMIN)
        assert "ada" == imported.emergency.activated_by
        assert imported.emergency.activated_at is not None
        assert imported.emergency.activated_at.year > 2020

    async def test_turning_it_off_clears_the_record(self, store: PolicyStore) -> None:
        """Off means no activation record."""
        await store.set_emergency_mode(True, reason="halt", actor=OPERATOR)
        await store.set_emergency_mode(False, reason="resume", actor=ADMIN)
        assert (None, None) == (store.get("emergency.activated_by"), store.get("emergency.activated_at"))


class TestOnlyAdminsAddRoom:
    """Adding a mode or strategy is a raise of risk; removing one is not."""

    async def test_operator_cannot_remove_and_re_add_a_strategy_looser(self, store: PolicyStore) -> None:
        """The removal is allowed; adding it back needs an admin, and nothing changes."""
        tight = {"cooldown_seconds": 600, "max_risk_pct_per_trade": 0.001}
        await store.update({"strategies.scalper": tight}, reason="new", actor=ADMIN)
        await store.update({"strategies.scalper": None}, reason="retire", actor=OPERATOR)
        with pytest.raises(PermissionDeniedError) as caught:
            await store.update({"strategies.scalper": {"cooldown_seconds": 0}}, reason="bring back", actor=OPERATOR)
        assert "strategies.scalper" in str(caught.value)
        assert 3 == store.get("version")

    async def test_operator_cannot_add_a_mode(self, store: PolicyStore) -> None:
        """A new mode needs an admin, even one tighter than the active mode."""
        defensive = store.snapshot().document()["modes"]["DEFENSIVE"]
        with pytest.raises(PermissionDeniedError):
            await store.update({"modes.CALM": defensive}, reason="add", actor=OPERATOR)
        added = await store.update({"modes.CALM": defensive}, reason="add", actor=ADMIN)
        assert "CALM" in added.modes


class TestDrawdownBreaker:
    """The breaker trips on any loss it cannot compare."""

    @pytest.mark.parametrize("loss", [float("nan"), float("inf")])
    async def test_non_finite_loss_trips_the_breaker(self, store: PolicyStore, loss: float) -> None:
        """A NaN or infinite loss turns the kill switch on, naming the figure."""
        assert not await store.report_daily_loss(loss, reporter="risk-engine")
        assert (True, "risk-engine") == (store.get("emergency.active"), store.get("emergency.activated_by"))
        assert "not a number" in store.get("emergency.reason")


class TestStoreGoesBack:
    """A store restored from an older backup is followed, loudly."""

    async def test_restored_older_store_is_followed(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """After a restore to version 1, readers hold version 1, not their newer copy."""
        db = tmp_path / "policy.db"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False)
        try:
            backup = tmp_path / "backup.db"
            with sqlite3.connect(db) as live, sqlite3.connect(backup) as copy:
                live.backup(copy)
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            await store.update({"modes.NORMAL.max_positions": 11}, reason="tune")
            assert 3 == store.get("version")
            with sqlite3.connect(backup) as copy, sqlite3.connect(db) as live:
                copy.backup(live)
            with caplog.at_level(logging.ERROR, logger="policystore"):
                await store.refresh()
            assert (1, 30) == (store.get("version"), store.get("modes.NORMAL.max_positions"))
            assert "older than version 3" in caplog.text
        finally:
            await store.close()


class TestInitializeOnce:
    """A store is initialised once."""

    async def test_second_initialize_refused(self, store: PolicyStore) -> None:
        """Starting the followers twice would deliver every event twice."""
        with pytest.raises(RuntimeError, match="already initialised"):
            await store.initialize()


class TestWatchFromTheCall:
    """watch() hears every change made after it is called."""

    async def test_change_before_first_iteration_is_delivered(self, store: PolicyStore) -> None:
        """An event published between watch() and the first await is not lost."""
        events = store.watch()
        await store.update({"modes.NORMAL.max_positions": 20}, reason="fewer")
        first = await asyncio.wait_for(anext(events), timeout=5)
        assert 2 == first.version
