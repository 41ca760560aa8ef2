"""How often a member reports: at most once per gap for a burst of versions, at once when a waiter asks."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import pytest

from policystore import PolicyStore
from policystore.backends._report_requests import report_request, requested_version
from policystore.backends.memory import MemoryBackend, MemoryRecords
from policystore.model.fleet import FLEET_COLLECTION
from policystore.store import fleet_reports
from support.waiting import eventually

#: Long enough that no report of these tests comes from the end of a gap or from a heartbeat.
LONG = 60.0
#: The back ends whose waiters ask the members to report.
ASKING = (
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
)


@pytest.fixture
def slow_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Members report a version they apply only when asked (no gap ends, no heartbeat comes during a test)."""
    monkeypatch.setattr(fleet_reports, "REPORT_GAP", LONG)
    monkeypatch.setattr(fleet_reports, "REPORT_EVERY", LONG)


class _Forgery(NamedTuple):
    """A member and a writer on one Redis, and a client of anyone's that publishes on their change channel."""

    member: PolicyStore
    writer: PolicyStore
    publish: Callable[[int], Awaitable[Any]]


@pytest.fixture
async def forgery(redis_url: str) -> AsyncIterator[_Forgery]:
    """A member named ``member``, a writer that does not follow, and a way to publish any report request."""
    import redis.asyncio  # the Redis extra, here only: the core-only run skips these tests

    member = await PolicyStore.open(redis_url, lkg_path=None, name="member")
    writer = await PolicyStore.open(redis_url, watch=False, lkg_path=None)
    client = redis.asyncio.Redis.from_url(redis_url.split("?", maxsplit=1)[0])
    channel = member.backend.keys.channel  # type: ignore[attr-defined]
    try:
        yield _Forgery(member, writer, lambda version: client.publish(channel, report_request(version)))
    finally:
        await client.aclose()
        await member.close()
        await writer.close()


class _CountedMemory(MemoryBackend):
    """A memory store whose records count the calls made on them (the member's reports among them)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls = 0
        self.records = MemoryRecords(self._check().records, before=self._count, url=self.url)

    def _count(self) -> None:
        self.calls += 1


def _url(kind: str, request: pytest.FixtureRequest) -> str:
    fixture = "redis_url" if kind == "redis" else "postgres_url"
    return str(request.getfixturevalue(fixture))


async def _reported_at(store: PolicyStore, member: PolicyStore) -> float:
    record = await store.backend.records.get(FLEET_COLLECTION, str(member.member_id))
    assert record is not None
    return float(record["reported_at"])


class TestPace:
    """A member rewrites its record at most once per gap, and the newest version always gets reported."""

    async def test_a_burst_of_versions_is_reported_by_far_fewer_writes_and_ends_on_the_newest(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Forty versions back to back: at most one report per gap (plus the first and the last), then the newest."""
        # A gap long enough that even a slow machine writes the forty versions within a few gaps:
        # without the pacing the member would report all forty.
        monkeypatch.setattr(fleet_reports, "REPORT_GAP", 0.5)
        name = f"pace-{uuid.uuid4().hex}"
        backend = _CountedMemory(name)
        member = await PolicyStore.open(backend, lkg_path=None, name="member")  # type: ignore[arg-type]
        writer = await PolicyStore.open(f"memory://{name}", watch=False, lkg_path=None)
        try:
            await asyncio.sleep(fleet_reports.REPORT_GAP * 2)  # the opening report is older than the gap
            before, started = backend.calls, time.monotonic()
            for n in range(40):
                newest = await writer.update({"strategies.moderate.cooldown_seconds": n + 1}, reason="burst")
                await asyncio.sleep(0)  # the member installs each version as it comes
            await eventually(lambda: member.snapshot().version == newest.version)
            elapsed = time.monotonic() - started
            reports = backend.calls - before

            # One at the first version, one per gap the burst lasted, one at its end.
            assert reports <= math.ceil(elapsed / fleet_reports.REPORT_GAP) + 2
            assert reports < 40
            ack = await writer.wait_for_fleet(newest.version, timeout=10)
            assert (True, ["member"]) == (ack.complete, [m.name for m in ack.acked])
        finally:
            await member.close()
            await writer.close()

    @pytest.mark.usefixtures("slow_reports")
    async def test_without_requests_a_version_applied_within_the_gap_waits_for_its_end(self) -> None:
        """On a back end that carries no requests, a wait shorter than the gap finds the member behind."""
        url = f"memory://pace-{uuid.uuid4().hex}"
        member = await PolicyStore.open(url, lkg_path=None, name="member")
        writer = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            new = await writer.set_emergency_mode(True, reason="halt", updated_by="ops")
            await eventually(lambda: member.snapshot().version == new.version)

            ack = await writer.wait_for_fleet(new.version, timeout=0.5)

            assert (False, ["member"]) == (ack.complete, [m.name for m in ack.missing])
        finally:
            await member.close()
            await writer.close()


