"""The SQLite file replaced or deleted under a running process: the process follows the file at its path.

A process keeps the file it opened (its inode) whatever happens to the path.
It must notice when the file at the path is no longer that file, then follow the
new file as a store that went back, or report itself unavailable; an
acknowledged write always lands in the file at the configured path.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from policystore import Actor, PolicyStore, Role, StoreUnavailableError
from support.waiting import eventually

WORKER = Path(__file__).with_name("sqlite_replace_worker.py")
ADMIN = Actor("ada", Role.ADMIN)
SUFFIXES = ("", "-wal", "-shm")


def move(db: Path, folder: Path, suffixes: tuple[str, ...] = SUFFIXES) -> None:
    """``mv policystore.db* folder/``: the database and its -wal and -shm files, as an operator would."""
    folder.mkdir(exist_ok=True)
    for suffix in suffixes:
        source = db.with_name(db.name + suffix)
        if source.exists():
            source.rename(folder / source.name)


def newest(db: Path) -> tuple[int, int]:
    """The newest version in the file at ``db`` and its NORMAL max_positions, read by a connection of its own."""
    with contextlib_closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        version, document = conn.execute(
            "SELECT version, json_extract(document, '$.modes.NORMAL.max_positions') FROM policy_versions "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
    return int(version), int(document)


class contextlib_closing:  # noqa: N801 - reads as the contextlib helper it mirrors, for sqlite3 connections
    """Close a sqlite3 connection on exit (its own context manager only ends the transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        self.conn.close()


def start_worker(db: Path, go_file: Path) -> subprocess.Popen[bytes]:
    """Start the process that makes a new store at ``db``."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(go_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def files_named(folder: Path, prefix: str) -> list[str]:
    """The names in ``folder`` that start with ``prefix``."""
    return [path.name for path in folder.iterdir() if path.name.startswith(prefix)]


@pytest.fixture
def go_file(tmp_path: Path) -> Iterator[Path]:
    """Touched at the end of a test, so a worker still waiting exits."""
    path = tmp_path / "go"
    yield path
    path.touch()


class TestFileReplacedUnderARunningProcess:
    """``mv policystore.db* elsewhere/``, then a new store at the path."""

    @pytest.mark.timeout(120)
    async def test_running_store_follows_the_new_file_and_writes_into_it(self, tmp_path: Path, go_file: Path) -> None:
        """The new file's kill switch is seen, a later write lands in the new file, and closing harms neither file."""
        db, elsewhere = tmp_path / "policystore.db", tmp_path / "elsewhere"
        store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=tmp_path / "lkg.json", refresh_interval=3600)
        worker = None
        try:
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune", actor=ADMIN)
            move(db, elsewhere)
            worker = start_worker(db, go_file)
            assert worker.stdout is not None
            line = await asyncio.to_thread(worker.stdout.readline)
            assert b"halted 2\n" == line, worker.stderr.read() if worker.stderr else b""

            await eventually(lambda: store.get("emergency.active") is True)
            assert (False, "new file, halted") == (await store.can_open_new_trades(), store.get("emergency.reason"))

            written = await store.update({"modes.NORMAL.max_positions": 7}, reason="after the move", actor=ADMIN)
            assert (written.version, 7) == newest(db)
            assert (2, 12) == newest(elsewhere / db.name)
        finally:
            await store.close()
        # Closing the connection to the moved file must not delete the new file's -wal and -shm by their names.
        assert (written.version, 7) == newest(db)
        await asyncio.to_thread(go_file.touch)
        assert 0 == await asyncio.to_thread(worker.wait, 60)

    async def test_one_shot_store_writes_into_the_file_now_at_the_path(self, tmp_path: Path) -> None:
        """A store that does not poll (watch=False) checks the files before every call: its write goes to the path."""
        db, elsewhere = tmp_path / "policystore.db", tmp_path / "elsewhere"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune", actor=ADMIN)
            move(db, elsewhere)
            fresh = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
            await fresh.close()
            written = await store.update({"modes.NORMAL.max_positions": 9}, reason="into the path", actor=ADMIN)
            assert (written.version, 9) == newest(db)
            assert (2, 12) == newest(elsewhere / db.name)
            # The store it follows now began again at version 1: it went back, so no new trade until confirmed.
            assert (2, False) == (store.get("version"), await store.can_open_new_trades())
        finally:
            await store.close()


