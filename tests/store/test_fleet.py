"""The fleet within one process, on every back end: members, their reports, waits, leaving, and bad arguments.

Member processes of their own (frozen, killed, closed) are tested in tests/backends/test_fleet_processes.py.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from policystore import (
    FleetAck,
    FleetIncompleteError,
    FleetStatus,
    PolicyStore,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    SyncPolicyStore,
)
from policystore.backends.memory import MemoryBackend
from policystore.model.fleet import DROP_AFTER, FLEET_COLLECTION, LOST_AFTER, REPORT_EVERY
from policystore.testing import SwitchableBackend
from support.waiting import eventually


def _record(member_id: str, name: str, version: int, age: float) -> dict[str, object]:
    """A member's record as a process that last reported ``age`` seconds ago left it."""
    now = time.time()
    return {
        "member_id": member_id,
        "name": name,
        "host": "host-b",
        "pid": 4242,
        "version": version,
        "stale": False,
        "reported_at": now - age,
        "started_at": now - age - 60,
    }


async def _open(url: str, name: str) -> PolicyStore:
    return await PolicyStore.open(url, name=name, lkg_path=None)


class TestMembers:
    """Every store that follows changes is a member; one that does not is not."""

    async def test_following_stores_are_members_with_their_names_host_pid_and_version(self, store_url: str) -> None:
        """Two stores opened with names are listed by those names, with this host, this pid and version 1."""
        a, b = await _open(store_url, "executor-1"), await _open(store_url, "executor-2")
        reader = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        try:
            members = await reader.fleet()

            assert ["executor-1", "executor-2"] == [m.name for m in members]
            assert {(socket.gethostname(), os.getpid(), 1, 0, FleetStatus.LIVE)} == {
                (m.host, m.pid, m.version, m.lag_versions, m.status) for m in members
            }
            assert {a.member_id, b.member_id} == {m.member_id for m in members}
            assert reader.member_id is None
        finally:
            for store in (a, b, reader):
                await store.close()

    async def test_a_member_reports_a_new_version_and_its_lag_is_measured_against_the_store(
        self, store_url: str
    ) -> None:
        """After a write each member's record holds the new version; lag counts versions and seconds."""
        member = await _open(store_url, "executor-1")
        writer = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        try:
            new = await writer.set_emergency_mode(True, reason="halt", updated_by="ops")
            ack = await writer.wait_for_fleet(new.version, timeout=30)
            (listed,) = await writer.fleet()

            assert (new.version, 0) == (listed.version, listed.lag_versions)
            assert 0 <= listed.lag_seconds < LOST_AFTER
            assert (True, ["executor-1"], []) == (ack.complete, [m.name for m in ack.acked], list(ack.missing))
        finally:
            await member.close()
            await writer.close()

    async def test_a_closed_store_leaves_the_fleet_at_once(self, store_url: str) -> None:
        """Right after close() returns, the store's record is gone: no wait, no lost entry."""
        leaving, staying = await _open(store_url, "leaving"), await _open(store_url, "staying")
        try:
            await eventually(lambda: leaving.fleet_error is None)
            assert 2 == len(await staying.fleet())

            await leaving.close()

            assert ["staying"] == [m.name for m in await staying.fleet()]
            assert await staying.backend.records.get(FLEET_COLLECTION, str(leaving.member_id)) is None
        finally:
            await staying.close()

    async def test_the_default_name_is_the_program_name(self, store_url: str) -> None:
        """Without name=, a member is named after the program that runs it (here pytest)."""
        store = await PolicyStore.open(store_url, lkg_path=None)
        try:
            (member,) = await store.fleet()
            assert "pytest" in member.name
        finally:
            await store.close()

    @pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there", 7])
    def test_a_name_that_cannot_name_a_process_is_refused_before_anything_opens(self, name: object) -> None:
        """An empty, blank, over-long, non-printable or non-text name is a validation error naming the field."""
        with pytest.raises(PolicyValidationError) as caught:
            PolicyStore("memory://", name=name)  # type: ignore[arg-type]
        assert ("name",) == caught.value.paths


