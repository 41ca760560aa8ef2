"""``sqlite:///PATH``: the embedded default, for one machine and any number of processes.

WAL journal, ``synchronous=FULL`` (an acknowledged write survives a power cut),
and one ``BEGIN IMMEDIATE`` transaction per write that checks the version,
stores the document and its history entry. Other processes learn of a write by
polling ``PRAGMA data_version``, which changes when another connection commits
and costs no read of the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

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
        #: Connected without creating, and no store was there.
        self._absent = False
        self._closed = asyncio.Event()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise StoreUnavailableError(self.url, "the store is not connected")
            return fn(self._conn)

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
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailableError(self.url, f"cannot open the database: {exc}") from exc
            self._conn = conn

        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, open_db)

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
                current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM policy_versions").fetchone()[0]
                if current != version - 1 or entry.version != version:
                    raise VersionConflictError(version - 1, int(current))  # noqa: TRY301 - the rollback below must run
                conn.execute(
                    "INSERT INTO policy_versions (version, document, entry) VALUES (?, ?, ?)",
                    (version, doc_text, entry_text),
                )
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) can leave the transaction
                # open; end it, or every later write on this connection would fail.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._run(write)

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
        """Yield 0 whenever any connection, in any process, has committed since the last poll."""
        last = await self._run(lambda c: c.execute("PRAGMA data_version").fetchone()[0])
        # Our own commits do not change data_version on our connection: say so once at start.
        yield 0
        while not self._closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout=self._poll_interval)
            if self._closed.is_set():
                return
            now = await self._run(lambda c: c.execute("PRAGMA data_version").fetchone()[0])
            if now != last:
                last = now
                yield 0

    async def aux_get(self, table: str) -> dict[str, str]:
        """Return every key of an auxiliary table."""
        rows = await self._run(lambda c: c.execute("SELECT key, value FROM aux WHERE tbl = ?", (table,)).fetchall())
        return {str(k): str(v) for k, v in rows}

    async def aux_put(self, table: str, key: str, value: str | None) -> None:
        """Set or delete one key of an auxiliary table."""
        if value is None:
            await self._run(lambda c: c.execute("DELETE FROM aux WHERE tbl = ? AND key = ?", (table, key)))
        else:
            await self._run(
                lambda c: c.execute(
                    "INSERT INTO aux (tbl, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
                    (table, key, value),
                )
            )


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