class TestFileDeletedUnderARunningProcess:
    """The file removed, with nothing new at the path."""

    async def test_deleted_store_reports_itself_unavailable_and_creates_nothing(self, tmp_path: Path) -> None:
        """The poll notices, answers go stale, a write is refused, and no file appears at the path."""
        db = tmp_path / "policystore.db"
        store = await PolicyStore.open(f"sqlite:///{db}", lkg_path=tmp_path / "lkg.json", refresh_interval=3600)
        try:
            for suffix in SUFFIXES:
                db.with_name(db.name + suffix).unlink(missing_ok=True)
            await eventually(lambda: store.stale)
            with pytest.raises(StoreUnavailableError) as caught:
                await store.set_emergency_mode(True, reason="halt", actor=ADMIN)
            assert "no longer at" in str(caught.value)
            assert str(db) in str(caught.value)
            assert [] == files_named(tmp_path, "policystore.db")
        finally:
            await store.close()

    async def test_moved_file_moved_back_is_followed_again(self, tmp_path: Path) -> None:
        """A file that comes back to its path is the same file: the store is live again, nothing went back."""
        db, elsewhere = tmp_path / "policystore.db", tmp_path / "elsewhere"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune", actor=ADMIN)
            move(db, elsewhere)
            with pytest.raises(StoreUnavailableError):
                await store.refresh()
            move(elsewhere / db.name, tmp_path)
            await store.refresh()
            assert (False, 2, True) == (store.stale, store.get("version"), await store.can_open_new_trades())
        finally:
            await store.close()

    async def test_write_ahead_log_moved_away_makes_the_store_unavailable(self, tmp_path: Path) -> None:
        """The -wal and -shm files are part of the file: without them at the path, nothing is read or written."""
        db, elsewhere = tmp_path / "policystore.db", tmp_path / "elsewhere"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            move(db, elsewhere, ("-wal", "-shm"))
            with pytest.raises(StoreUnavailableError) as caught:
                await store.update({"modes.NORMAL.max_positions": 12}, reason="tune", actor=ADMIN)
            assert "-wal" in str(caught.value)
            for name in ("-wal", "-shm"):
                (elsewhere / f"{db.name}{name}").rename(tmp_path / f"{db.name}{name}")
            written = await store.update({"modes.NORMAL.max_positions": 12}, reason="tune", actor=ADMIN)
            assert (2, 12) == (written.version, store.get("modes.NORMAL.max_positions"))
        finally:
            await store.close()


class TestReplacedDuringTheWriteTransaction:
    """The check runs inside the write transaction too: a write never commits into a file no longer at the path."""

    async def test_write_waiting_for_the_lock_while_the_file_is_replaced_commits_nowhere(self, tmp_path: Path) -> None:
        """The write waits for another writer's lock while the file is replaced: neither file gets it."""
        db, elsewhere = tmp_path / "policystore.db", tmp_path / "elsewhere"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(store.update({"modes.NORMAL.max_positions": 9}, reason="late", actor=ADMIN))
            # Give the write time to reach its transaction; had it not, the check before the call answers alike.
            await asyncio.sleep(0.3)
            move(db, elsewhere)
            fresh = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
            await fresh.close()
            blocker.execute("ROLLBACK")
            with pytest.raises(StoreUnavailableError) as caught:
                await write
            assert "nothing was written" in str(caught.value)
            assert (1, 30) == newest(elsewhere / db.name)
            assert (1, 30) == newest(db)
        finally:
            blocker.close()
            await store.close()
