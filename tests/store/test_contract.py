"""The store contract: one suite, run against every back end through ``store_url``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from policystore import (
    Actor,
    EventType,
    PermissionDeniedError,
    PolicyChanged,
    PolicyStore,
    PolicyValidationError,
    RiskMode,
    Role,
    Source,
    UnknownPathError,
    VersionConflictError,
)
from policystore.model.changes import stored_values
from support.waiting import eventually

VIEWER = Actor("vera", Role.VIEWER)
OPERATOR = Actor("otto", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[PolicyStore]:
    """A freshly opened store of each back end."""
    opened = await PolicyStore.open(store_url)
    yield opened
    await opened.close()


async def state(store: PolicyStore) -> tuple[int, dict[str, object], int]:
    """What a refused write must leave alone: version, stored values, history length."""
    return store.get("version"), stored_values(store.snapshot()), len(await store.history(limit=1000))


class TestOpen:
    """Opening a new store."""

    async def test_open_new_store_seeds_version_one(self, store: PolicyStore) -> None:
        """A new store starts at version 1 with the built-in policy and one history entry."""
        assert 1 == store.get("version")
        assert "NORMAL" == store.get("active_mode")
        assert 5.0 == store.get("risk.max_leverage")
        assert [1] == [e.version for e in await store.history()]
        explanation = store.explain("risk.max_leverage")
        assert (Source.STORE, 1, False) == (explanation.source, explanation.version, explanation.stale)

    async def test_open_second_time_keeps_version(self, store: PolicyStore, store_url: str) -> None:
        """Opening an existing store does not seed again."""
        await store.update({"modes.NORMAL.max_positions": 20}, reason="fewer", updated_by="ann")
        again = await PolicyStore.open(store_url)
        try:
            assert 2 == again.get("version")
            assert 20 == again.get("modes.NORMAL.max_positions")
        finally:
            await again.close()

    async def test_paths_every_path_resolves(self, store: PolicyStore) -> None:
        """Every listed path answers from get, get_value and explain."""
        for path in store.paths():
            value = store.get(path)
            assert value == await store.get_value(path)
            assert value == store.explain(path).value

    async def test_get_unknown_path_raises_or_default(self, store: PolicyStore) -> None:
        """An unknown path raises UnknownPathError with suggestions, unless a default is given."""
        with pytest.raises(UnknownPathError) as caught:
            store.get("risk.max_levrage")
        assert "risk.max_leverage" == caught.value.suggestions[0]
        assert caught.value.suggestions
        assert store.get("risk.max_levrage", None) is None
        assert 7 == await store.get_value("nope", 7)
        with pytest.raises(KeyError):
            await store.get_value("nope")


class TestWrites:
    """Each write makes exactly one new version and one history entry."""

    async def test_switch_mode_one_version_one_entry(self, store: PolicyStore) -> None:
        """switch_mode moves to the mode and records who, why, when and what."""
        policy = await store.switch_mode(RiskMode.DEFENSIVE, updated_by="trader", reason="volatile")
        assert 2 == policy.version
        assert 3.0 == store.get("risk.max_leverage")
        entries = await store.history()
        assert [2, 1] == [e.version for e in entries]
        entry = entries[0]
        assert ("trader", "volatile") == (entry.by, entry.reason)
        assert timedelta(0) == entry.at.utcoffset()
        assert [("active_mode", "NORMAL", "DEFENSIVE")] == [(c.path, c.old, c.new) for c in entry.changes]

    async def test_switch_mode_name_string_accepted(self, store: PolicyStore) -> None:
        """A mode's name works like the enum."""
        await store.switch_mode("DEFENSIVE", reason="calm down")
        assert "DEFENSIVE" == (await store.get_policy()).active_mode
        assert 3.0 == (await store.get_active_risk_config()).max_leverage

    async def test_update_several_fields_one_version(self, store: PolicyStore) -> None:
        """One update of several fields is one version with a change per field."""
        await store.update(
            {"modes.NORMAL.max_leverage": 4.0, "strategies.moderate.cooldown_seconds": 200},
            updated_by="ann",
            reason="tune",
        )
        assert 2 == store.get("version")
        assert 4.0 == store.get("risk.max_leverage")
        entry = (await store.history(limit=1))[0]
        assert {"modes.NORMAL.max_leverage": (5.0, 4.0), "strategies.moderate.cooldown_seconds": (120, 200)} == {
            c.path: (c.old, c.new) for c in entry.changes
        }

    async def test_set_emergency_mode_blocks_and_unblocks_trades(self, store: PolicyStore) -> None:
        """The kill switch blocks new trades; each flip is one version."""
        assert await store.can_open_new_trades()
        await store.set_emergency_mode(True, reason="exchange outage", updated_by="ops")
        assert not await store.can_open_new_trades()
        assert (True, "exchange outage", 2) == (
            store.get("emergency.active"),
            store.get("emergency.reason"),
            store.get("version"),
        )
        await store.set_emergency_mode(False, reason="exchange back", updated_by="ops")
        assert await store.can_open_new_trades()
        assert [3, 2, 1] == [e.version for e in await store.history()]

    async def test_expected_version_mismatch_conflict(self, store: PolicyStore) -> None:
        """A stale expected_version is refused with the current version; nothing changes."""
        await store.update({"modes.NORMAL.max_positions": 25}, reason="a")
        before = await state(store)
        with pytest.raises(VersionConflictError) as caught:
            await store.update({"modes.NORMAL.max_positions": 20}, reason="b", expected_version=1)
        assert (1, 2) == (caught.value.expected_version, caught.value.current_version)
        assert before == await state(store)

    async def test_expected_version_current_applies(self, store: PolicyStore) -> None:
        """The right expected_version writes."""
        await store.update({"modes.NORMAL.max_positions": 25}, reason="a", expected_version=1)
        assert 2 == store.get("version")

    @pytest.mark.parametrize(
        ("changes", "error"),
        [
            ({"modes.NORMAL.max_leverage": -1, "modes.NORMAL.max_positions": 0}, PolicyValidationError),
            ({"modes.NORMAL.max_leverage": 11.0}, PolicyValidationError),
            ({"modes.NORMAL.max_levrage": 3.0}, UnknownPathError),
            ({"risk.max_leverage": 3.0}, PolicyValidationError),
            ({}, PolicyValidationError),
        ],
    )
    async def test_update_refused_changes_nothing(
        self, store: PolicyStore, changes: dict[str, object], error: type[Exception]
    ) -> None:
        """A refused update leaves version, snapshot and history as they were."""
        before = await state(store)
        snap = store.snapshot()
        with pytest.raises(error):
            await store.update(changes, reason="bad")
        assert before == await state(store)
        assert snap is store.snapshot()

    async def test_update_without_reason_refused(self, store: PolicyStore) -> None:
        """Every write needs a reason."""
        before = await state(store)
        with pytest.raises(PolicyValidationError) as caught:
            await store.update({"modes.NORMAL.max_positions": 20}, reason="  ")
        assert ("reason",) == caught.value.paths
        assert before == await state(store)

    async def test_switch_mode_unknown_mode_refused(self, store: PolicyStore) -> None:
        """Switching to a mode that does not exist is refused, naming the mode."""
        with pytest.raises(PolicyValidationError) as caught:
            await store.switch_mode("TURBO", reason="go")
        assert "TURBO" in str(caught.value)
        assert 1 == store.get("version")


