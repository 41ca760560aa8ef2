"""The token table's cache: a read route never waits on the store to check a token.

A server reloads the table in the background; lookups that need a reload at
the same moment share one read of it. Both are seen from outside: Redis
counts the reads it answers, and a store frozen with SIGSTOP answers none.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from live_server import LiveServer

from policystore import PolicyStore
from policystore.server import TokenStore
from support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, since it is frozen on purpose."""
    with RedisServer() as own:
        yield own


def _table_reads(server: RedisServer) -> int:
    """How many times the server answered HGETALL (the read of a whole records collection)."""
    with redis.Redis(port=server.port) as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


async def test_lookups_due_for_a_reload_at_once_share_one_read_of_the_table(server):
    """32 lookups finding the cached table too old at the same moment cause one read of it, not 32."""
    store = await PolicyStore.open(server.url("tokens"), watch=False)
    try:
        tokens = TokenStore(store.backend, ttl=0)  # no background refresh: every lookup finds the copy too old
        secret = await tokens.create("vera-viewer", "viewer")
        assert (await tokens.authenticate(secret)) is not None
        before = _table_reads(server)

        found = await asyncio.gather(*(tokens.authenticate(secret) for _ in range(32)))

        assert {"vera-viewer"} == {record.name for record in found if record is not None}
        assert 32 == len([record for record in found if record is not None])
        assert 1 == _table_reads(server) - before
    finally:
        await store.close()


async def test_a_token_created_during_a_read_of_the_table_is_found_at_its_first_use(server):
    """A lookup of a token created while an older read of the table was under way reads the table again."""
    store = await PolicyStore.open(server.url("tokens"), watch=False)
    try:
        tokens = TokenStore(store.backend, ttl=0)
        await tokens.create("vera-viewer", "viewer")
        earlier = asyncio.gather(*(tokens.authenticate("ps_not-a-token") for _ in range(4)))
        await asyncio.sleep(0)  # the read for these lookups is under way
        secret = await tokens.create("otto-operator", "operator")

        record = await tokens.authenticate(secret)
        await earlier

        assert record is not None
        assert "otto-operator" == record.name
    finally:
        await store.close()


def test_reads_are_answered_while_the_store_is_frozen_past_the_token_cache_age(server):
    """With Redis stopped (SIGSTOP) for several cache lifetimes, a viewer's reads still answer at once.

    The token table is older than its lifetime by then, and its background
    reload hangs on the frozen store (whose calls may take 60 s); a lookup that
    waited for that reload would outlast the client's 10 s timeout.
    """
    live = LiveServer(server.url("frozen") + "&timeout=60", token_ttl=0.2).start()
    pid = server.pid
    assert pid is not None
    try:
        with httpx.Client(base_url=live.base, timeout=10, headers=live.headers("viewer")) as http:
            assert 200 == http.get("/v1/values/risk.max_leverage").status_code
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(1.0)  # five cache lifetimes: the table is due for reloading
                answers = [http.get("/v1/values/risk.max_leverage") for _ in range(20)]
            finally:
                os.kill(pid, signal.SIGCONT)

        assert [200] * 20 == [answer.status_code for answer in answers]
        assert {"risk.max_leverage"} == {answer.json()["path"] for answer in answers}
    finally:
        live.stop()


async def test_a_token_created_by_another_process_is_found_at_its_first_use(server):
    """A token created elsewhere just after this table was read is accepted at once, not refused until a reload."""
    store = await PolicyStore.open(server.url("tokens"), watch=False)
    elsewhere = await PolicyStore.open(server.url("tokens"), watch=False)
    try:
        # Age never reloads this table; only the unknown token can.
        tokens = TokenStore(store.backend, ttl=600, miss_interval=0.5)
        assert (await tokens.authenticate("ps_not-a-token")) is None  # the table was read just now
        secret = await TokenStore(elsewhere.backend).create("otto-operator", "operator")

        record = await tokens.authenticate(secret)

        assert record is not None
        assert "otto-operator" == record.name
    finally:
        await elsewhere.close()
        await store.close()


async def test_a_flood_of_unknown_tokens_reads_the_table_at_most_once_per_interval(server):
    """Unknown tokens wait for their turn to read the table; 200 of them cause a handful of reads, not 200."""
    store = await PolicyStore.open(server.url("tokens"), watch=False)
    try:
        interval = 0.1
        tokens = TokenStore(store.backend, ttl=600, miss_interval=interval)
        await tokens.load()
        before = _table_reads(server)
        started = time.monotonic()

        async def wave() -> list[object]:
            return await asyncio.gather(*(tokens.authenticate(f"ps_forged-{n}") for n in range(40)))

        answers = []
        for _ in range(5):
            answers += await wave()
        elapsed = time.monotonic() - started

        assert [None] * 200 == answers
        reads = _table_reads(server) - before
        # Each wave waits for a read begun after it asked; reads begin at least `interval` apart.
        assert 5 <= reads <= elapsed / interval + 1, (reads, elapsed)
    finally:
        await store.close()
