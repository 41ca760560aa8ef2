"""Expiring changes through the store, on SQLite and Redis: they end on time by each process's clock.

Most tests give the stores a clock of their own (``clock=``) and move it on,
so an hour-long change ends without an hour's wait; the tests of the timer
itself use a lifetime of a second of real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from policystore import (
    Actor,
    PermissionDeniedError,
    PolicyStore,
    PolicyValidationError,
    Role,
    StoreUnavailableError,
    SyncPolicyStore,
    VersionConflictError,
)
from policystore.store.opening import backend_for
from policystore.store.sources import GateRefusal
from policystore.testing import SwitchableBackend
from support.waiting import eventually

HOUR = 3600
LEVERAGE = "modes.NORMAL.max_leverage"
OPERATOR = Actor("otto", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


class Clock:
    """A clock the test moves by hand; starts at the real time, so stored times look ordinary."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.now = datetime.now(UTC) + offset

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock on by ``timedelta(**delta)``."""
        self.now += timedelta(**delta)


class Offset:
    """The real clock, ``offset`` ahead (or behind)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on SQLite, then on Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/policy.db"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def clock() -> Clock:
    """The clock every store of a test shares unless it says otherwise."""
    return Clock()


@pytest.fixture
async def writer(url: str, clock: Clock) -> AsyncIterator[PolicyStore]:
    """A store that writes and does not follow changes, so it records no return by itself."""
    store = await PolicyStore.open(url, watch=False, lkg_path=None, clock=clock)
    yield store
    await store.close()


async def returns(store: PolicyStore) -> list[int]:
    """The versions the store itself recorded as returns, oldest first."""
    return sorted(e.version for e in await store.history(limit=100) if e.by == "policystore" and e.version > 1)


class TestReadsAtTheEnd:
    """When the end comes, reads return the earlier values at once, with no write."""

    async def test_an_unreachable_reader_returns_the_earlier_values_and_writes_nothing(
        self, url: str, clock: Clock, writer: PolicyStore, tmp_path: Path
    ) -> None:
        """A reader cut off from its store answers the earlier values from the end on, stale, version unchanged."""
        switch = SwitchableBackend(backend_for(url, None))
        reader = await PolicyStore.open(switch, watch=False, lkg_path=tmp_path / "lkg.json", clock=clock)
        try:
            timed = await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
            await reader.refresh()
            switch.set_available(False)
            with pytest.raises(StoreUnavailableError):
                await reader.refresh()
            assert (True, 8.0) == (reader.stale, reader.get("risk.max_leverage"))
            clock.advance(minutes=59, seconds=59)
            assert 8.0 == reader.snapshot().risk.max_leverage
            clock.advance(seconds=1)
            assert 5.0 == reader.snapshot().risk.max_leverage
            read = (reader.get(LEVERAGE), reader.get("risk.max_leverage"), reader.get("version"))
            assert (5.0, 5.0, timed.version) == read
            assert () == reader.get("overrides")
            assert "has not recorded the return yet" in reader.explain("risk.max_leverage").detail
            switch.set_available(True)
            assert timed.version == await switch.current_version()  # the reader wrote nothing
        finally:
            await reader.close()

    async def test_a_reader_opened_on_its_saved_copy_after_the_end_reads_the_earlier_values(
        self, url: str, clock: Clock, writer: PolicyStore, tmp_path: Path
    ) -> None:
        """A process started during an outage, after the end, answers the earlier values from its saved copy."""
        lkg = tmp_path / "lkg.json"
        first = await PolicyStore.open(url, watch=False, lkg_path=lkg, clock=clock)
        await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        await first.refresh()
        await first.close()
        clock.advance(hours=2)
        switch = SwitchableBackend(backend_for(url, None), available=False)
        later = await PolicyStore.open(switch, watch=False, lkg_path=lkg, clock=clock)
        try:
            assert (True, 5.0) == (later.stale, later.get("risk.max_leverage"))
        finally:
            await later.close()

    async def test_get_follows_the_end_with_no_other_read(self, url: str) -> None:
        """With a one-second lifetime, get() alone (one dict lookup) answers the earlier value after the end."""
        store = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            timed = await store.update({LEVERAGE: 8.0}, reason="a second", expires_in=1.0, actor=ADMIN)
            assert 8.0 == store.get("risk.max_leverage")
            await eventually(lambda: store.get("risk.max_leverage") == 5.0)
            assert timed.version == store.get("version")
            assert timed.version == await store.backend.current_version()  # a store that only reads writes nothing
        finally:
            await store.close()

    def test_the_sync_facade_follows_the_end(self, url: str) -> None:
        """A SyncPolicyStore's get() answers the earlier value after the end: its private loop ends it."""
        with SyncPolicyStore.open(url, watch=False, lkg_path=None) as store:
            store.update({LEVERAGE: 8.0}, reason="a second", expires_in=1.0, actor=ADMIN)
            assert 8.0 == store.get("risk.max_leverage")
            deadline = time.monotonic() + 10
            while store.get("risk.max_leverage") != 5.0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert 5.0 == store.get("risk.max_leverage")

    async def test_the_trading_gate_follows_the_values_in_force(self, writer: PolicyStore, clock: Clock) -> None:
        """The kill switch turned off for a while is on again at the end: the gate refuses, with no write."""
        await writer.set_emergency_mode(True, reason="exchange outage", actor=OPERATOR)
        off = await writer.set_emergency_mode(False, reason="let the desk close out", expires_in=600, actor=ADMIN)
        assert writer.gate().allowed
        clock.advance(minutes=10)
        gate = writer.gate()
        assert (GateRefusal.KILL_SWITCH, off.version) == (gate.refusal, gate.policy.version)
        assert not await writer.can_open_new_trades()
        assert "exchange outage" == writer.get("emergency.reason")


