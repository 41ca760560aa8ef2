"""The fleet with members in OS processes of their own, on SQLite, Redis and PostgreSQL.

Members appear by name; a frozen member (SIGSTOP) makes a wait incomplete and
is named; a killed one (SIGKILL) becomes lost and stops blocking waits; a
closed one leaves at once; a member whose reports fail says so.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from policystore import FleetMember, FleetStatus, PolicyStore
from policystore.model.fleet import LOST_AFTER
from support.fleet import Member, members
from support.redis_server import RedisServer
from support.waiting import eventually


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each back end that processes share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/policy.db"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def writer(url: str) -> AsyncIterator[PolicyStore]:
    """The store the test writes and reads the fleet with; it follows nothing, so it is no member."""
    store = await PolicyStore.open(url, watch=False, lkg_path=None)
    yield store
    await store.close()


async def _by_name(store: PolicyStore) -> dict[str, FleetMember]:
    return {m.name: m for m in await store.fleet()}


async def _heard_just_now(store: PolicyStore, member: Member) -> None:
    """Wait until ``member`` reported under half a second ago, so that freezing it leaves it live for seconds."""
    for _ in range(500):
        found = (await _by_name(store)).get(member.name)
        if found is not None and found.lag_seconds < 0.5:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"{member.name} did not report within 5 s")


@pytest.mark.timeout(180)
class TestMemberProcesses:
    """Member processes on a store that several processes share."""

    async def test_members_appear_with_their_names_hosts_and_pids(self, url: str, writer: PolicyStore) -> None:
        """Three processes opened as executor-1..3 are listed by name, each with its own pid, at version 1."""
        with members(url, "executor-1", "executor-2", "executor-3") as started:
            listed = await _by_name(writer)

            assert {m.name: (socket.gethostname(), m.pid, 1, FleetStatus.LIVE) for m in started} == {
                name: (m.host, m.pid, m.version, m.status) for name, m in listed.items()
            }
            assert {m.member_id for m in started} == {m.member_id for m in listed.values()}

    async def test_a_frozen_member_makes_a_wait_incomplete_and_is_named_until_it_runs_again(
        self, url: str, writer: PolicyStore
    ) -> None:
        """SIGSTOP one member: the kill switch's wait ends incomplete naming it alone; after SIGCONT it confirms."""
        with members(url, "executor-1", "executor-2") as (running, frozen):
            await _heard_just_now(writer, frozen)
            frozen.freeze()
            new = await writer.set_emergency_mode(True, reason="exchange outage", updated_by="ops")

            ack = await writer.wait_for_fleet(new.version, timeout=1.0)

            assert not ack.complete
            assert (["executor-1"], ["executor-2"]) == ([m.name for m in ack.acked], [m.name for m in ack.missing])
            assert (frozen.pid, 1) == (ack.missing[0].pid, ack.missing[0].version)

            frozen.thaw()
            after = await writer.wait_for_fleet(new.version, timeout=60)

            assert after.complete
            assert ["executor-1", "executor-2"] == [m.name for m in after.acked]
            assert new.version == running.status()["version"] == frozen.status()["version"]

    async def test_a_killed_member_becomes_lost_and_stops_blocking_waits(self, url: str, writer: PolicyStore) -> None:
        """SIGKILL a member: a wait completes once it is lost (5 s unheard), listing it as lost; fleet() shows it so."""
        with members(url, "executor-1", "executor-2") as (_running, killed):
            killed.kill()
            new = await writer.set_emergency_mode(True, reason="exchange outage", updated_by="ops")

            ack = await writer.wait_for_fleet(new.version, timeout=60)
            listed = await _by_name(writer)

            assert ack.complete
            assert (["executor-1"], ["executor-2"]) == ([m.name for m in ack.acked], [m.name for m in ack.lost])
            assert (FleetStatus.LOST, 1) == (listed["executor-2"].status, listed["executor-2"].version)
            assert listed["executor-2"].lag_seconds >= LOST_AFTER

    async def test_a_closed_member_leaves_at_once(self, url: str, writer: PolicyStore) -> None:
        """A process that closes its store is gone from the fleet as soon as close() returns, not lost later."""
        with members(url, "executor-1", "executor-2") as (staying, leaving):
            assert {"executor-1", "executor-2"} == set(await _by_name(writer))

            leaving.close()

            assert ["executor-1"] == list(await _by_name(writer))
            assert 1 == staying.status()["version"]

    async def test_a_member_sees_itself_and_its_lag_while_behind(self, url: str, writer: PolicyStore) -> None:
        """The member's own fleet() entry is current; the writer sees a frozen member's lag in versions."""
        with members(url, "executor-1") as (member,):
            await _heard_just_now(writer, member)
            member.freeze()
            try:
                await writer.set_emergency_mode(True, reason="halt", updated_by="ops")
                new = await writer.set_emergency_mode(True, reason="still halted", updated_by="ops")
                (listed,) = await writer.fleet()
                assert (1, new.version - 1) == (listed.version, listed.lag_versions)
            finally:
                member.thaw()
            await eventually(lambda: member.status()["version"] == new.version, deadline=60)
            own = member.status()["own"]
            assert (member.member_id, new.version, 0, None) == (
                own["member_id"],
                own["version"],
                own["lag_versions"],
                own["error"],
            )


@pytest.mark.redis
@pytest.mark.timeout(120)
class TestReportingFailure:
    """A member whose credentials may read the store but not write its record: visible, never silent."""

    async def test_a_member_that_cannot_report_logs_once_exposes_the_error_and_still_follows(self) -> None:
        """With HSET denied by an ACL, the member logs one line, fleet_error and its own entry say why, it follows."""
        with RedisServer() as server:
            client = redis.asyncio.Redis(port=server.port)
            namespace = f"fleet{uuid.uuid4().hex[:8]}"
            await client.execute_command("ACL", "SETUSER", "reader", "on", ">secret", "~*", "&*", "+@all", "-hset")
            url = server.url(namespace=namespace)
            denied = url.replace("redis://", "redis://reader:secret@")
            writer = await PolicyStore.open(url, watch=False, lkg_path=None)
            try:
                with members(denied, "read-only-1") as (member,):
                    started = time.monotonic()
                    status = member.status()
                    await eventually(lambda: time.monotonic() - started > 3)  # several reports fail meanwhile
                    new = await writer.set_emergency_mode(True, reason="halt", updated_by="ops")
                    await eventually(lambda: member.status()["version"] == new.version, deadline=30)
                    later = member.status()

                    assert "NOPERM" in status["fleet_error"] or "permission" in status["fleet_error"].lower()
                    assert status["own"]["error"] == status["fleet_error"]
                    assert later["fleet_error"] is not None
                    assert 1 == member.log().count("cannot report to the fleet"), member.log()
                    assert [] == await writer.fleet()
            finally:
                await writer.close()
                await client.aclose()
