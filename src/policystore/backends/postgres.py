"""``postgresql://`` and ``postgres://``: one policy in PostgreSQL, shared by every host, surviving a failover.

URL forms (every form takes ``?namespace=NAME`` and ``?timeout=SECONDS``)::

    postgresql://user:password@host:port/dbname
    postgresql://user:password@host1:5432,host2:5433/dbname?target_session_attrs=read-write
    postgresql:///dbname?host=host1,host2&port=5432,5433

Everything but ``namespace`` and ``timeout`` is libpq's (``sslmode``,
``application_name``, ``options=-csearch_path=...``, ...). With several hosts,
libpq tries each in turn; ``target_session_attrs`` defaults to ``read-write``,
so the store always writes to (and listens on) the primary, and after a
standby is promoted it finds the new primary through the same URL.
``namespace`` (default ``default``) keeps several policies apart in one
database; ``timeout`` (default 1 s) bounds every call: an unreachable server
raises :class:`~policystore.errors.StoreUnavailableError` within it and never
hangs.

A write is one statement and one transaction (see
:mod:`policystore.backends._postgres_layout`): compare-and-set on the version,
the version's row with its history entry, and a NOTIFY that carries the new
version (and its document, when it fits, signed with the namespace's notice
key: every role that may connect may NOTIFY, and an unsigned notice is only a
reason to read the store). Each process listens on one connection of its
own, read straight off its socket, which also carries the two statements a
follower sends on every change: the read that confirms a notice that would
loosen what the process holds, and its fleet report (see
:mod:`policystore.backends._postgres_session`). The tables, and how a database
holding other tables of the same names is refused, are in
:mod:`policystore.backends._postgres_schema`.

A commit whose reply is lost is sent again once and recognised by its write
id; if no reply comes at all the commit raises StoreUnavailableError saying
the version may have been written. With a synchronous standby
(``synchronous_commit=on``), a write is acknowledged only once the standby
has it, so a promoted standby holds every acknowledged version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Self

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout

from policystore.backends._postgres_calls import bounded
from policystore.backends._postgres_layout import (
    FIND_KEY,
    FIND_WRITE,
    CommitCall,
    CommitOutcome,
    MaybeWrittenError,
    Sending,
    channel_for,
    maybe_written,
)
from policystore.backends._postgres_listener import Listening, listen
from policystore.backends._postgres_pool import PooledCalls
from policystore.backends._postgres_records import PostgresRecords
from policystore.backends._postgres_schema import NoTablesError
from policystore.backends._postgres_urls import PostgresTarget, parse_postgres_url
from policystore.backends._report_requests import report_request
from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry
from policystore.redaction import redact

__all__ = ["PostgresBackend"]

log = logging.getLogger("policystore.postgres")
Connection = AsyncConnection[tuple[Any, ...]]

_NO_LIMIT: Final = 2**62

#: The head's version and its document (None when its row is missing). The row is looked up by
#: both key columns, never found through a join filter (see NEWEST_TEXT).
_NEWEST: Final = """
SELECT h.version,
       (SELECT v.document FROM policystore_versions v WHERE v.namespace = h.namespace AND v.version = h.version)