class TestTheReturnRecorded:
    """The first process that can write and sees the end records the return, as the store itself."""

    async def test_a_following_store_records_the_return_once(self, url: str, clock: Clock, writer: PolicyStore) -> None:
        """Two following stores see the end: one return version, by policystore, naming the change."""
        followers = [await PolicyStore.open(url, lkg_path=None, clock=clock) for _ in range(2)]
        try:
            timed = await writer.switch_mode("DEFENSIVE", reason="calm the book", expires_in=HOUR, actor=OPERATOR)
            for store in followers:
                await eventually(lambda store=store: store.get("version") == timed.version)  # type: ignore[misc]
            clock.advance(hours=1)
            for store in followers:
                assert "NORMAL" == store.snapshot().active_mode  # the end, here; each tries to record it
            await eventually(lambda: all(s.get("version") == timed.version + 1 for s in followers))
            assert [timed.version + 1] == await returns(writer)
            entry = (await writer.history(limit=1))[0]
            assert f"the expiring change of version {timed.version} (otto: calm the book) ended" in entry.reason
            assert {"active_mode", f"overrides.{timed.version}"} == {c.path for c in entry.changes}
            assert timed.version + 1 == await writer.backend.current_version()
        finally:
            for store in followers:
                await store.close()

    async def test_the_return_needs_nobody(self, url: str, clock: Clock, writer: PolicyStore) -> None:
        """A store acting as a viewer still records the return of an admin's loosening: the store writes it."""
        viewer = await PolicyStore.open(url, lkg_path=None, clock=clock, actor=Actor("vera", Role.VIEWER))
        try:
            timed = await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
            await eventually(lambda: viewer.get("version") == timed.version)
            clock.advance(hours=1)
            assert 5.0 == viewer.snapshot().risk.max_leverage
            await eventually(lambda: viewer.get("version") == timed.version + 1)
            assert 5.0 == (await writer.refresh()).risk.max_leverage
        finally:
            await viewer.close()

    async def test_a_write_after_the_end_records_the_return_first(self, writer: PolicyStore, clock: Clock) -> None:
        """A write that finds a change past its end records the return, then itself: each entry its own change."""
        timed = await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        clock.advance(hours=2)
        after = await writer.update({"modes.NORMAL.max_positions": 20}, reason="fewer positions", actor=OPERATOR)
        newest, returned = (await writer.history(limit=2))[:2]
        assert (timed.version + 2, timed.version + 1) == (after.version, returned.version)
        assert ("policystore", {LEVERAGE, f"overrides.{timed.version}"}) == (
            returned.by,
            {c.path for c in returned.changes},
        )
        assert ("otto", ["modes.NORMAL.max_positions"]) == (newest.by, [c.path for c in newest.changes])

    async def test_a_write_expecting_the_version_before_the_return_goes_through(
        self, url: str, clock: Clock, writer: PolicyStore
    ) -> None:
        """Another process recorded the return of the version a write expects: it holds what the author saw."""
        timed = await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        clock.advance(hours=1)
        other = await PolicyStore.open(url, watch=False, lkg_path=None, clock=clock)
        try:
            assert await other._writer.record_returns() is not None
        finally:
            await other.close()
        done = await writer.update(
            {"modes.NORMAL.max_positions": 20}, reason="fewer", expected_version=timed.version, actor=OPERATOR
        )
        assert timed.version + 2 == done.version
        with pytest.raises(VersionConflictError):
            await writer.update({"modes.NORMAL.max_positions": 19}, reason="x", expected_version=timed.version)

    async def test_a_clock_ahead_of_the_writers_ends_early_here_and_leaves_the_record(self, url: str) -> None:
        """A process a minute ahead reads the earlier value at once but does not record the return early."""
        right = await PolicyStore.open(url, watch=False, lkg_path=None)
        ahead = await PolicyStore.open(url, lkg_path=None, clock=Offset(timedelta(minutes=1)))
        try:
            timed = await right.update({LEVERAGE: 8.0}, reason="a second", expires_in=1.0, actor=ADMIN)
            await eventually(lambda: ahead.get("version") == timed.version)
            assert 5.0 == ahead.get("risk.max_leverage")  # over already, by its clock
            await asyncio.sleep(0.2)
            assert [] == await returns(right)  # and it did not end the change for everyone
            assert ahead._copy.clock_ahead > timedelta(seconds=50)
            follower = await PolicyStore.open(url, lkg_path=None)  # a process whose clock agrees records it
            try:
                await eventually(lambda: follower.get("version") == timed.version + 1)
            finally:
                await follower.close()
            recorded = (await right.history(limit=1))[0]
            assert "policystore" == recorded.by
            assert recorded.at >= timed.overrides[0].until
        finally:
            await right.close()
            await ahead.close()


