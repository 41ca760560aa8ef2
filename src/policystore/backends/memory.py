"""``memory://`` and ``memory://NAME``: a store that lives in this process.

``memory://NAME`` stores are shared by every PolicyStore of the process that
opens the same name, which lets tests run several readers against one store.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from policystore.backends.base import Published
from policystore.errors import StoreUnavailableError, VersionConflictError
from policystore.model.history import HistoryEntry

__all__ = ["MemoryBackend"]


class _Shared:
    """The data behind one memory store, shared by every back end that names it."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.entries: list[HistoryEntry] = []
        self.aux: dict[str, dict[str, str]] = {}
        self.listeners: set[asyncio.Queue[int | Published]] = set()
        self.available = True


_NAMED: dict[str, _Shared] = {}


class MemoryBackend:
    """A back end held in this process's memory."""

    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        self._shared = _NAMED.setdefault(name, _Shared()) if name else _Shared()
        self._closed = False
        self._own: set[asyncio.Queue[int | Published]] = set()

    def set_available(self, available: bool) -> None:
        """Simulate an outage (False) or recovery (True) of this store."""
        self._shared.available = available
        if available:
            for queue in self._shared.listeners:
                queue.put_nowait(0)

    def _check(self) -> _Shared:
        if not self._shared.available:
            raise StoreUnavailableError(self.url, "the store is switched off")
        return self._shared

    async def connect(self, *, create: bool = True) -> None:
        """Nothing to open or create (an empty store is version 0); fails while switched off."""
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

    async def aux_get(self, table: str) -> dict[str, str]:
        """Return a copy of an auxiliary table."""
        return dict(self._check().aux.get(table, {}))

    async def aux_put(self, table: str, key: str, value: str | None) -> None:
        """Set or delete one key of an auxiliary table."""
        rows = self._check().aux.setdefault(table, {})
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value
