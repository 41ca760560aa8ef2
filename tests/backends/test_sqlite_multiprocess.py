"""Several OS processes on one SQLite file: no change lost, changes seen across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from policystore import PolicyStore

WORKER = Path(__file__).with_name("sqlite_worker.py")
STRATEGIES = ("conservative", "moderate", "aggressive", "defensive")
WRITES = 200


def start_worker(db: Path, go_file: Path, path: str, count: int, first: int = 1) -> subprocess.Popen[bytes]:
    """Start one writer process."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(go_file), path, str(count), str(first)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_all(workers: list[subprocess.Popen[bytes]]) -> None:
    """Wait for every worker and fail with its stderr if one failed."""
    for worker in workers:
        _out, err = worker.communicate(timeout=240)
        assert 0 == worker.returncode, err.decode(errors="replace")


class TestSQLiteManyProcesses:
    """Real processes, one database file."""

    @pytest.mark.slow
    async def test_four_processes_concurrent_updates_none_lost(self, tmp_path: Path) -> None:
        """4 processes x 200 updates of their own field: versions 1..801, full history, every value kept."""
        db, go_file = tmp_path / "policy.db", tmp_path / "go"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            paths = [f"strategies.{s}.cooldown_seconds" for s in STRATEGIES]
            workers = [start_worker(db, go_file, path, WRITES) for path in paths]
            go_file.touch()
            await asyncio.to_thread(wait_all, workers)

            await store.refresh()
            total = 1 + len(paths) * WRITES
            assert total == store.get("version")
            entries = await store.history(limit=total + 10)
            assert list(range(total, 0, -1)) == [e.version for e in entries]
            for path in paths:
                written = [c.new for e in reversed(entries) for c in e.changes if c.path == path]
                # Each process wrote 1..200 in order: every one is in history, in that order.
                assert list(range(1, WRITES + 1)) == written
                assert WRITES == store.get(path)
            for entry in entries[:-1]:
                assert [entry.reason] == [f"{c.path}={int(c.new)}" for c in entry.changes]
        finally:
            await store.close()

    @pytest.mark.slow
    async def test_change_by_other_process_seen(self, tmp_path: Path) -> None:
        """A change committed by another process reaches this process's snapshot (data_version watch)."""
        db, go_file = tmp_path / "policy.db", tmp_path / "go"
        store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=None)
        try:
            seen = []
            store.subscribe(lambda e: seen.append((e.version, e.by)))
            go_file.touch()
            worker = start_worker(db, go_file, "modes.NORMAL.max_positions", 1, first=17)
            await asyncio.to_thread(wait_all, [worker])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while store.get("modes.NORMAL.max_positions") != 17:
                assert loop.time() < deadline, "the other process's change never arrived"
                await asyncio.sleep(0.01)
            assert 2 == store.get("version")
            assert [(2, "worker-modes.NORMAL.max_positions")] == seen
        finally:
            await store.close()