class TestLostAndDropped:
    """A member not heard for 5 s is lost and holds up nothing; after 5 minutes it is dropped and deleted."""

    async def test_a_silent_member_is_lost_and_does_not_block_a_wait(self, store_url: str) -> None:
        """A record last written 10 s ago is listed as lost; a wait for a version it lacks is complete without it."""
        writer = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        try:
            await writer.backend.records.put(FLEET_COLLECTION, "ghost", _record("ghost", "crashed-1", 1, 10))
            new = await writer.set_emergency_mode(True, reason="halt", updated_by="ops")

            (ghost,) = await writer.fleet()
            ack = await writer.wait_for_fleet(new.version, timeout=0)

            assert (FleetStatus.LOST, 1, "crashed-1") == (ghost.status, ghost.lag_versions, ghost.name)
            assert ghost.lag_seconds >= 10
            assert (True, (), ["crashed-1"]) == (ack.complete, ack.missing, [m.name for m in ack.lost])
        finally:
            await writer.close()

    async def test_a_member_unheard_for_five_minutes_is_dropped_and_its_record_deleted(self, store_url: str) -> None:
        """fleet() leaves out a record older than DROP_AFTER and deletes it; a merely lost one stays."""
        store = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        records = store.backend.records
        try:
            await records.put(FLEET_COLLECTION, "old", _record("old", "gone-1", 1, DROP_AFTER + 1))
            await records.put(FLEET_COLLECTION, "lost", _record("lost", "lost-1", 1, DROP_AFTER - 10))

            assert ["lost-1"] == [m.name for m in await store.fleet()]
            assert {"lost"} == set(await records.all(FLEET_COLLECTION))
        finally:
            await store.close()

    async def test_records_that_are_no_members_hold_up_nothing(self, store_url: str) -> None:
        """A record missing fields, of the wrong types or under another key is ignored by fleet() and waits."""
        store = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        records = store.backend.records
        try:
            await records.put(FLEET_COLLECTION, "junk", {"hello": "world"})
            await records.put(FLEET_COLLECTION, "typed", {**_record("typed", "t", 1, 0), "version": "1"})
            await records.put(FLEET_COLLECTION, "boolean", {**_record("boolean", "b", 1, 0), "pid": True})
            await records.put(FLEET_COLLECTION, "forever", {**_record("forever", "f", 1, 0), "reported_at": 1e300})
            await records.put(FLEET_COLLECTION, "elsewhere", _record("another-key", "e", 0, 0))

            assert [] == await store.fleet()
            assert (await store.wait_for_fleet(1, timeout=0)).complete
        finally:
            await store.close()

    async def test_a_member_whose_clock_runs_ahead_is_heard_just_now(self, store_url: str) -> None:
        """A report dated in the reader's future counts as heard now (its age is never negative)."""
        store = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        try:
            await store.backend.records.put(FLEET_COLLECTION, "ahead", _record("ahead", "ahead-1", 1, -30))
            (member,) = await store.fleet()
            assert (0.0, FleetStatus.LIVE) == (member.lag_seconds, member.status)
        finally:
            await store.close()


class TestWait:
    """wait_for_fleet answers once every live member has the version, or when the time runs out."""

    async def test_a_member_behind_makes_the_wait_incomplete_and_is_named(self, store_url: str) -> None:
        """A live member stuck at version 1 is missing from a wait for version 2; the others are acked."""
        member = await _open(store_url, "executor-1")
        try:
            await member.backend.records.put(FLEET_COLLECTION, "stuck", _record("stuck", "stuck-1", 1, 0))
            new = await member.set_emergency_mode(True, reason="halt", updated_by="ops")

            ack = await member.wait_for_fleet(new.version, timeout=0.2)

            assert not ack.complete
            assert (["executor-1"], ["stuck-1"]) == ([m.name for m in ack.acked], [m.name for m in ack.missing])
            assert 0.2 <= ack.waited
            assert "stuck-1 (pid 4242 on host-b)" in ack.summary()
            with pytest.raises(FleetIncompleteError) as caught:
                ack.check(0.2)
            assert (new.version, ["stuck-1"]) == (caught.value.version, [m["name"] for m in caught.value.missing])
        finally:
            await member.close()

    async def test_a_fleet_of_no_one_is_complete_at_once(self, store_url: str) -> None:
        """With no member at all the wait returns complete, says so, and names no one."""
        store = await PolicyStore.open(store_url, watch=False, lkg_path=None)
        try:
            ack = await store.wait_for_fleet(1, timeout=10)
            assert FleetAck(1, complete=True, acked=(), missing=(), lost=(), waited=ack.waited) == ack
            assert ack.summary().startswith("No live member")
        finally:
            await store.close()

    @pytest.mark.parametrize(
        ("version", "seconds", "fields"),
        [
            (0, 1.0, ("version",)),
            (True, 1.0, ("version",)),
            ("2", 1.0, ("version",)),
            (1, -1.0, ("timeout",)),
            (1, math.nan, ("timeout",)),
            (1, math.inf, ("timeout",)),
            (1, 10_000.0, ("timeout",)),
            (1, False, ("timeout",)),
            (None, None, ("version", "timeout")),
        ],
    )
    async def test_a_wait_with_bad_arguments_is_refused_naming_them(
        self, version: object, seconds: object, fields: tuple[str, ...]
    ) -> None:
        """A version that is no version number, or a timeout that is no number of seconds, is a validation error."""
        store = await PolicyStore.open(f"memory://{uuid.uuid4()}", watch=False, lkg_path=None)
        try:
            with pytest.raises(PolicyValidationError) as caught:
                await store.wait_for_fleet(version, timeout=seconds)  # type: ignore[arg-type]
            assert fields == caught.value.paths
        finally:
            await store.close()

    async def test_a_wait_on_a_store_out_of_reach_raises_once_the_time_is_up(self) -> None:
        """When the records cannot be read at all before the timeout, the wait says the store is unreachable."""
        backend = SwitchableBackend(MemoryBackend(f"down-{uuid.uuid4()}"))
        store = await PolicyStore.open(backend, watch=False, lkg_path=None)
        try:
            backend.set_available(False)
            with pytest.raises(StoreUnavailableError):
                await store.wait_for_fleet(1, timeout=0.05)
        finally:
            backend.set_available(True)
            await store.close()


