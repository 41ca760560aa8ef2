"""The listening connection's own statements: a fleet report held up by a lock, notices sent meanwhile.

A follower's fleet reports and confirm reads go on the connection it listens
on. A statement that gets no answer in time must end that connection (a late
answer must never be taken for a later statement's) and the listener must
start anew, telling the store to read; notices that arrive while a statement
waits must all still be handed over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from policystore.backends.base import Published
from policystore.backends.postgres import PostgresBackend
from policystore.errors import StoreUnavailableError
from policystore.model.fleet import FLEET_COLLECTION
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.policy import default_policy
from support.postgres_server import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LOCK_ROW = "SELECT 1 FROM policystore_aux WHERE namespace = %s AND tbl = %s AND key = %s FOR UPDATE"


def _version(n: int, mode: str = "NORMAL") -> tuple[dict[str, Any], HistoryEntry]:
    document = default_policy().document() | {"version": n, "active_mode": mode}
    return document, HistoryEntry(n, AT, "tester", f"write {n}", (FieldChange("active_mode", "NORMAL", mode),))


def _number(hint: int | Published) -> int:
    return hint.version if isinstance(hint, Published) else hint


@pytest.fixture
async def backend(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend.from_url(postgres_url + "&timeout=0.5")
    await backend.connect()
    yield backend
    await backend.close()


async def _next(notices: AsyncIterator[int | Published]) -> int:
    return _number(await asyncio.wait_for(anext(notices), 10))


async def test_report_without_answer_in_time_ends_the_session(
    backend: PostgresBackend, postgres_server: PostgresServer
) -> None:
    """A fleet report held up by a lock fails within the timeout; the listener then tells the store to read,
    listens anew once the lock is gone, and hands over the next version."""
    await backend.commit(*_version(1))
    notices = backend.notifications()
    assert 0 == await _next(notices)
    await backend.records.put(FLEET_COLLECTION, "m1", {"member_id": "m1", "version": 1})
    async with await psycopg.AsyncConnection.connect(postgres_server.conninfo()) as blocker:
        await blocker.execute(LOCK_ROW, (backend.namespace, FLEET_COLLECTION, "m1"))
        with pytest.raises(StoreUnavailableError):
            await backend.records.put(FLEET_COLLECTION, "m1", {"member_id": "m1", "version": 2})
        assert backend._listening.usable() is None
        assert 0 == await _next(notices)  # the session ended: read the store
        await blocker.rollback()
    assert 0 == await _next(notices)  # listening again
    await backend.commit(*_version(2, "DEFENSIVE"))
    assert 2 == await _next(notices)
    await backend.records.put(FLEET_COLLECTION, "m1", {"member_id": "m1", "version": 3})


async def test_notices_sent_while_a_report_waits_are_all_handed_over(
    backend: PostgresBackend, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Versions committed while the listening connection waits for a report's answer all reach the listener."""
    slow = PostgresBackend.from_url(postgres_url + "&timeout=5")
    await slow.connect()
    await backend.commit(*_version(1))
    notices = slow.notifications()
    try:
        assert 0 == await _next(notices)
        await slow.records.put(FLEET_COLLECTION, "m1", {"member_id": "m1", "version": 1})
        async with await psycopg.AsyncConnection.connect(postgres_server.conninfo()) as blocker:
            await blocker.execute(LOCK_ROW, (slow.namespace, FLEET_COLLECTION, "m1"))
            report = asyncio.ensure_future(slow.records.put(FLEET_COLLECTION, "m1", {"member_id": "m1", "version": 2}))
            await asyncio.sleep(0.2)
            for n in range(2, 6):
                await backend.commit(*_version(n, "DEFENSIVE" if n % 2 else "NORMAL"))
            await blocker.rollback()
        await asyncio.wait_for(report, 5)
        assert [2, 3, 4, 5] == [await _next(notices) for _ in range(4)]
        assert {"member_id": "m1", "version": 2} == await slow.records.get(FLEET_COLLECTION, "m1")
    finally:
        await slow.close()


async def test_notice_read_with_a_statement_answer_handed_over_at_once(
    backend: PostgresBackend, postgres_server: PostgresServer
) -> None:
    """A notice that comes in the same read as a statement's answer, after it, is handed over at once.

    The event loop is held (a blocking notify from another connection, then a pause)
    while the answer and the notice both arrive, so one read of the socket takes both.
    """
    notices = backend.notifications()
    assert 0 == await _next(notices)
    session = backend._listening.usable()
    assert session is not None
    answer = session.command("SELECT 1")  # sent now
    postgres_server.execute("SELECT pg_notify(%s, %s)", (backend.channel, '{"version": 9}'))
    time.sleep(0.3)  # noqa: ASYNC251 - holds the loop on purpose: both arrive before the socket is read
    assert [(b"1",)] == await answer
    assert '{"version": 9}' == await session.next(1.0)
