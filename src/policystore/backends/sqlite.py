"""``sqlite:///PATH``: the embedded default, for one machine and any number of processes.

WAL journal, ``synchronous=FULL`` (an acknowledged write survives a power cut),
and one ``BEGIN IMMEDIATE`` transaction per write that checks the version,
stores the document and its history entry. Other processes learn of a write by
polling ``PRAGMA data_version``, which changes when another connection commits
and costs no read of the document.

A connection keeps the file it opened whatever happens to its path: after
``mv policystore.db* elsewhere/`` it would go on reading, and acknowledging
writes into, the moved file. So before every call, and inside every write
transaction, the back end checks that the files at the path (the database and
its ``-wal`` and ``-shm`` files, by device and inode) are the ones it opened.
Another database at the path is followed: the old connection is closed (SQLite
itself then leaves the names at the path alone) and the new file opened, never
created; the store above sees a store that went back. With no database at the
path, or with its ``-wal`` or ``-shm`` file replaced under the same database,
every call raises :class:`~policystore.errors.StoreUnavailableError` until the
files the connection opened are back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from policystore.backends._sqlite_records import SQLiteRecords
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry

__all__ = ["SQLiteBackend"]

T = TypeVar("T")
log = logging.getLogger("policystore.sqlite")

#: The files of one database: the file itself, then its write-ahead log and its shared-memory index.
_SUFFIXES: Final = ("", "-wal", "-shm")
#: (device, inode) of each file of :data:`_SUFFIXES`, None for one that is absent.
_Files = tuple[tuple[int, int] | None, ...]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS policy_versions (
    version  INTEGER PRIMARY KEY,
    document TEXT NOT NULL,
    entry    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS aux (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
);
"""

_HAS_STORE: Final = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'policy_versions'"