class TestReportingFailure:
    """A member that cannot report says so: logged once per outage, and exposed as fleet_error."""

    async def test_a_failing_report_is_logged_once_exposed_and_cleared_when_it_works_again(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Through an outage of several reports: one warning, fleet_error set; after it, cleared and said so."""
        backend = SwitchableBackend(MemoryBackend(f"outage-{uuid.uuid4()}"))
        member = await PolicyStore.open(backend, name="executor-1", lkg_path=None)
        try:
            await eventually(lambda: member.fleet_error is None)
            with caplog.at_level(logging.WARNING, logger="policystore.fleet"):
                backend.set_available(False)
                await eventually(lambda: member.fleet_error is not None)
                failed_at = time.monotonic()
                # Several reports fail during the outage (one a second): still one line.
                await eventually(lambda: time.monotonic() - failed_at > 2.5 * REPORT_EVERY)
                assert isinstance(member.fleet_error, StoreUnavailableError)
                backend.set_available(True)
                await eventually(lambda: member.fleet_error is None)

            lines = [r.getMessage() for r in caplog.records if r.name == "policystore.fleet"]
            assert 2 == len(lines), lines
            assert "cannot report to the fleet" in lines[0]
            assert "executor-1" in lines[0]
            assert "again" in lines[1]
        finally:
            await member.close()

    async def test_a_report_that_fails_unexpectedly_is_kept_as_the_error_logged_once_and_retried(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bug under a report (here the records raise RuntimeError) neither ends the reports nor goes unseen."""
        backend = MemoryBackend(f"bug-{uuid.uuid4()}")
        member = await PolicyStore.open(backend, name="executor-2", lkg_path=None)
        try:
            await eventually(lambda: member.fleet_error is None)

            async def broken_put(collection: str, key: str, record: dict[str, object]) -> None:
                raise RuntimeError("records broke")

            with caplog.at_level(logging.WARNING, logger="policystore.fleet"):
                monkeypatch.setattr(backend.records, "put", broken_put)
                await eventually(lambda: member.fleet_error is not None)
                failed_at = time.monotonic()
                await eventually(lambda: time.monotonic() - failed_at > 2.5 * REPORT_EVERY)
                error = member.fleet_error
                assert isinstance(error, PolicyStoreError)
                assert "RuntimeError: records broke" in str(error)
                assert isinstance(error.__cause__, RuntimeError)
                monkeypatch.undo()
                await eventually(lambda: member.fleet_error is None)

            fleet_lines = [r for r in caplog.records if r.name == "policystore.fleet"]
            assert 2 == len(fleet_lines), [r.getMessage() for r in fleet_lines]
            assert "records broke" in fleet_lines[0].getMessage()
            assert fleet_lines[0].exc_info is not None  # the traceback of a bug is kept in the log
            assert "again" in fleet_lines[1].getMessage()
            assert ["executor-2"] == [m.name for m in await member.fleet()]
        finally:
            await member.close()


class TestSync:
    """SyncPolicyStore offers the fleet without await."""

    def test_sync_store_lists_the_fleet_and_waits_for_it(self, tmp_path: Path) -> None:
        """fleet(), wait_for_fleet(), member_id and fleet_error work on the facade."""
        url = f"sqlite:///{tmp_path}/policy.db"
        with SyncPolicyStore.open(url, name="sync-member", lkg_path=None) as member:
            new = member.set_emergency_mode(True, reason="halt", updated_by="ops")
            ack = member.wait_for_fleet(new.version, timeout=30)
            assert ack.complete
            assert (["sync-member"], [member.member_id]) == (
                [m.name for m in member.fleet()],
                [m.member_id for m in member.fleet()],
            )
            assert member.fleet_error is None
