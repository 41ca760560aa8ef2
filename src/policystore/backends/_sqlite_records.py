"""The records of a SQLite store: rows of its ``aux`` table, one per record.

The table (``tbl``, ``key``, ``value``; primary key ``(tbl, key)``) is made with
the store's other table; ``tbl`` is the collection and ``value`` the record's
JSON text. Each call is one statement on the back end's connection, committed
on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

from policystore.backends._records import check_names, decode_record, encode_record

__all__ = ["SQLiteRecords"]

T = TypeVar("T")

_ALL: Final = "SELECT key, value FROM aux WHERE tbl = ?"
_ONE: Final = "SELECT value FROM aux WHERE tbl = ? AND key = ?"
_PUT: Final = (
    "INSERT INTO aux (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value"
)
_ADD: Final = "INSERT INTO aux (tbl, key, value) VALUES (?, ?, ?) ON CONFLICT (tbl, key) DO NOTHING"
_DELETE: Final = "DELETE FROM aux WHERE tbl = ? AND key = ?"


class _Run(Protocol):
    """The back end's way to run a call on its connection, on its own thread."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
        """Run ``fn`` with the connection; raise StoreUnavailableError when SQLite fails."""


class SQLiteRecords:
    """Records (see :class:`~policystore.backends.base.RecordStore`) in a SQLite store's ``aux`` table.

    Args:
        run: runs one call on the back end's connection.
        url: the store's URL, for messages.
    """

    def __init__(self, run: _Run, url: str) -> None:
        self._run = run
        self._url = url

    async def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """Return every record of ``collection`` by key."""
        check_names(collection)
        rows = await self._run(lambda c: c.execute(_ALL, (collection,)).fetchall())
        found = {}
        for key, text in rows:
            record = decode_record(text, collection=collection, key=key, where=self._url)
            if record is not None:
                found[str(key)] = record
        return found

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the record at ``key``, or None."""
        check_names(collection, key)
        row = await self._run(lambda c: c.execute(_ONE, (collection, key)).fetchone())
        return None if row is None else decode_record(row[0], collection=collection, key=key, where=self._url)

    async def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key``, replacing any record there."""
        check_names(collection, key)
        text = encode_record(record)
        await self._run(lambda c: c.execute(_PUT, (collection, key, text)))

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        """Store ``record`` at ``key`` unless a record is there; return whether it was stored."""
        check_names(collection, key)
        text = encode_record(record)
        return bool(await self._run(lambda c: c.execute(_ADD, (collection, key, text)).rowcount == 1))

    async def delete(self, collection: str, key: str) -> bool:
        """Remove the record at ``key``; return whether there was one."""
        check_names(collection, key)
        return bool(await self._run(lambda c: c.execute(_DELETE, (collection, key)).rowcount > 0))
