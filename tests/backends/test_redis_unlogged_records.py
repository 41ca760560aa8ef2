"""Fleet reports on Redis: written at once for readers, logged to the append-only file once a second.

Every member reports every version it installs; with ``appendfsync always`` a
logged report is an fsync before Redis answers anyone, so only one report a
second is logged and the others are written unlogged. A restart of the server
then finds each member's last logged record, which is at most about a second
old and never names a version newer than the member had.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from policystore.backends.base import UnloggedRecords
from policystore.backends.redis import RedisBackend
from policystore.model.fleet import FLEET_COLLECTION
from policystore.model.policy import default_policy
from policystore.store.fleet_reports import FleetReporter
from policystore.store.sources import ReadState
from support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A redis-server of this module's own, restarted by its tests."""
    with RedisServer() as started:
        yield started


@pytest.fixture
async def backend(server: RedisServer) -> AsyncIterator[RedisBackend]:
    """A connected back end on a fresh namespace of the module's server."""
    server.start()
    made = RedisBackend.from_url(server.url(namespace=f"unlogged{id(object())}"))
    await made.connect()
    yield made
    await made.close()


def _restart(server: RedisServer) -> None:
    """Kill the server with SIGKILL and start it again: it holds what its append-only file holds."""
    server.kill9()
    server.start()


class _Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _state(version: int) -> ReadState:
    return ReadState.live(default_policy().with_record({"version": version}))


class TestUnloggedPut:
    """RedisRecords.put_unlogged against a real server that is killed and started again."""

    async def test_an_unlogged_record_is_read_at_once_and_a_restart_brings_back_the_logged_one(
        self, server: RedisServer, backend: RedisBackend
    ) -> None:
        """Readers see the unlogged record; after SIGKILL and a restart the record is the last one put."""
        records = backend.records
        assert isinstance(records, UnloggedRecords)
        await records.put(FLEET_COLLECTION, "member", {"version": 1})
        await records.put_unlogged(FLEET_COLLECTION, "member", {"version": 2})
        assert {"version": 2} == await records.get(FLEET_COLLECTION, "member")
        _restart(server)
        assert {"version": 1} == await records.get(FLEET_COLLECTION, "member")

    async def test_an_unlogged_put_checks_its_names_as_put_does(self, backend: RedisBackend) -> None:
        """A bad collection name is refused before anything is sent."""
        records: Any = backend.records
        with pytest.raises(ValueError, match="collection"):
            await records.put_unlogged("no spaces", "member", {"version": 1})
        assert {} == await backend.records.all("no_spaces")


class TestMemberReports:
    """A member's reports: the first and one a second logged, those between them unlogged."""

    async def test_reports_between_logged_ones_are_lost_in_a_restart_and_never_name_a_newer_version(
        self, server: RedisServer, backend: RedisBackend
    ) -> None:
        """Versions 2 and 3, reported within a second of the first report, are gone after a restart; 4 is not."""
        clock = _Clock()
        held = [_state(1)]
        reporter = FleetReporter(backend.records, lambda: held[-1], name="member-1", url=backend.url, clock=clock)
        started = clock.now

        async def reported_after(version: int, at: float) -> int:
            """Install ``version`` ``at`` seconds after the first report; the version its record then names."""
            held.append(_state(version))
            clock.now = started + at
            reporter.applied()
            return await _record_version(backend, reporter.member_id, version)

        await reporter.start(report_now=True)
        try:
            assert await _record_version(backend, reporter.member_id, 1) == 1
            assert await reported_after(2, 0.5) == 2
            assert await reported_after(3, 0.9) == 3
            _restart(server)
            assert await _record_version(backend, reporter.member_id) == 1
            assert await reported_after(4, 1.0) == 4
            _restart(server)
            assert await _record_version(backend, reporter.member_id) == 4
        finally:
            await reporter.leave()


async def _record_version(backend: RedisBackend, member_id: str, until: int | None = None) -> int | None:
    """The version the member's record names; with ``until``, once it names that one (or the deadline passed)."""
    for _ in range(1000):
        record = await backend.records.get(FLEET_COLLECTION, member_id)
        version = None if record is None else record["version"]
        if until is None or version == until:
            return version
        await asyncio.sleep(0.01)
    return version