class TestRoles:
    """The store enforces roles on every write."""

    async def test_viewer_any_write_denied(self, store: PolicyStore) -> None:
        """A viewer cannot write, even to lower risk; nothing changes."""
        before = await state(store)
        with pytest.raises(PermissionDeniedError):
            await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="x", actor=VIEWER)
        with pytest.raises(PermissionDeniedError):
            await store.set_emergency_mode(True, reason="x", actor=VIEWER)
        assert before == await state(store)

    @pytest.mark.parametrize(
        "write",
        [
            lambda s: s.update({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=OPERATOR),
            lambda s: s.switch_mode("AGGRESSIVE_SMALL_ACCOUNT", reason="more", actor=OPERATOR),
            lambda s: s.rollback(1, reason="back", actor=OPERATOR),
        ],
        ids=["raise-limit", "looser-mode", "rollback"],
    )
    async def test_operator_raise_risk_denied(self, store: PolicyStore, write: Callable[..., object]) -> None:
        """An operator cannot raise risk or roll back; nothing changes."""
        await store.update({"modes.NORMAL.max_positions": 20}, reason="setup")
        before = await state(store)
        with pytest.raises(PermissionDeniedError) as caught:
            await write(store)  # type: ignore[misc]
        assert "admin" == caught.value.required_role
        assert before == await state(store)

    async def test_operator_lower_and_kill_switch_on_allowed(self, store: PolicyStore) -> None:
        """An operator lowers limits, switches to a stricter mode and turns the kill switch on, but not off."""
        await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="less", actor=OPERATOR)
        await store.switch_mode("DEFENSIVE", reason="calm", actor=OPERATOR)
        await store.set_emergency_mode(True, reason="halt", actor=OPERATOR)
        assert ["otto", "otto", "otto"] == [e.by for e in await store.history(limit=3)]
        before = await state(store)
        with pytest.raises(PermissionDeniedError):
            await store.set_emergency_mode(False, reason="resume", actor=OPERATOR)
        assert before == await state(store)
        assert not await store.can_open_new_trades()

    async def test_admin_raise_and_kill_switch_off_allowed(self, store: PolicyStore) -> None:
        """An admin raises risk and turns the kill switch off; the actor is the recorded author."""
        await store.set_emergency_mode(True, reason="halt", actor=OPERATOR)
        await store.set_emergency_mode(False, reason="resume", actor=ADMIN, updated_by="someone-else")
        await store.update({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=ADMIN)
        assert 6.0 == store.get("risk.max_leverage")
        assert ["ada", "ada", "otto"] == [e.by for e in await store.history(limit=3)]


class TestAudit:
    """diff and rollback."""

    async def test_diff_versions_field_changes(self, store: PolicyStore) -> None:
        """diff lists the stored fields that differ between two versions."""
        await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="a")
        await store.switch_mode("DEFENSIVE", reason="b")
        assert [("active_mode", "NORMAL", "DEFENSIVE"), ("modes.NORMAL.max_leverage", 5.0, 4.0)] == [
            (c.path, c.old, c.new) for c in await store.diff(1, 3)
        ]
        assert [("active_mode", "NORMAL", "DEFENSIVE")] == [(c.path, c.old, c.new) for c in await store.diff(2)]

    async def test_diff_missing_version_refused(self, store: PolicyStore) -> None:
        """diff against a version that does not exist names it."""
        with pytest.raises(PolicyValidationError) as caught:
            await store.diff(1, 9)
        assert "9" in str(caught.value)

    async def test_rollback_new_version_equal_content(self, store: PolicyStore) -> None:
        """Rollback writes a new version whose content equals the old one's."""
        await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="a")
        await store.set_emergency_mode(True, reason="b")
        policy = await store.rollback(2, reason="undo the halt", updated_by="ada")
        assert 4 == policy.version
        assert stored_values(await store.version_at(2)) == stored_values(store.snapshot())
        entry = (await store.history(limit=1))[0]
        assert (4, "ada", "undo the halt") == (entry.version, entry.by, entry.reason)
        assert "emergency.active" in entry.changed_paths
        assert [] == await store.diff(2)


