"""Failover without loss: a primary with a synchronous standby, the primary killed, the standby promoted.

Both servers run on loopback; the store reaches them through one multi-host URL
with ``target_session_attrs=read-write``, as a deployment would. Writers keep
writing while the primary is killed with SIGKILL; every write that was
acknowledged must be on the promoted standby, and the same URL must write
there again with no change of configuration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from policystore.errors import StoreUnavailableError
from policystore.store.store import PolicyStore
from support.postgres_server import PASSWORD, USER, PostgresServer
from support.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]
#: Writes acknowledged before the primary is killed, and by each writer after the promotion.
BEFORE, AFTER = 200, 25


@pytest.fixture
def pair() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    """A primary and a synchronous standby copied from it with pg_basebackup -R, both running."""
    primary = PostgresServer()
    standby: PostgresServer | None = None
    try:
        primary.start()
        standby = PostgresServer.standby_of(primary, "standby1")
        standby.start()
        # Synchronous from here on: a commit is acknowledged once the standby has flushed it.
        primary.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby1'", database="postgres")
        primary.execute("SELECT pg_reload_conf()", database="postgres")
        deadline = time.monotonic() + 60
        query = "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'"
        while [("sync",)] != primary.execute(query, database="postgres"):
            assert time.monotonic() < deadline, f"the standby never became synchronous:\n{standby.log_tail()}"
            time.sleep(0.05)
        assert [("on",)] == primary.execute("SHOW synchronous_commit")
        yield primary, standby
    finally:
        primary.cleanup()
        if standby is not None:
            standby.cleanup()


@dataclass
class Writer:
    """One store writing without pause, recording every write it was told was done."""

    name: str
    store: PolicyStore
    acknowledged: list[tuple[int, str]] = field(default_factory=list)
    refused: int = 0
    after_promotion: int = 0

    async def run(self, stop: asyncio.Event, promoted: asyncio.Event) -> None:
        attempt = 0
        # A value no other writer writes: a write equal to the current value changes nothing and makes no version.
        offset = 10_000 * int(self.name.removeprefix("w"))
        while not stop.is_set():
            attempt += 1
            reason = f"{self.name} write {attempt}"
            try:
                new = await self.store.update(
                    {"strategies.moderate.cooldown_seconds": offset + attempt}, updated_by=self.name, reason=reason
                )
            except StoreUnavailableError:
                self.refused += 1  # not acknowledged: it may or may not be there, and either is right
                await asyncio.sleep(0.05)
                continue
            self.acknowledged.append((new.version, reason))
            if promoted.is_set():
                self.after_promotion += 1


class TestFailover:
    """Kill the primary, promote the synchronous standby, keep the same URL."""

    async def test_promoted_standby_holds_every_acknowledged_write(
        self, pair: tuple[PostgresServer, PostgresServer], record_property: pytest.RecordProperty
    ) -> None:
        """Every acknowledged version is on the promoted standby, and the same URL writes there again."""
        primary, standby = pair
        url = (
            f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/policystore"
            "?target_session_attrs=read-write&namespace=failover"
        )
        follower = await PolicyStore.open(url, refresh_interval=3600, lkg_path=None)
        writers = [Writer(name, await PolicyStore.open(url, watch=False, lkg_path=None)) for name in ("w1", "w2")]
        stop, promoted = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(writer.run(stop, promoted)) for writer in writers]
        try:
            await eventually(lambda: sum(len(w.acknowledged) for w in writers) >= BEFORE, deadline=120)
            primary.kill9()
            before_kill = sum(len(w.acknowledged) for w in writers)
            await asyncio.to_thread(standby.promote)
            promoted.set()
            await eventually(lambda: all(w.after_promotion >= AFTER for w in writers), deadline=120)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            for writer in writers:
                await writer.store.close()

        checker = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            newest = checker.snapshot().version
            stored = {entry.version: entry for entry in await checker.history(limit=newest + 10)}
            await eventually(lambda: follower.snapshot().version == newest and not follower.stale, deadline=30)
            assert checker.snapshot().document() == follower.snapshot().document()
        finally:
            await checker.close()
            await follower.close()

        acknowledged = [write for writer in writers for write in writer.acknowledged]
        found = [
            (version, reason)
            for version, reason in acknowledged
            if getattr(stored.get(version), "reason", None) == reason
        ]
        counts = (
            f"{len(acknowledged)} writes acknowledged ({before_kill} before the primary was killed), "
            f"{len(found)} found on the promoted standby, {sum(w.refused for w in writers)} refused meanwhile"
        )
        record_property("failover", counts)
        print(f"\nfailover: {counts}")  # noqa: T201 - the counts are this test's report
        assert sorted(acknowledged) == sorted(found)
        assert list(range(1, newest + 1)) == sorted(stored)
        assert len({version for version, _ in acknowledged}) == len(acknowledged)