FROM policystore_head h WHERE h.namespace = %s
"""


class PostgresBackend:
    """A policy kept in PostgreSQL, shared by every process and host that opens the same URL.

    Build one with :meth:`from_url`.

    Args:
        target: the parsed URL.
        url: the URL to show, password removed.
    """

    def __init__(self, target: PostgresTarget, url: str) -> None:
        self.url = redact(url)
        self.namespace = target.namespace
        self.timeout = target.timeout
        self.channel = channel_for(target.namespace)
        self._target = target
        #: The pooled connections every call but the listener's uses (see :mod:`._postgres_pool`).
        self._pooled = PooledCalls(target, self.url)
        self._fetch, self._write, self._connection = self._pooled.fetch, self._pooled.write, self._pooled.connection
        #: The namespace's notice key, once read (it never changes while the namespace exists).
        self._notice_key: str | None = None
        self._closed = asyncio.Event()
        #: The listening connection's session, and the statements it serves (see :mod:`._postgres_listener`).
        self._listening = Listening(self.namespace, self.url, fetch=self._fetch, write=self._write)
        #: Answers the fleet's report requests heard on the channel (see on_report_request).
        self._report_requested: Callable[[int], None] | None = None
        #: The records beside the policy, in ``policystore_aux`` (see :mod:`._postgres_records`).
        self.records = PostgresRecords(
            self._fetch, self._write, self.namespace, self.url, passing=self._listening.report
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Return an unconnected back end for a ``postgresql://`` or ``postgres://`` URL.

        Raises:
            PolicyValidationError: the URL, its namespace or its timeout is malformed.
        """
        return cls(parse_postgres_url(url), url)

    def _entry(self, version: int, data: Any) -> HistoryEntry:
        try:
            return HistoryEntry.from_dict(data)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StoreUnavailableError(self.url, f"history entry {version} is malformed ({exc!r})") from exc

    def _document(self, version: int, document: Any) -> dict[str, Any]:
        if not isinstance(document, dict):
            raise StoreUnavailableError(
                self.url,
                f"the stored policy document of version {version} is a JSON {type(document).__name__}, not an object",
            )
        return document

    # -- the Backend protocol ----------------------------------------------------

    async def connect(self, *, create: bool = True) -> None:
        """Check that the server answers, and check (or create) the tables.

        Args:
            create: with False, nothing is created or written: a database
                without the tables reads as an empty store (version 0), and a
                write to it is refused.

        Raises:
            StoreUnavailableError: unreachable within the timeout, or the database
                holds tables of policystore's names that do not fit.
        """
        self._pooled.create = create
        self._closed.clear()
        await self._fetch("connecting", "SELECT 1", ())

    async def close(self) -> None:
        """End every notification iterator and close the connections."""
        self._closed.set()
        await self._pooled.close()

    async def current_version(self) -> int:
        """Return the newest version, 0 when nothing was ever written."""
        rows = await self._fetch(
            "reading the version", "SELECT version FROM policystore_head WHERE namespace = %s", (self.namespace,)
        )
        return int(rows[0][0]) if rows else 0

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """Return the document at ``version`` (newest when None), or None if absent.

        Raises:
            StoreUnavailableError: unreachable, or the stored document is not a JSON object.
        """
        if version is None:
            rows = await self._fetch("reading the policy", _NEWEST, (self.namespace,))
            if not rows:
                return None
            newest, document = rows[0]
            if document is None:
                raise StoreUnavailableError(self.url, f"version {newest} is missing from policystore_versions")
            return self._document(int(newest), document)
        rows = await self._fetch(
            f"reading version {version}",
            "SELECT document FROM policystore_versions WHERE namespace = %s AND version = %s",
            (self.namespace, version),
        )
        return self._document(version, rows[0][0]) if rows else None

    def newest_text(self) -> asyncio.Future[bytes | None]:
        """Start one read of the newest document as stored: the text its notice carried.

        On the listening connection while it listens (the request leaves at the call),
        else on a pooled one.

        Returns:
            A future of the text, None when the namespace holds no policy; it raises
            StoreUnavailableError when the read fails or takes longer than the timeout.
        """
        return self._listening.newest_text()

    def version_text(self, version: int) -> asyncio.Future[bytes | None]:
        """Start one read of the text version ``version`` was stored as, in the namespace's history.

        On the listening connection while it listens, else on a pooled one, as :meth:`newest_text`.

        Returns:
            A future of the text, None when the history holds no such version; it raises
            StoreUnavailableError when the read fails or takes longer than the timeout.
        """
        return self._listening.version_text(version)

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Store and announce the next version in one transaction.

        Raises:
            VersionConflictError: the store is not at ``document["version"] - 1``.
            StoreUnavailableError: unreachable or refused. If the connection failed
                after the statement was sent, the version may have been written,
                and the message says so.
        """
        version = int(document["version"])
        if entry.version != version:
            raise VersionConflictError(version - 1, await self.current_version())
        if self._notice_key is None and version > 1:
            rows = await self._fetch("reading the notice key", FIND_KEY, (self.namespace,))
            self._notice_key = str(rows[0][0]) if rows else None
        call = CommitCall.build(self.namespace, document, entry, self._notice_key)
        sending = Sending()
        what = f"committing version {version}"
        try:
            outcome = await bounded(self._send_commit(call, sending), self.timeout)
        except NoTablesError as exc:
            raise self._pooled.no_tables() from exc
        except MaybeWrittenError as exc:
            reason = self._pooled.unavailable(what, exc.cause).reason
            raise StoreUnavailableError(self.url, maybe_written(reason, version)) from exc.cause
        except (TimeoutError, psycopg.Error, OSError) as exc:
            reason = self._pooled.unavailable(what, exc).reason
            raise StoreUnavailableError(self.url, maybe_written(reason, version) if sending.sent else reason) from exc
        if not outcome.committed:
            raise VersionConflictError(version - 1, outcome.current)
        if outcome.replayed:
            log.info(
                "Version %d reached %s before its reply was lost; sent again, it was found there.", version, self.url
            )

    async def _send_commit(self, call: CommitCall, sending: Sending) -> CommitOutcome:
        """Send the commit; when the connection fails once it may have been sent, send it again."""
        try:
            return await self._commit_once(call, sending)
        except PoolTimeout:
            raise  # no connection, so nothing was sent
        except psycopg.OperationalError as exc:
            if not sending.sent:
                raise
            first = exc
        log.debug("The reply to version %d was lost (%s); sending it again.", call.version, first)
        await self._pooled.forget_dead_connections()
        try:
            return await self._commit_once(call, sending)
        except (psycopg.Error, OSError) as exc:
            raise MaybeWrittenError(exc) from first

    async def _commit_once(self, call: CommitCall, sending: Sending) -> CommitOutcome:
        async with self._connection() as conn:
            sending.sent = True
            written = await (await conn.execute(call.statement, call.params)).fetchone()
            if written is not None:
                return CommitOutcome(committed=True, replayed=False, current=call.version)
            # Nothing written: another writer's version, or this very write, sent before, whose reply was lost.
            found = await (await conn.execute(FIND_WRITE, call.params)).fetchone()
        current, write_id = found if found is not None else (None, None)
        return CommitOutcome(
            committed=write_id == call.write_id, replayed=write_id == call.write_id, current=current or 0
        )

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` entries older than ``before`` (all when None), newest first."""
        rows = await self._fetch(
            "reading history",
            "SELECT version, entry FROM policystore_versions WHERE namespace = %s AND version < %s "
            "ORDER BY version DESC LIMIT %s",
            (self.namespace, _NO_LIMIT if before is None else before, max(limit, 0)),
        )
        return [self._entry(int(version), data) for version, data in rows]

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return the entries with ``after < version <= upto``, oldest first.

        Raises:
            StoreUnavailableError: unreachable, or an entry in the range is missing or malformed.
        """
        rows = await self._fetch(
            "reading history",
            "SELECT version, entry FROM policystore_versions WHERE namespace = %s AND version > %s AND version <= %s "
            "ORDER BY version",
            (self.namespace, after, upto),
        )
        entries = []
        for expected, (version, data) in enumerate(rows, start=max(after, 0) + 1):
            if version != expected:
                raise StoreUnavailableError(self.url, f"history entry {expected} is missing from policystore_versions")
            entries.append(self._entry(int(version), data))
        return entries

    def notifications(self) -> AsyncIterator[int | Published]:
        """Yield each announced version; 0 after every (re)connect and on connection loss.

        A notice that carries its document and history entry is yielded as
        :class:`Published`; one with only a version, as that number; a
        malformed one as 0. Never raises for a lost connection (see
        :func:`~policystore.backends._postgres_listener.listen`); ends when
        :meth:`close` is called.
        """
        target = self._target
        return listen(
            target.conninfo,
            target.connect_options,
            namespace=self.namespace,
            within=self.timeout,
            closed=self._closed,
            url=self.url,
            listening=self._listening,
            requested=self._heard_request,
        )

    async def request_reports(self, version: int) -> None:
        """Ask the fleet's members to report ``version`` now (see :class:`~.base.ReportRequests`).

        Raises:
            StoreUnavailableError: PostgreSQL could not be reached.
        """
        await self._fetch(
            "asking the fleet to report",
            "SELECT pg_notify(%s, %s)",
            (channel_for(self.namespace), report_request(version)),
        )

    def on_report_request(self, answer: Callable[[int], None] | None) -> None:
        """Call ``answer`` with the version of each report request heard on the channel."""
        self._report_requested = answer

    def _heard_request(self, version: int) -> None:
        if self._report_requested is not None:
            self._report_requested(version)
