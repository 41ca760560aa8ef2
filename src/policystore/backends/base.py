"""The interface every storage back end implements.

A back end stores versions of one policy document with their history entries
and tells listeners when a new version may exist. It does no validation of its
own beyond compare-and-set: the store validates before it commits and after it
loads.

Beside the policy, every back end keeps records: named collections of small
JSON objects keyed by string (:class:`RecordStore`, reached as
``backend.records``). They hold what the server and the fleet keep next to the
policy (API token hashes, proposals, fleet members) and are no part of the
policy's versions or history.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from policystore.model.history import HistoryEntry

__all__ = [
    "Backend",
    "NewestText",
    "Published",
    "RecordStore",
    "ReportRequests",
    "UnloggedRecords",
    "VersionText",
]


@dataclass(frozen=True, slots=True)
class Published:
    """A new version as its commit announced it, document and history entry included.

    A listener holding the version just before can install it without reading
    the store back; it still validates the document, as after any load. The
    document may come as the JSON text it was published as, so a listener
    parses and validates it in one step. The history entry may come as the
    data it was published as: it is read only when asked for (a process that
    no one subscribes to never needs it).
    """

    version: int
    document: dict[str, Any] | bytes
    entry_data: HistoryEntry | dict[str, Any] | bytes

    @property
    def entry(self) -> HistoryEntry:
        """The history entry of the version.

        Raises:
            ValueError, TypeError, KeyError: the published entry is malformed, or
                is the entry of another version.
        """
        data = self.entry_data
        if isinstance(data, bytes):
            data = json.loads(data)
        entry = data if isinstance(data, HistoryEntry) else HistoryEntry.from_dict(data)
        if entry.version != self.version:
            msg = f"the entry published with version {self.version} is the entry of version {entry.version}"
            raise ValueError(msg)
        return entry


@runtime_checkable
class RecordStore(Protocol):
    """Named collections of small JSON records, keyed by string, kept beside the policy.

    A record is a JSON object. Each call is one atomic step on one record (or
    one read of a collection); there are no transactions across records, so a
    change that several writers may make at once is best made a record of its
    own with :meth:`add` (one key per approval, say) rather than a
    read-modify-write of a shared one. A stored value that is not a JSON object
    (written by something else) reads as absent, and is logged.

    Collection names are 1 to 64 letters, digits, ``_``, ``.`` or ``-``; keys
    are non-empty strings. Every method raises
    :class:`~policystore.errors.PolicyValidationError` for a bad name, key or
    record, and :class:`~policystore.errors.StoreUnavailableError` when the
    storage cannot be reached.
    """

    async def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """Return every record of ``collection`` by key (empty when it has none)."""

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the record at ``key``, or None when there is none."""

    async def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key``, replacing any record there."""

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        """Store ``record`` at ``key`` only if no record is there; return whether it was stored."""

    async def delete(self, collection: str, key: str) -> bool:
        """Remove the record at ``key``; return whether there was one."""


@runtime_checkable
class UnloggedRecords(Protocol):
    """Records that can also be written without the durability of the store's own writes.

    For a record its writer rewrites many times a second and that is worth
    little once its writer is gone: a fleet member's report of the versions
    it installs (see :mod:`policystore.store.fleet`), on a server that makes
    every logged write durable before it answers anyone. A back end whose
    writes cost little offers nothing of the kind, and :meth:`RecordStore.put` is used.
    """

    async def put_unlogged(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key`` for readers now; a restart may bring back the last one ``put`` stored."""


@runtime_checkable
class Backend(Protocol):
    """Storage for one versioned policy document.

    Every method raises :class:`~policystore.errors.StoreUnavailableError` when
    the storage cannot be reached in bounded time.
    """

    #: Where the data lives, safe to print (no password).
    url: str

    @property
    def records(self) -> RecordStore:
        """The records kept beside the policy, in the same storage (see :class:`RecordStore`)."""

    async def connect(self, *, create: bool = True) -> None:
        """Open connections and create what the back end needs.

        Args:
            create: with False, create nothing: a store that does not exist yet
                (for a file, no file) is left absent and reads as version 0.
                The store passes it only when False, so a back end that never
                creates anything may leave it out.
        """

    async def close(self) -> None:
        """Release connections; end every :meth:`notifications` iterator."""

    async def current_version(self) -> int:
        """Return the newest version, 0 when nothing was ever written. Cheap."""

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """Return the document at ``version`` (newest when None), or None if absent."""

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Store ``document`` and ``entry`` as one atomic step, then notify listeners.

        ``document["version"]`` and ``entry.version`` must be one more than the
        current version.

        Raises:
            VersionConflictError: the current version is not ``document["version"] - 1``.
        """

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` entries older than ``before`` (all when None), newest first."""

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return the entries with ``after < version <= upto``, oldest first."""

    def notifications(self) -> AsyncIterator[int | Published]:
        """Yield a hint each time the store may hold a newer version.

        A hint is a version number (0: unknown, check), or the :class:`Published`
        version itself when the back end's notifications carry it. After a
        reconnect the iterator yields 0 so the listener re-reads.
        """


@runtime_checkable
class NewestText(Protocol):
    """A back end that reads its newest document as the text it stored, sending the request at the call.

    A change notice that would loosen what a process holds is installed only
    once one read of the store finds the notice's document there (see
    :mod:`policystore.store.notices`). With this, that read starts as soon as
    the notice arrives, overlapping its validation, and is compared byte for
    byte; a back end without it is read with :meth:`Backend.load`.
    """

    def newest_text(self) -> asyncio.Future[bytes | None]:
        """Start one read of the newest document's stored text.

        Returns:
            A future of the text (None when the store holds no policy) that raises
            :class:`~policystore.errors.StoreUnavailableError` when the read fails.
        """


@runtime_checkable
class VersionText(Protocol):
    """A back end that reads any version's document as the text it stored, sending the request at the call.

    A loosening notice whose confirming read (see :class:`NewestText`) finds a
    later version already written is confirmed by the text the store keeps for
    the notice's own version instead: a process a version or two behind then
    follows the notices it has, rather than reading the store back.
    """

    def version_text(self, version: int) -> asyncio.Future[bytes | None]:
        """Start one read of version ``version``'s stored text.

        Returns:
            A future of the text (None when the history holds no such version) that raises
            :class:`~policystore.errors.StoreUnavailableError` when the read fails.
        """


@runtime_checkable
class ReportRequests(Protocol):
    """A back end through which a process that waits on the fleet asks its members to report now.

    Members report the versions they apply at most every
    :data:`~policystore.store.fleet_reports.REPORT_GAP` seconds; a request
    (see :mod:`policystore.backends._report_requests`) has each member report
    the version asked for as soon as it holds it. A back end without it
    leaves a waiter to the members' next reports.
    """

    async def request_reports(self, version: int) -> None:
        """Ask every member to report ``version`` (or a newer one) as soon as it holds it.

        Raises:
            StoreUnavailableError: the request could not be sent.
        """

    def on_report_request(self, answer: Callable[[int], None] | None) -> None:
        """Call ``answer`` with the version of each request this back end's listeners hear (None: none)."""
