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
import sqlite3
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


class SQLiteBackend:
    """A policy stored in one SQLite file.

    Args:
        path: the database file; its folder is created if missing.
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

    async def connect(self) -> None:
        """Open the file (creating it and its tables if new) in WAL mode."""

        def open_db() -> None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailableError(self.url, f"cannot open the database: {exc}") from exc
            self._conn = conn

        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, open_db)

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
        """Return the newest version, 0 when empty."""
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
        rows = await self._run(
            lambda c: c.execute(
                "SELECT entry FROM policy_versions WHERE version < ? ORDER BY version DESC LIMIT ?", (bound, limit)
            ).fetchall()
        )
        return [HistoryEntry.from_dict(_decode(r[0], self.url)) for r in rows]

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return entries with ``after < version <= upto``, oldest first."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT entry FROM policy_versions WHERE version > ? AND version <= ? ORDER BY version", (after, upto)
            ).fetchall()
        )
        return [HistoryEntry.from_dict(_decode(r[0], self.url)) for r in rows]

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
