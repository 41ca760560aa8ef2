"""The store's own safety rules: what it refuses, records and fails closed on, whatever the caller does."""

from __future__ import annotations

import asyncio
import contextlib
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
from policystore.store.lkg import LastKnownGood
from support.waiting import eventually

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

        store.subscribe(guard, types=[EventType.UPDATED, EventType.MODE_CHANGED, EventType.EMERGENCY])
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
    """A store whose history was replaced (a restore, a failover that lost writes) is followed, failing closed."""

    @staticmethod
    def copy_database(source: Path, target: Path) -> None:
        """Copy one SQLite database over another with SQLite's backup API, as a restore does."""
        with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
            src.backup(dst)

    async def test_restored_older_store_followed_and_trading_held(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """After a restore to version 1: version 1 is held, announced, saved, and no trade opens until a write."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        lkg = tmp_path / "lkg.json"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=lkg)
        heard: list[PolicyChanged] = []
        store.subscribe(heard.append)
        try:
            self.copy_database(db, backup)
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            await store.update({"modes.NORMAL.max_positions": 11}, reason="tune")
            heard.clear()
            self.copy_database(backup, db)
            with caplog.at_level(logging.ERROR, logger="policystore"):
                await store.refresh()
            assert (1, 30) == (store.get("version"), store.get("modes.NORMAL.max_positions"))
            assert "history was replaced" in caplog.text
            assert [(EventType.UPDATED, 1, 3)] == [(e.type, e.version, e.previous_version) for e in heard]
            assert ["modes.NORMAL.max_positions"] == [c.path for c in heard[0].changes]
            assert not await store.can_open_new_trades()
            await store.update({"modes.NORMAL.max_positions": 25}, reason="confirm after the restore")
            assert await store.can_open_new_trades()
        finally:
            await store.close()

    async def test_restore_overwrites_a_newer_last_known_good_copy(self, tmp_path: Path) -> None:
        """The saved copy follows the store back, so a restart during an outage does not revive lost versions."""
        db, backup, lkg = tmp_path / "policy.db", tmp_path / "backup.db", tmp_path / "lkg.json"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=lkg)
        try:
            self.copy_database(db, backup)
            await store.set_emergency_mode(True, reason="halt", actor=OPERATOR)

            def saved_version() -> int:
                saved = LastKnownGood(lkg).read()
                return -1 if saved is None else saved.version

            await eventually(lambda: saved_version() == 2)
            self.copy_database(backup, db)
            await store.refresh()
        finally:
            await store.close()
        saved = LastKnownGood(lkg).read()
        assert saved is not None
        assert (1, False) == (saved.version, saved.emergency.active)

    async def test_same_version_number_other_content_detected(self, tmp_path: Path) -> None:
        """After a lost write, the next write reuses its number; the content check still notices."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        follower = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        other = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            self.copy_database(db, backup)
            await follower.set_emergency_mode(True, reason="halt", actor=OPERATOR)  # version 2, then lost
            self.copy_database(backup, db)
            await other.update({"modes.NORMAL.max_leverage": 4.0}, reason="tune")  # another version 2
            await follower.refresh()
            assert (2, False, 4.0) == (
                follower.get("version"),
                follower.get("emergency.active"),
                follower.get("modes.NORMAL.max_leverage"),
            )
            assert not await follower.can_open_new_trades()
        finally:
            await follower.close()
            await other.close()

    async def test_followers_halt_the_store_for_every_process(self, tmp_path: Path) -> None:
        """A process that follows the store turns the kill switch on, so a process started later refuses too."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        follower = await PolicyStore.open(f"sqlite:///{db}", lkg_path=tmp_path / "lkg.json")
        try:
            self.copy_database(db, backup)
            await follower.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            self.copy_database(backup, db)
            await eventually(lambda: follower.get("emergency.active") is True)
            assert ("policystore", 2) == (follower.get("emergency.activated_by"), follower.get("version"))
        finally:
            await follower.close()
        late = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            assert not await late.can_open_new_trades()
            assert "went back to version 1" in late.get("emergency.reason")
        finally:
            await late.close()

    async def test_store_restored_then_written_past_the_held_version(self, tmp_path: Path) -> None:
        """Held v3; restored to v2, then v3 and v4 written anew: the check finds v3 is not the one held."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        follower = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        other = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            await follower.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            self.copy_database(db, backup)
            await follower.set_emergency_mode(True, reason="halt", actor=OPERATOR)  # version 3, then lost
            self.copy_database(backup, db)
            await other.update({"modes.NORMAL.max_positions": 11}, reason="tune")
            await other.update({"modes.NORMAL.max_positions": 10}, reason="tune")
            await follower.refresh()
            assert (4, 10, False) == (
                follower.get("version"),
                follower.get("modes.NORMAL.max_positions"),
                follower.get("emergency.active"),
            )
            assert not await follower.can_open_new_trades()
        finally:
            await follower.close()
            await other.close()

    async def test_own_write_after_unnoticed_restore_is_installed(self, tmp_path: Path) -> None:
        """A breaker write made on the restored store is what this process holds, not its older copy."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            self.copy_database(db, backup)
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            await store.update({"modes.NORMAL.max_positions": 11}, reason="tune")
            self.copy_database(backup, db)
            allowed = await store.report_daily_loss(0.5, reporter="risk-engine")
            assert (False, True, 2) == (allowed, store.get("emergency.active"), store.get("version"))
        finally:
            await store.close()


class TestNumbersAsText:
    """A number sent as text is checked against the hard limits like any number."""

    async def test_text_leverage_above_cap_refused(self, store: PolicyStore) -> None:
        """'50' is refused by the hard limit, not waved through as text."""
        with pytest.raises(PolicyValidationError, match="hard limit"):
            await store.update({"modes.NORMAL.max_leverage": "50"}, reason="tune", actor=ADMIN)
        assert (1, 5.0) == (store.get("version"), store.get("modes.NORMAL.max_leverage"))

    async def test_text_cap_still_caps(self, store: PolicyStore) -> None:
        """A cap given as text still binds every mode."""
        with pytest.raises(PolicyValidationError, match="hard limit"):
            await store.update(
                {"hard_limits.max_leverage": "10", "modes.NORMAL.max_leverage": 50}, reason="tune", actor=ADMIN
            )
        assert 1 == store.get("version")


class TestEventsNeverStranded:
    """Every queued event is delivered, whatever happens to the task delivering it."""

    async def test_close_delivers_events_queued_behind_a_slow_subscriber(self) -> None:
        """Events queued while another task delivers still reach watchers before close ends them."""
        store = PolicyStore(MemoryBackend(f"close-{uuid.uuid4().hex}"), lkg_path=None, environ={})
        await store.initialize()
        events = store.watch()

        async def slow(_event: PolicyChanged) -> None:
            await asyncio.sleep(0.05)

        store.subscribe(slow)
        first = asyncio.create_task(store.update({"modes.NORMAL.max_positions": 20}, reason="a"))
        await asyncio.sleep(0.01)
        await store.update({"modes.NORMAL.max_positions": 21}, reason="b")
        await store.close()
        await first
        versions = [event.version async for event in events]
        assert [2, 3] == sorted(set(versions))

    async def test_cancelled_caller_keeps_delivery_in_version_order(self, store: PolicyStore) -> None:
        """A write whose caller gives up mid-delivery: every subscriber still sees versions in order."""
        seen: list[tuple[int, str]] = []

        async def slow(event: PolicyChanged) -> None:
            await asyncio.sleep(0.02)
            seen.append((event.version, event.type.value))

        store.subscribe(slow, types=[EventType.UPDATED, EventType.MODE_CHANGED])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(store.switch_mode("DEFENSIVE", reason="a", actor=ADMIN), timeout=0.01)
        await store.update({"modes.NORMAL.max_positions": 20}, reason="b", actor=OPERATOR)
        await eventually(lambda: (3, "policy.updated") in seen)
        assert [2, 2, 3] == [version for version, _ in seen]
        assert ["policy.updated", "policy.mode.changed", "policy.updated"] == [kind for _, kind in seen]

    async def test_cancelled_delivery_hands_on_the_rest(self, store: PolicyStore) -> None:
        """Cancelling the task that delivers does not leave later events waiting for the next change."""
        heard: list[int] = []
        started = asyncio.Event()

        async def slow(event: PolicyChanged) -> None:
            started.set()
            await asyncio.sleep(0.05)
            heard.append(event.version)

        store.subscribe(slow)
        first = asyncio.create_task(store.update({"modes.NORMAL.max_positions": 20}, reason="a"))
        await started.wait()
        await store.update({"modes.NORMAL.max_positions": 21}, reason="b")  # queued behind the first
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await eventually(lambda: 3 in heard)
        assert 2 in heard


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
