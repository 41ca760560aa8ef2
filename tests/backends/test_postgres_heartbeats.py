"""Fleet reports on PostgreSQL are committed without waiting for a synchronous standby; everything else waits.

The server here names a synchronous standby that never connects, so every
commit that waits for one never returns: a fleet member's report must still be
written and read back at once, while the policy and every other record stay
durable (their writes fail within the timeout, saying the version may have been
written, rather than being acknowledged before the standby has them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from policystore.backends.postgres import PostgresBackend
from policystore.errors import StoreUnavailableError
from policystore.model.fleet import FLEET_COLLECTION
from policystore.model.history import HistoryEntry
from policystore.model.policy import default_policy
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def _make_tables(server: PostgresServer) -> None:
    backend = PostgresBackend.from_url(server.url(namespace="setup"))
    await backend.connect()
    await backend.close()


@pytest.fixture(scope="module")
def unreplicated() -> Iterator[PostgresServer]:
    """A server whose commits wait for a synchronous standby that never comes (its tables made before that)."""
    server = PostgresServer()
    try:
        server.start()
        asyncio.run(_make_tables(server))
        server.execute("ALTER SYSTEM SET synchronous_standby_names = 'absent'", database="postgres")
        server.execute("SELECT pg_reload_conf()", database="postgres")
        deadline = time.monotonic() + 30
        while [("absent",)] != server.execute("SHOW synchronous_standby_names"):
            assert time.monotonic() < deadline, "the server never took the new setting"
            time.sleep(0.05)
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def backend(unreplicated: PostgresServer) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend.from_url(unreplicated.url(namespace="heartbeats") + "&timeout=1")
    await backend.connect()
    yield backend
    await backend.close()


async def test_fleet_report_written_without_waiting_for_the_standby(backend: PostgresBackend) -> None:
    """A fleet member's record is stored and read back while every durable commit waits for the absent standby."""
    record = {"member_id": "m1", "version": 7}
    await backend.records.put(FLEET_COLLECTION, "m1", record)
    await backend.records.put(FLEET_COLLECTION, "m1", record | {"version": 8})
    assert {"m1": record | {"version": 8}} == await backend.records.all(FLEET_COLLECTION)


async def test_other_records_and_versions_wait_for_the_standby(backend: PostgresBackend) -> None:
    """A token record and a policy version are never acknowledged before the standby has them."""
    with pytest.raises(StoreUnavailableError):
        await backend.records.put("tokens", "t1", {"hash": "h"})
    document = default_policy().document() | {"version": 1}
    entry = HistoryEntry(1, datetime.now(UTC), "tester", "first", ())
    with pytest.raises(StoreUnavailableError) as caught:
        await backend.commit(document, entry)
    assert "may or may not have been written" in str(caught.value)


async def test_fleet_report_on_listening_connection_not_held_either(backend: PostgresBackend) -> None:
    """While the back end listens, its fleet reports go on the listening connection, unheld by the standby too."""
    notices = backend.notifications()
    assert 0 == await asyncio.wait_for(anext(notices), 10)
    assert backend._listening.usable() is not None
    await backend.records.put(FLEET_COLLECTION, "m2", {"member_id": "m2", "version": 1})
    await backend.records.put(FLEET_COLLECTION, "m2", {"member_id": "m2", "version": 2})
    assert {"member_id": "m2", "version": 2} == await backend.records.get(FLEET_COLLECTION, "m2")