class TestRequests:
    """A waiter's request makes every member report the version at once; a forged one costs one report at most."""

    @pytest.mark.parametrize("kind", ASKING)
    @pytest.mark.usefixtures("slow_reports")
    async def test_a_wait_asks_the_members_and_they_report_at_once_within_the_gap(
        self, kind: str, request: pytest.FixtureRequest
    ) -> None:
        """With no report due for a minute, two members confirm a write as soon as the waiter asks."""
        url = _url(kind, request)
        members = [await PolicyStore.open(url, lkg_path=None, name=f"member-{n}") for n in range(2)]
        writer = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            new = await writer.set_emergency_mode(True, reason="halt", updated_by="ops")

            ack = await writer.wait_for_fleet(new.version, timeout=20)

            assert (True, ["member-0", "member-1"]) == (ack.complete, sorted(m.name for m in ack.acked))
        finally:
            for store in (*members, writer):
                await store.close()

    @pytest.mark.redis
    @pytest.mark.usefixtures("slow_reports")
    async def test_forged_requests_make_one_report_of_a_held_version_and_no_more(self, forgery: _Forgery) -> None:
        """Requests published by anyone: one report for the version held, none for one reported already or absurd."""
        member, writer = forgery.member, forgery.writer
        new = await writer.set_emergency_mode(True, reason="halt", updated_by="ops")
        await eventually(lambda: member.snapshot().version == new.version)
        first = await _reported_at(writer, member)

        await forgery.publish(new.version)
        second = await _changed_report(writer, member, first)
        for version in (new.version, new.version - 1, 10**18, new.version):
            await forgery.publish(version)
        await asyncio.sleep(1)  # time for any report the requests would make

        assert first < second == await _reported_at(writer, member)
        assert new.version == member.snapshot().version  # the requests changed nothing else
        ack = await writer.wait_for_fleet(new.version, timeout=4)
        assert (True, ["member"]) == (ack.complete, [m.name for m in ack.acked])

    @pytest.mark.redis
    @pytest.mark.usefixtures("slow_reports")
    async def test_a_request_for_a_version_far_ahead_does_not_hold_back_a_real_one(self, forgery: _Forgery) -> None:
        """Requests for versions never written are kept aside; the waiter's own request is still answered."""
        for version in range(10**6, 10**6 + 40):  # more than are kept
            await forgery.publish(version)
        new = await forgery.writer.set_emergency_mode(True, reason="halt", updated_by="ops")

        ack = await forgery.writer.wait_for_fleet(new.version, timeout=4)  # within LOST_AFTER: the member is not lost

        assert (True, ["member"]) == (ack.complete, [m.name for m in ack.acked])


async def _changed_report(writer: PolicyStore, member: PolicyStore, old: float) -> float:
    """The member's reported_at once it differs from ``old`` (within 10 s)."""
    deadline = time.monotonic() + 10
    while (now := await _reported_at(writer, member)) == old:
        assert time.monotonic() < deadline, "the member never reported again"
        await asyncio.sleep(0.01)
    return now


class TestMessage:
    """The request message is read strictly: anything else on the channel is no request."""

    def test_a_request_reads_back_as_its_version(self) -> None:
        """The message made for a version is read back as that version, as bytes and as text."""
        assert (7, 7) == (requested_version(report_request(7)), requested_version(report_request(7).encode()))

    @pytest.mark.parametrize(
        "message",
        [
            '{"fleet": 0}',
            '{"fleet": -3}',
            '{"fleet": 07}',
            '{"fleet": true}',
            '{"fleet": 1.5}',
            '{"fleet": "4"}',
            '{"fleet":4}',
            '{"fleet": 4, "version": 9}',
            '{"fleet": 4}\n{"version": 9}',
            '{"fleet": 12345678901234567890}',
            '{"version": 4}',
            "",
            "fleet",
        ],
    )
    def test_anything_but_the_exact_form_is_no_request(self, message: str) -> None:
        """Zero, signs, leading zeros, other types, other spacing, more members, lines or digits: not a request."""
        assert requested_version(message) is None