class TestEvents:
    """Change events through subscribe() and watch()."""

    async def test_subscribe_events_kinds_and_contents(self, store: PolicyStore) -> None:
        """Asked for every kind, each write gives policy.updated plus its kind, with version, values, who, why, when."""
        seen: list[PolicyChanged] = []
        store.subscribe(seen.append, types=[EventType.UPDATED, EventType.MODE_CHANGED, EventType.EMERGENCY])
        await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="tune", updated_by="ann")
        await store.switch_mode("DEFENSIVE", reason="calm", updated_by="bob")
        await store.set_emergency_mode(True, reason="halt", updated_by="cat")
        await eventually(lambda: len(seen) >= 5)
        assert [
            (2, "policy.updated"),
            (3, "policy.updated"),
            (3, "policy.mode.changed"),
            (4, "policy.updated"),
            (4, "policy.emergency"),
        ] == [(e.version, e.type.value) for e in seen]
        mode_event = seen[2]
        assert (2, "bob", "calm") == (mode_event.previous_version, mode_event.by, mode_event.reason)
        assert ({"active_mode": "NORMAL"}, {"active_mode": "DEFENSIVE"}) == (mode_event.previous, mode_event.new)
        assert timedelta(0) == seen[4].at.utcoffset()
        assert seen[4].new["emergency.active"] is True

    async def test_watch_yields_changes_in_order(self, store: PolicyStore) -> None:
        """watch() yields every change event from now on, in version order."""
        received: list[PolicyChanged] = []

        async def consume() -> None:
            async for event in store.watch(types={"policy.updated", "policy.emergency"}):
                received.append(event)
                if event.type is EventType.EMERGENCY:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await store.update({"modes.NORMAL.max_positions": 20}, reason="a")
        await store.set_emergency_mode(True, reason="halt")
        await asyncio.wait_for(task, timeout=10)
        assert [(2, EventType.UPDATED), (3, EventType.UPDATED), (3, EventType.EMERGENCY)] == [
            (e.version, e.type) for e in received
        ]

    async def test_failing_subscriber_logged_others_served(
        self, store: PolicyStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A subscriber that raises is logged; the write and the other subscribers go on."""
        seen: list[int] = []

        def broken(_event: PolicyChanged) -> None:
            raise RuntimeError("subscriber bug")

        async def good(event: PolicyChanged) -> None:
            seen.append(event.version)

        store.subscribe(broken)
        store.subscribe(good)
        with caplog.at_level(logging.ERROR, logger="policystore"):
            policy = await store.update({"modes.NORMAL.max_positions": 20}, reason="a")
            await eventually(lambda: 2 in seen)
        assert 2 == policy.version
        assert any("subscriber bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)

    async def test_unsubscribe_stops_delivery(self, store: PolicyStore) -> None:
        """After unsubscribe a callback hears nothing more."""
        seen: list[int] = []
        unsubscribe = store.subscribe(lambda e: seen.append(e.version))
        await store.update({"modes.NORMAL.max_positions": 20}, reason="a")
        await eventually(lambda: 2 in seen)
        unsubscribe()
        await store.update({"modes.NORMAL.max_positions": 19}, reason="b")
        assert [2] == seen


class TestTradingGuards:
    """Kill switch and drawdown breaker."""

    async def test_report_daily_loss_below_limit_no_change(self, store: PolicyStore) -> None:
        """A loss below the active mode's max drawdown leaves trading open."""
        assert await store.report_daily_loss(0.049, reporter="risk-engine")
        assert 1 == store.get("version")

    async def test_report_daily_loss_at_limit_trips_kill_switch(self, store: PolicyStore) -> None:
        """A loss reaching max_daily_drawdown turns the kill switch on, by the reporter."""
        assert not await store.report_daily_loss(0.05, reporter="risk-engine")
        assert store.get("emergency.active") is True
        assert "risk-engine" == store.get("emergency.activated_by")
        entry = (await store.history(limit=1))[0]
        assert ("risk-engine", 2) == (entry.by, entry.version)
        assert not await store.report_daily_loss(0.2, reporter="risk-engine")
        assert 2 == store.get("version")


class TestSeveralWriters:
    """Several stores and concurrent writers on one URL."""

    async def test_two_stores_change_reaches_other(self, store: PolicyStore, store_url: str) -> None:
        """A change made through one store reaches another store on the same URL."""
        other = await PolicyStore.open(store_url)
        try:
            await store.switch_mode("DEFENSIVE", reason="calm", updated_by="ann")
            await eventually(lambda: other.get("version") == 2)
            assert 3.0 == other.get("risk.max_leverage")
            await other.set_emergency_mode(True, reason="halt", updated_by="bob")
            await eventually(lambda: store.get("emergency.active") is True)
            assert not await store.can_open_new_trades()
        finally:
            await other.close()

    async def test_other_store_events_delivered(self, store: PolicyStore, store_url: str) -> None:
        """Subscribers of one store hear the changes another store makes."""
        seen: list[PolicyChanged] = []
        store.subscribe(seen.append, types=[EventType.UPDATED, EventType.MODE_CHANGED])
        other = await PolicyStore.open(store_url)
        try:
            await other.switch_mode("DEFENSIVE", reason="calm", updated_by="bob")
            await eventually(lambda: len(seen) >= 2)
            assert [(2, "policy.updated", "bob"), (2, "policy.mode.changed", "bob")] == [
                (e.version, e.type.value, e.by) for e in seen
            ]
        finally:
            await other.close()

    async def test_concurrent_updates_no_change_lost(self, store: PolicyStore, store_url: str) -> None:
        """Many concurrent updates of different fields, without expected_version, all land."""
        other = await PolicyStore.open(store_url)
        strategies = ("conservative", "moderate", "aggressive", "defensive")
        writes = [(s, i, (store, other)[i % 2]) for s in strategies for i in range(5)]
        try:
            await asyncio.gather(
                *(
                    writer.update({f"strategies.{s}.cooldown_seconds": 1000 + i * 10 + n}, reason=f"{s}-{i}")
                    for n, (s, i, writer) in enumerate(writes)
                )
            )
            assert 1 + len(writes) == await store.backend.current_version()
            entries = await store.history(limit=100)
            assert list(range(len(writes) + 1, 0, -1)) == [e.version for e in entries]
            assert sorted(f"{s}-{i}" for s, i, _ in writes) == sorted(e.reason for e in entries[:-1])
            for entry in entries[:-1]:
                assert 1 == len(entry.changes)
            await store.refresh()
            final = {s: max(1000 + i * 10 + n for n, (t, i, _) in enumerate(writes) if t == s) for s in strategies}
            for s in strategies:
                path = f"strategies.{s}.cooldown_seconds"
                history_values = [c.new for e in entries for c in e.changes if c.path == path]
                assert 5 == len(history_values)
                assert history_values[0] == store.get(f"strategies.{s}.cooldown_seconds")
            assert set(final) == set(strategies)
        finally:
            await other.close()
