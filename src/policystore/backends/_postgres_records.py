"""The records of a PostgreSQL store: rows of ``policystore_aux``, one per record.

The table (see :mod:`._postgres_schema`) holds ``(namespace, tbl, key)`` ->
``value`` with the server's time of each write (``updated_at``); ``tbl`` is the
collection and ``value`` the record's JSON text. Each call is one statement. A
call whose connection fails is sent once more (the pooled connection may have
died with a server restart), so after a reply lost in flight :meth:`add` or
:meth:`delete` may answer False for a change their first send made.

A fleet member's record (:data:`~policystore.model.fleet.FLEET_COLLECTION`) is
rewritten by its member for the versions it applies and every second (on the
connection the member listens on, while it listens: see
:mod:`policystore.backends._postgres_session`), so it is written without
waiting for the commit to reach the disk or a synchronous standby
(``synchronous_commit`` off for that one transaction): with every process of a
fleet reporting each version, waiting would put one more flush per process and
version in the queue of the policy's own commits. A crash may lose the newest
report, which is visible to every reader at once and made again within a
second; tokens, proposals and every other record are durable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final, Protocol

from policystore.backends._records import check_names, decode_record, encode_record
from policystore.model.fleet import FLEET_COLLECTION

__all__ = ["PUT_PASSING", "PostgresRecords"]

_ALL: Final = "SELECT key, value FROM policystore_aux WHERE namespace = %s AND tbl = %s"
_ONE: Final = "SELECT value FROM policystore_aux WHERE namespace = %s AND tbl = %s AND key = %s"
_PUT: Final = (
    "INSERT INTO policystore_aux (namespace, tbl, key, value) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (namespace, tbl, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() RETURNING 1"
)
#: As _PUT, committed without waiting for the flush: the setting holds for this statement's transaction only.
PUT_PASSING: Final = (
    "WITH passing AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO policystore_aux (namespace, tbl, key, value) SELECT %s, %s, %s, %s FROM passing "
    "ON CONFLICT (namespace, tbl, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() RETURNING 1"
)
#: Collections whose records their writer rewrites every second: written with PUT_PASSING.
_PASSING: Final = frozenset({FLEET_COLLECTION})
_ADD: Final = (
    "INSERT INTO policystore_aux (namespace, tbl, key, value) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (namespace, tbl, key) DO NOTHING RETURNING 1"
)
_DELETE: Final = "DELETE FROM policystore_aux WHERE namespace = %s AND tbl = %s AND key = %s RETURNING 1"


class _Statement(Protocol):
    """One of the back end's ways to run a statement and return its rows."""

    def __call__(self, what: str, query: str, params: tuple[Any, ...]) -> Awaitable[list[tuple[Any, ...]]]:
        """Run ``query``; raise StoreUnavailableError, saying ``what`` failed, when PostgreSQL does."""


class _Put(Protocol):
    """The back end's way to write a fleet member's record (see :meth:`PostgresRecords.put`)."""

    def __call__(self, what: str, params: tuple[str, str, str, str]) -> Awaitable[None]:
        """Write the record; raise StoreUnavailableError, saying ``what`` failed, when PostgreSQL does."""


class PostgresRecords:
    """Records (see :class:`~policystore.backends.base.RecordStore`) in PostgreSQL's ``policystore_aux`` table.

    Args:
        read: runs a query; no rows while the database has no tables and none were to be made.
        write: runs a statement; refused while the database has no tables and none were to be made.
        passing: writes a record of a collection in :data:`_PASSING` with :data:`PUT_PASSING`.
        namespace: the store's namespace.
        url: the store's URL, safe to show, for messages.
    """

    def __init__(self, read: _Statement, write: _Statement, namespace: str, url: str, *, passing: _Put) -> None:
        self._read = read
        self._write = write
        self._passing = passing
        self._namespace = namespace
        self._url = url

    async def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """Return every record of ``collection`` by key."""
        check_names(collection)
        rows = await self._read(f"reading collection {collection}", _ALL, (self._namespace, collection))
        found = {}
        for key, text in rows:
            record = decode_record(text, collection=collection, key=key, where=self._url)
            if record is not None:
                found[str(key)] = record
        return found

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the record at ``key``, or None."""
        check_names(collection, key)
        rows = await self._read(f"reading collection {collection}", _ONE, (self._namespace, collection, key))
        return decode_record(rows[0][0], collection=collection, key=key, where=self._url) if rows else None

    async def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key``, replacing any record there, stamped with the server's time.

        A fleet member's record is visible at once but not waited for on disk (see the module's notes).
        """
        check_names(collection, key)
        params = (self._namespace, collection, key, encode_record(record))
        what = f"writing collection {collection}"
        if collection in _PASSING:
            await self._passing(what, params)
        else:
            await self._write(what, _PUT, params)

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        """Store ``record`` at ``key`` unless a record is there; return whether it was stored."""
        check_names(collection, key)
        params = (self._namespace, collection, key, encode_record(record))
        return bool(await self._write(f"writing collection {collection}", _ADD, params))

    async def delete(self, collection: str, key: str) -> bool:
        """Remove the record at ``key``; return whether there was one."""
        check_names(collection, key)
        params = (self._namespace, collection, key)
        return bool(await self._write(f"writing collection {collection}", _DELETE, params))
