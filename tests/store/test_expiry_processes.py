"""Expiring changes across OS processes, on SQLite and Redis, with real lifetimes of a few seconds.

Each worker (``expiry_worker.py``) prints what its ``get()`` answers whenever
that changes, so the end is seen to take effect in each process by itself.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from policystore import Actor, PolicyStore, Role
from support.redis_server import RedisServer

WORKER = str(Path(__file__).with_name("expiry_worker.py"))
ADMIN = Actor("ada", Role.ADMIN)
#: Generous: a worker starts and answers well within it; nothing here times anything.
DEADLINE = 60.0


class Worker:
    """One worker process and the lines it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def until(self, wanted: str) -> list[str]:
        """Read lines until one equals ``wanted``; return every line read so far."""
        assert self.process.stdout is not None
        while wanted not in self.lines:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=DEADLINE)
            assert line, f"the worker ended before printing {wanted!r}: {self.lines}"
            self.lines.append(line.decode().strip())
        return self.lines

    async def send(self, command: str) -> None:
        """Send one command line."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()

    async def stop(self) -> None:
        """Ask it to quit, and make sure it has ended."""
        if self.process.returncode is None:
            try:
                await self.send("quit")
                assert self.process.stdin is not None
                self.process.stdin.close()
                await asyncio.wait_for(self.process.wait(), timeout=DEADLINE)
            except (TimeoutError, ConnectionError):
                self.process.kill()
                await self.process.wait()


@asynccontextmanager
async def workers(url: str, count: int, *flags: str) -> AsyncIterator[list[Worker]]:
    """``count`` workers on ``url``, each ready."""
    started = [
        Worker(
            await asyncio.create_subprocess_exec(
                sys.executable, WORKER, url, *flags, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        )
        for _ in range(count)
    ]
    try:
        for worker in started:
            await worker.until("ready")
        yield started
    finally:
        for worker in started:
            await worker.stop()


async def returns(store: PolicyStore) -> list[int]:
    """The versions the store itself recorded as returns."""
    return sorted(e.version for e in await store.history(limit=100) if e.by == "policystore" and e.version > 1)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on SQLite, then on Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/policy.db"
    return str(request.getfixturevalue("redis_url"))


class TestSeveralProcessesSeeTheEnd:
    """Every following process sees the end at once; exactly one records the return."""

    @pytest.mark.timeout(120)
    async def test_four_processes_record_the_return_exactly_once(self, url: str) -> None:
        """Four followers end a two-second raise together: one return version, which all then hold."""
        writer = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            async with workers(url, 4, "--watch") as followers:
                timed = await writer.update({"modes.NORMAL.max_leverage": 8.0}, reason="two seconds", expires_in=2.0)
                v = timed.version
                for follower in followers:
                    await follower.until(f"state {v} 8.0 False")
                for follower in followers:
                    seen = await follower.until(f"state {v + 1} 5.0 False")
                    # Each read the earlier value by itself, at the end or with the return's arrival, never later.
                    assert f"state {v + 1} 8.0 False" not in seen
                assert [v + 1] == await returns(writer)
                assert v + 1 == await writer.backend.current_version()
                entry = (await writer.history(limit=1))[0]
                assert ("policystore", f"overrides.{v}") == (entry.by, entry.changes[-1].path)
        finally:
            await writer.close()


class TestAReaderCutOffFromItsStore:
    """A process that only reads, with its store out of reach, reads the earlier values at the end."""

    @pytest.mark.timeout(120)
    async def test_sqlite_reader_behind_an_outage_returns_at_the_end(self, tmp_path: Path) -> None:
        """Switched off, the reader answers stale; at the end its get() answers the earlier value; no write."""
        url = f"sqlite:///{tmp_path}/policy.db"
        writer = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            async with workers(url, 1, "--switch") as (reader,):
                await reader.until("state 1 5.0 False")
                timed = await writer.update({"modes.NORMAL.max_leverage": 8.0}, reason="three seconds", expires_in=3.0)
                await reader.send("refresh")
                await reader.until(f"state {timed.version} 8.0 False")
                await reader.send("off")
                await reader.until(f"state {timed.version} 8.0 True")
                await reader.until(f"state {timed.version} 5.0 True")
            assert timed.version == await writer.backend.current_version()
        finally:
            await writer.close()

    @pytest.mark.redis
    @pytest.mark.timeout(120)
    async def test_redis_reader_with_the_server_stopped_returns_at_the_end(self, tmp_path: Path) -> None:
        """With redis-server stopped, a following reader answers stale and, at the end, the earlier value.

        When the server is back, the return is recorded, once.
        """
        (tmp_path / "redis").mkdir()
        server = RedisServer(directory=tmp_path / "redis")
        server.start()
        url = server.url()
        writer = await PolicyStore.open(url, watch=False, lkg_path=None)
        try:
            async with workers(url, 1, "--watch") as (reader,):
                await reader.until("state 1 5.0 False")
                timed = await writer.update({"modes.NORMAL.max_leverage": 8.0}, reason="five seconds", expires_in=5.0)
                await reader.until(f"state {timed.version} 8.0 False")
                server.stop()
                await reader.until(f"state {timed.version} 8.0 True")
                await reader.until(f"state {timed.version} 5.0 True")
                server.start()
                await reader.until(f"state {timed.version + 1} 5.0 False")
            assert [timed.version + 1] == await returns(writer)
        finally:
            await writer.close()
            server.cleanup()
