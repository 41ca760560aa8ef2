"""Several OS processes on one PostgreSQL: propagation and concurrent compare-and-set writers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from policystore.store.store import PolicyStore

pytestmark = pytest.mark.postgres
WORKER = str(Path(__file__).with_name("postgres_worker.py"))
# The promise: another process sees a change within a second (typically a few milliseconds).
SEEN_WITHIN = 1.0


async def _worker(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, WORKER, *args, stdout=asyncio.subprocess.PIPE)


async def _line(process: asyncio.subprocess.Process, deadline: float) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout=deadline)).decode().strip()


class TestPropagation:
    """A write in one process reaches another process's local snapshot."""

    @pytest.mark.timeout(60)
    async def test_mode_switch_seen_by_other_process(self, postgres_url: str) -> None:
        """The other process's get() shows the new mode within a second of the acknowledged write."""
        writer = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        watcher = await _worker("watch", postgres_url, "DEFENSIVE", "30")
        try:
            assert "ready 1" == await _line(watcher, 30)
            new = await writer.switch_mode("DEFENSIVE", reason="propagation test")
            assert f"seen {new.version}" == await _line(watcher, SEEN_WITHIN)
        finally:
            await writer.close()
            if watcher.returncode is None:
                watcher.kill()
            await watcher.wait()


class TestConcurrentWriters:
    """Eight processes racing compare-and-set updates."""

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    async def test_eight_writers_history_complete(self, postgres_url: str) -> None:
        """8 x 250 updates with retry: none lost, final version 1 + 2000, history contiguous and complete."""
        writers, each = 8, 250
        store = await PolicyStore.open(postgres_url, watch=False, lkg_path=None)
        processes = [await _worker("cas", postgres_url, str(each), f"writer-{n}") for n in range(writers)]
        outputs = [await process.communicate() for process in processes]
        assert [0] * writers == [process.returncode for process in processes]
        summaries = [json.loads(out.decode()) for out, _ in outputs]

        written = sorted(v for summary in summaries for v in summary["versions"])
        assert list(range(2, 2 + writers * each)) == written
        final = 1 + writers * each
        assert final == await store.backend.current_version()
        entries = await store.backend.entries(0, final)
        assert list(range(1, final + 1)) == [e.version for e in entries]
        for summary in summaries:
            mine = [e for e in entries if e.by == summary["name"]]
            assert summary["versions"] == [e.version for e in mine]
            assert [f"{summary['name']} update {n}" for n in range(each)] == [e.reason for e in mine]
        await store.refresh()
        assert final == store.snapshot().version
        assert sum(summary["conflicts"] for summary in summaries) > 0  # they did race
        await store.close()