class SQLiteBackend:
    """A policy stored in one SQLite file.

    Args:
        path: the database file; it and its folder are created if missing (see :meth:`connect`).
        poll_interval: seconds between checks for other processes' commits.
        busy_timeout: seconds a write waits for another writer's lock.
    """

    def __init__(self, path: str | Path, *, poll_interval: float = 0.02, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{path}"
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        # One thread owns the connection: SQLite calls block, and this keeps them off the loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policystore-sqlite")
        self._conn: sqlite3.Connection | None = None
        #: Where the files are checked, fixed at construction (a later chdir does not move the store).
        self._file = self.path.absolute()
        #: The files ``_conn`` opened; compared with the files at the path before every call.
        self._files: _Files = ()
        #: How many times another file at the path was followed (tells the poll to re-read).
        self._generation = 0
        #: Connected without creating, and no store was there.
        self._absent = False
        self._closed = asyncio.Event()
        #: The records beside the policy, in the ``aux`` table (see :mod:`._sqlite_records`).
        self.records = SQLiteRecords(self._run, self.url)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            return fn(self._current())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(self.url, f"SQLite failed: {exc}") from exc

    async def connect(self, *, create: bool = True) -> None:
        """Open the file in WAL mode, creating it, its folder and its tables if new.

        A new file is created readable by its owner only (0600), and SQLite
        gives its ``-wal`` and ``-shm`` files the same mode: the store holds API
        token hashes. A file that exists keeps the mode its owner gave it.

        Args:
            create: with False, nothing is created or written: without a file
                (or without the store's tables in it) the store reads as
                version 0 and stays unconnected.

        Raises:
            StoreUnavailableError: the file cannot be opened or read.
        """

        def open_db() -> None:
            try:
                conn = self._open_existing() if not create else self._open_or_create()
                if conn is None:
                    return
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                if create:
                    conn.executescript(_SCHEMA)
                files = _opened_files(conn, self._file)
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailableError(self.url, f"cannot open the database: {exc}") from exc
            self._conn, self._files = conn, files

        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, open_db)

    def _current(self) -> sqlite3.Connection:
        """The connection to the files at the path now; runs on the back end's thread before every call.

        Raises:
            StoreUnavailableError: not connected, no database at the path, or its
                ``-wal`` or ``-shm`` file is not the one the connection uses.
        """
        if self._conn is None:
            raise StoreUnavailableError(self.url, "the store is not connected")
        at_path = _files_at(self._file)
        if at_path == self._files:
            return self._conn
        database = at_path[0]
        if database is None:
            raise StoreUnavailableError(
                self.url,
                f"the database file {self._file} this process opened is no longer at its path (moved or deleted), "
                "and no other is there; nothing is created in its place",
            )
        if database == self._files[0]:
            # The same database without the log it was opened with: the log holds its newest commits.
            changed = ", ".join(
                f"{self._file.name}{suffix}"
                for suffix, a, b in zip(_SUFFIXES, self._files, at_path, strict=True)
                if a != b
            )
            raise StoreUnavailableError(
                self.url,
                f"{changed} at {self._file.parent} is not the file this process opened (moved, replaced or deleted); "
                "put it back, or restart every process that uses the store",
            )
        return self._follow_path()

    def _follow_path(self) -> sqlite3.Connection:
        """Close the connection to the file that left the path and open the one there now, creating nothing."""
        old, self._conn = self._conn, None
        if old is not None:
            # SQLite sees that this file moved and leaves the -wal and -shm names at the path alone.
            old.close()
        uri = f"file:{urllib.parse.quote(str(self._file))}?mode=rw"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            files = _opened_files(conn, self._file)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(self.url, f"cannot open the database file now at the path: {exc}") from exc
        self._conn, self._files = conn, files
        self._generation += 1
        log.warning("The database file at %s was replaced; following the file now at the path.", self._file)
        return conn

    def _open_or_create(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            # Created here, empty and owner-only, before SQLite opens it with the umask's mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)

    def _open_existing(self) -> sqlite3.Connection | None:
        """Open the file read-write without creating it; None when it is absent or holds no store."""
        if not self.path.exists():
            self._absent = True
            return None
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            found = conn.execute(_HAS_STORE).fetchone()
        except sqlite3.Error:
            conn.close()
            raise
        if found is None:
            conn.close()
            self._absent = True
            return None
        self._absent = False
        return conn

    async def close(self) -> None:
        """Close the connection and end notification iterators."""
        self._closed.set()

        def close_db() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_db)
        self._executor.shutdown(wait=False)

    async def current_version(self) -> int:
        """Return the newest version, 0 when empty (or, opened without creating, absent)."""
        if self._conn is None and self._absent:
            return 0
        row = await self._run(lambda c: c.execute("SELECT COALESCE(MAX(version), 0) FROM policy_versions").fetchone())
        return int(row[0])

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """Return the document at ``version`` (newest when None)."""

        def query(conn: sqlite3.Connection) -> Any:
            if version is None:
                return conn.execute("SELECT document FROM policy_versions ORDER BY version DESC LIMIT 1").fetchone()
            return conn.execute("SELECT document FROM policy_versions WHERE version = ?", (version,)).fetchone()

        row = await self._run(query)
        return None if row is None else _decode(row[0], self.url)

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Store the next version and its entry in one transaction, if the version is next."""
        version = int(document["version"])
        doc_text = json.dumps(document, sort_keys=True)
        entry_text = json.dumps(entry.to_dict(), sort_keys=True)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # The file may have been replaced while this write waited for the lock.
                self._check_still_at_path(version, committed=False)
                current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM policy_versions").fetchone()[0]
                if current != version - 1 or entry.version != version:
                    raise VersionConflictError(version - 1, int(current))  # noqa: TRY301 - the rollback below must run
                conn.execute(
                    "INSERT INTO policy_versions (version, document, entry) VALUES (?, ?, ?)",
                    (version, doc_text, entry_text),
                )
                self._check_still_at_path(version, committed=False)
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) can leave the transaction
                # open; end it, or every later write on this connection would fail.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            # Moved during the commit itself: the version is in a file that is not the store.
            self._check_still_at_path(version, committed=True)

        await self._run(write)

    def _check_still_at_path(self, version: int, *, committed: bool) -> None:
        """Refuse a write whose file left the path; runs inside the write, on the back end's thread.

        Raises:
            StoreUnavailableError: the files at the path are no longer the ones written to.
        """
        if _files_at(self._file) == self._files:
            return
        if committed:
            outcome = f"version {version} went into the file that left the path, so the store at the path lacks it"
        else:
            outcome = f"nothing was written; version {version} can be written again once the store is read back"
        reason = f"the database file {self._file} was moved or replaced during the write: {outcome}"
        raise StoreUnavailableError(self.url, reason)

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` entries older than ``before``, newest first."""
        bound = before if before is not None else 2**62
        query = "SELECT version, entry FROM policy_versions WHERE version < ? ORDER BY version DESC LIMIT ?"
        rows = await self._run(lambda c: c.execute(query, (bound, limit)).fetchall())
        return [_entry(r[0], r[1], self.url) for r in rows]

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return entries with ``after < version <= upto``, oldest first."""
        query = "SELECT version, entry FROM policy_versions WHERE version > ? AND version <= ? ORDER BY version"
        rows = await self._run(lambda c: c.execute(query, (after, upto)).fetchall())
        return [_entry(r[0], r[1], self.url) for r in rows]

    async def notifications(self) -> AsyncIterator[int]:
        """Yield 0 whenever any connection, in any process, has committed since the last poll.

        Also when another file at the path was followed, and when the files at
        the path stop, or start again, being the ones the connection uses.
        """
        last = await self._poll()
        # Our own commits do not change data_version on our connection: say so once at start.
        yield 0
        while not self._closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout=self._poll_interval)
            if self._closed.is_set():
                return
            # Each poll also checks the files at the path (see _current); a counter per connection.
            now = await self._poll()
            if now != last:
                last = now
                yield 0

    async def _poll(self) -> tuple[int, int] | None:
        """Return what changes when another connection commits or another file at the path is followed.

        None while the files at the path are not usable, so the listener hears
        when they stop and when they start again.
        """

        def state(conn: sqlite3.Connection) -> tuple[int, int]:
            return self._generation, int(conn.execute("PRAGMA data_version").fetchone()[0])

        try:
            return await self._run(state)
        except StoreUnavailableError:
            return None  # the listener re-reads, finds the store unavailable and answers stale


def _files_at(path: Path) -> _Files:
    """The (device, inode) of the database at ``path`` and of its -wal and -shm files; None for an absent one."""
    found: list[tuple[int, int] | None] = []
    for suffix in _SUFFIXES:
        try:
            info = os.stat(f"{path}{suffix}")  # noqa: PTH116 - three stats per call and per poll: no Path objects
        except FileNotFoundError:
            found.append(None)
        else:
            found.append((info.st_dev, info.st_ino))
    return tuple(found)


def _opened_files(conn: sqlite3.Connection, path: Path) -> _Files:
    """The files a new connection uses: a read opens its -wal and -shm files, which it then keeps open."""
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    return _files_at(path)


def _decode(text: str, url: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StoreUnavailableError(url, f"the stored data is not valid JSON ({exc})") from exc


def _entry(version: int, text: str, url: str) -> HistoryEntry:
    """Read the history entry stored with ``version``; a malformed one means the store is damaged.

    Raises:
        StoreUnavailableError: the entry is not valid JSON, not an entry, or the entry of another version.
    """
    try:
        entry = HistoryEntry.from_dict(json.loads(text))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise StoreUnavailableError(url, f"history entry {version} is malformed ({exc!r})") from exc
    if entry.version != version:
        raise StoreUnavailableError(url, f"history entry {version} is the entry of version {entry.version}")
    return entry