class TestLaterWrites:
    """A later write to the same paths replaces the expiring change."""

    async def test_a_write_for_good_to_the_same_path_is_not_returned(self, writer: PolicyStore, clock: Clock) -> None:
        """Leverage set for good after a timed raise stays, and no return is recorded at the old end."""
        await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        kept = await writer.update({LEVERAGE: 6.0}, reason="keep some room", actor=ADMIN)
        assert () == kept.overrides
        clock.advance(hours=2)
        assert 6.0 == writer.snapshot().risk.max_leverage
        assert kept == await writer.update({LEVERAGE: 6.0}, reason="again", actor=ADMIN)  # nothing to return
        assert [] == await returns(writer)

    async def test_a_write_to_another_path_keeps_it(self, writer: PolicyStore, clock: Clock) -> None:
        """A change to another path leaves the expiring change to end on time."""
        await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        other = await writer.update({"modes.NORMAL.max_positions": 20}, reason="fewer", actor=OPERATOR)
        assert 1 == len(other.overrides)
        clock.advance(hours=1)
        assert (5.0, 20) == (writer.snapshot().risk.max_leverage, writer.snapshot().risk.max_positions)


class TestExplainAndOverrides:
    """``explain`` says an expiring change is in force and until when; ``overrides`` lists them."""

    async def test_explain_names_the_change_and_its_end(self, writer: PolicyStore) -> None:
        """The explanation of a value a timed write set carries its end, its version and what it returns to."""
        timed = await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        until = timed.overrides[0].until
        explained = writer.explain("risk.max_leverage")
        assert (until, timed.version) == (explained.expires_at, explained.expiring_version)
        assert f"until {until.isoformat()}; then it returns to {LEVERAGE} 5.0" in explained.detail
        assert until.isoformat() == explained.to_dict()["expires_at"]
        assert None is writer.explain("risk.max_positions").expires_at
        listed = writer.get("overrides")
        assert [(timed.version, until, "ada", {LEVERAGE: 5.0})] == [
            (c.version, c.until, c.by, dict(c.replaced)) for c in listed
        ]
        assert "overrides" in writer.paths()

    async def test_an_explanation_kept_while_the_state_stands_is_made_again_when_the_change_ends(
        self, writer: PolicyStore, clock: Clock
    ) -> None:
        """explain answers the same explanation until the expiring change ends; then the value it returned to."""
        await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        first = writer.explain("risk.max_leverage")
        assert first is writer.explain("risk.max_leverage")
        clock.advance(hours=1)
        ended = writer.explain("risk.max_leverage")
        assert (8.0, 5.0) == (first.value, ended.value)
        assert None is ended.expires_at

    async def test_overrides_cannot_be_written(self, writer: PolicyStore) -> None:
        """The list is read-only: a write to it is refused, naming how to make an expiring change."""
        with pytest.raises(PolicyValidationError, match="give a write a lifetime"):
            await writer.update({"overrides": []}, reason="clear", actor=ADMIN)


