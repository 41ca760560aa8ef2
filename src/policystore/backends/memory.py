"""``memory://`` and ``memory://NAME``: a store that lives in this process.

``memory://NAME`` stores are shared by every PolicyStore of the process that
opens the same name, which lets tests run several readers against one store.
Their records (see :class:`MemoryRecords`) are shared the same way.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

from policystore.backends._records import check_names, decode_record, encode_record
from policystore.backends.base import Published
from policystore.errors import VersionConflictError
from policystore.model.history import HistoryEntry

__all__ = ["MemoryBackend", "MemoryRecords"]


class _Shared:
    """The data behind one memory store, shared by every back end that names it."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.entries: list[HistoryEntry] = []
        self.records: dict[str, dict[str, str]] = {}
        self.listeners: set[asyncio.Queue[int | Published]] = set()


_NAMED: dict[str, _Shared] = {}


class MemoryBackend:
    """A back end held in this process's memory."""

    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        self._shared = _NAMED.setdefault(name, _Shared()) if name else _Shared()
        self._closed = False
        self._own: set[asyncio.Queue[int | Published]] = set()
        self.records = MemoryRecords(self._shared.records, before=self._check, url=self.url)

    def _check(self) -> _Shared:
        return self._shared

    async def connect(self, *, create: bool = True) -> None:
        """Nothing to open or create (an empty store is version 0)."""
        del create  # nothing is created on connect either way
        self._check()

    async def close(self) -> None:
        """End this back end's notification iterators."""
        self._closed = True
        for queue in self._own:
            queue.put_nowait(-1)

    async def current_version(self) -> int:
        """Return the newest version, 0 when empty."""
        return len(self._check().documents)

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """Return a copy of the document at ``version`` (newest when None)."""
        documents = self._check().documents
        if not documents:
            return None
        index = len(documents) if version is None else version
        if not 1 <= index <= len(documents):
            return None
        return copy.deepcopy(documents[index - 1])

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """Append a version if the version is the next one."""
        shared = self._check()
        current = len(shared.documents)
        if document.get("version") != current + 1 or entry.version != current + 1:
            raise VersionConflictError(int(document.get("version", 1)) - 1, current)
        shared.documents.append(copy.deepcopy(document))
        shared.entries.append(entry)
        for queue in shared.listeners:
            queue.put_nowait(Published(current + 1, copy.deepcopy(document), entry))

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` entries older than ``before``, newest first."""
        entries = self._check().entries
        upto = len(entries) if before is None else max(0, min(before - 1, len(entries)))
        return list(reversed(entries[max(0, upto - limit) : upto]))

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """Return entries with ``after < version <= upto``, oldest first."""
        return list(self._check().entries[max(after, 0) : max(upto, 0)])

    async def notifications(self) -> AsyncIterator[int | Published]:
        """Yield 0 once at start (check now), then each committed version until :meth:`close`."""
        # A plain queue read, no helper tasks: nothing is left pending when the loop stops.
        queue: asyncio.Queue[int | Published] = asyncio.Queue()
        self._shared.listeners.add(queue)
        self._own.add(queue)
        try:
            # A commit made before this iterator started was heard by no one: tell the listener to check.
            yield 0
            while not self._closed:
                hint = await queue.get()
                if hint == -1:  # close() was called
                    return
                yield hint
        finally:
            self._shared.listeners.discard(queue)
            self._own.discard(queue)


class MemoryRecords:
    """Records (see :class:`~policystore.backends.base.RecordStore`) held in this process's memory.

    Each record is kept as its JSON text, as the other back ends keep it, so a
    record is checked alike everywhere and every read returns a copy.

    Args:
        collections: the text of each record by key, by collection (a new, empty one when None).
        before: called before every call; it may raise StoreUnavailableError (nothing is then read or written).
        url: the store's URL, for messages.
    """

    def __init__(
        self,
        collections: dict[str, dict[str, str]] | None = None,
        *,
        before: Callable[[], object] = lambda: None,
        url: str = "memory://",
    ) -> None:
        self._collections = {} if collections is None else collections
        self._before = before
        self._url = url

    def _rows(self, collection: str, key: str | None = None) -> dict[str, str]:
        check_names(collection, key)
        self._before()
        return self._collections.setdefault(collection, {})

    async def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """Return every record of ``collection`` by key."""
        found = {}
        for key, text in self._rows(collection).items():
            record = decode_record(text, collection=collection, key=key, where=self._url)
            if record is not None:
                found[key] = record
        return found

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the record at ``key``, or None."""
        text = self._rows(collection, key).get(key)
        return None if text is None else decode_record(text, collection=collection, key=key, where=self._url)

    async def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` at ``key``, replacing any record there."""
        text = encode_record(record)
        self._rows(collection, key)[key] = text

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        """Store ``record`` at ``key`` unless a record is there; return whether it was stored."""
        text = encode_record(record)
        rows = self._rows(collection, key)
        if key in rows:
            return False
        rows[key] = text
        return True

    async def delete(self, collection: str, key: str) -> bool:
        """Remove the record at ``key``; return whether there was one."""
        return self._rows(collection, key).pop(key, None) is not None