class TestAuthority:
    """Who may write a change with a lifetime."""

    async def test_an_operator_cannot_loosen_for_an_hour_and_nothing_is_written(self, writer: PolicyStore) -> None:
        """An operator's one-hour raise of leverage is refused as a raise would be; an admin's goes through."""
        with pytest.raises(PermissionDeniedError):
            await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=OPERATOR)
        assert 1 == await writer.backend.current_version()
        done = await writer.update({LEVERAGE: 8.0}, reason="CPI print", expires_in=HOUR, actor=ADMIN)
        assert 2 == done.version

    async def test_an_operator_may_tighten_for_a_while_and_its_end_needs_nobody(
        self, writer: PolicyStore, clock: Clock
    ) -> None:
        """A timed switch to a stricter mode by an operator ends back in the mode before, loosening by itself."""
        await writer.switch_mode("DEFENSIVE", reason="calm", expires_in=1800, actor=OPERATOR)
        clock.advance(minutes=30)
        assert "NORMAL" == writer.snapshot().active_mode

    async def test_an_operator_cannot_turn_the_kill_switch_on_for_a_while(
        self, writer: PolicyStore, clock: Clock
    ) -> None:
        """Its end would turn it off, which needs an admin; an admin's timed kill switch ends on time."""
        with pytest.raises(PermissionDeniedError, match="its end turns it off"):
            await writer.set_emergency_mode(True, reason="news", expires_in=300, actor=OPERATOR)
        assert 1 == await writer.backend.current_version()
        await writer.set_emergency_mode(True, reason="news", expires_in=300, actor=ADMIN)
        assert not writer.gate().allowed
        clock.advance(minutes=5)
        assert writer.gate().allowed

    @pytest.mark.parametrize("bad", [0, -1, 31 * 86400 + 1, float("nan"), True, "1h"])
    async def test_a_bad_lifetime_is_refused_and_nothing_is_written(self, writer: PolicyStore, bad: Any) -> None:
        """Non-positive, too long, not a number: refused naming expires_in, before anything is read or written."""
        with pytest.raises(PolicyValidationError) as caught:
            await writer.update({LEVERAGE: 4.0}, reason="tighter", expires_in=bad)
        assert ("expires_in",) == caught.value.paths
        assert 1 == await writer.backend.current_version()
