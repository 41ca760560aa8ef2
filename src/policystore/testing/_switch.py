"""An outage switch: a back end that can be made unreachable and reachable again."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

from policystore.backends.base import Backend, Published, RecordStore
from policystore.errors import StoreUnavailableError
from policystore.model.history import HistoryEntry

__all__ = ["SwitchableBackend"]

#: What a switched-off store says; the same words wherever the outage is seen.
SWITCHED_OFF: Final = "the store is switched off"


class _Ended:
    """Marks the end of the wrapped back end's notifications in a listener's queue."""


_ENDED: Final = _Ended()

_Item = int | Published | StoreUnavailableError | _Ended


class SwitchableBackend:
    """Any back end, with a switch that makes its store unreachable and reachable again.

    While switched off, every call but :meth:`close` and :meth:`notifications`,
    those of :attr:`records` included, raises
    :class:`~policystore.errors.StoreUnavailableError` at once, as a call to a
    store that cannot be reached does, and the data behind the wrapped back end
    is left as it was. Listeners of :meth:`notifications` hear 0 when the
    switch goes off (as after a lost connection: the listener re-reads, finds
    the store unreachable and goes stale) and 0 again when it comes back on (as
    after a reconnect: the listener re-reads and goes live), and hear nothing
    else while it is off. So a :class:`~policystore.PolicyStore` over it rides
    out the outage as it would a real one: it answers from its last-known-good
    copy, marked stale, refuses writes, and reconverges when the store returns.

    Switch it from the event loop the back end is used on (from another
    thread, through ``loop.call_soon_threadsafe``). Methods the wrapped back
    end has beyond the :class:`~policystore.backends.base.Backend` protocol
    are passed through, and those that are coroutines fail while switched off
    too.

    Example::

        backend = SwitchableBackend(MemoryBackend("orders"))
        store = await PolicyStore.open(backend, lkg_path=tmp_path / "lkg.json")
        with backend.outage():
            ...  # store.stale after its next read; writes raise StoreUnavailableError

    Args:
        backend: the back end to wrap.
        available: whether the store starts reachable.
    """

    def __init__(self, backend: Backend, *, available: bool = True) -> None:
        self.wrapped = backend
        self.url = backend.url
        self.records: RecordStore = _SwitchedRecords(self)
        self._available = available
        self._listeners: set[asyncio.Queue[_Item]] = set()

    def __repr__(self) -> str:
        state = "on" if self._available else "off"
        return f"SwitchableBackend({self.url!r}, switched {state})"

    # -- the switch -----------------------------------------------------------

    @property
    def available(self) -> bool:
        """True while the store is switched on (reachable)."""
        return self._available

    def set_available(self, available: bool) -> None:
        """Switch the store off (False) or on again (True); listeners hear 0 when it changes.

        Args:
            available: True to make the store reachable, False to make it unreachable.
        """
        if available == self._available:
            return
        self._available = available
        for queue in self._listeners:
            queue.put_nowait(0)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Switch the store off for the body of a ``with`` statement, then on again (even on error).

        Yields:
            Nothing; the store is unreachable until the block ends.
        """
        self.set_available(False)
        try:
            yield
        finally:
            self.set_available(True)

    def _check(self) -> None:
        _refuse_while_off(self)

    # -- the Backend protocol -------------------------------------------------

    async def connect(self, *, create: bool = True) -> None:
        """Connect the wrapped back end; while switched off, fail as an unreachable store does.

        Raises:
            StoreUnavailableError: switched off, or the wrapped back end cannot connect.
        """
        self._check()
        # ``create`` is passed on only when False, as the store does: a back end may not know it.
        await (self.wrapped.connect() if create else self.wrapped.connect(create=False))

    async def close(self) -> None:
        """Close the wrapped back end (also while switched off); its listeners end."""
        await self.wrapped.close()

    async def current_version(self) -> int:
        """See :meth:`Backend.current_version`.

        Raises:
            StoreUnavailableError: switched off, or the wrapped back end cannot be reached.
        """
        self._check()
        return await self.wrapped.current_version()

    async def load(self, version: int | None = None) -> dict[str, Any] | None:
        """See :meth:`Backend.load`.

        Raises:
            StoreUnavailableError: switched off, or the wrapped back end cannot be reached.
        """
        self._check()
        return await self.wrapped.load(version)

    async def commit(self, document: dict[str, Any], entry: HistoryEntry) -> None:
        """See :meth:`Backend.commit`; nothing is written while switched off.

        Raises:
            StoreUnavailableError: switched off, or the wrapped back end cannot be reached.
            VersionConflictError: the version is not the next one.
        """
        self._check()
        await self.wrapped.commit(document, entry)

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:
        """See :meth:`Backend.history`.

        Raises:
            StoreUnavailableError: switched off, or the wrapped back end cannot be reached.
        """
        self._check()
        return await self.wrapped.history(limit, before)

    async def entries(self, after: int, upto: int) -> list[HistoryEntry]:
        """See :meth:`Backend.entries`.

        Raises:
            StoreUnavailableError: switched off, or the wrapped back end cannot be reached.
        """
        self._check()
        return await self.wrapped.entries(after, upto)

    async def notifications(self) -> AsyncIterator[int | Published]:
        """Yield the wrapped back end's hints while switched on, and 0 at each switch.

        Like the notifications of a back end whose server went away, it never
        raises for the outage: a listener that starts while the store is
        switched off hears 0 at once (it re-reads, finds the store unreachable
        and goes stale), then 0 when it comes back. Ends when the wrapped back
        end's notifications end (at :meth:`close`).

        Raises:
            StoreUnavailableError: the wrapped back end's notifications failed so.
        """
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        if not self._available:
            queue.put_nowait(0)  # the wrapped back end's own first hint is not passed on while off

        async def pump() -> None:
            # The wrapped iterator is read by a task of this listener's own, so that a switch
            # reaches the listener at once, even while the wrapped back end has nothing to say.
            try:
                async for hint in self.wrapped.notifications():
                    if self._available:
                        queue.put_nowait(hint)
            except StoreUnavailableError as exc:
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(_ENDED)

        self._listeners.add(queue)
        task = asyncio.create_task(pump(), name="policystore-switchable-notify")
        try:
            while not isinstance(item := await queue.get(), _Ended):
                if isinstance(item, StoreUnavailableError):
                    raise item
                yield item
        finally:
            self._listeners.discard(queue)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __getattr__(self, name: str) -> Any:
        """Pass any other attribute of the wrapped back end through; its coroutines fail while switched off."""
        if name.startswith("_") or name == "wrapped":  # never reached for our own state, even half-built
            raise AttributeError(name)
        attribute = getattr(self.wrapped, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return await attribute(*args, **kwargs)

        return guarded


def _refuse_while_off(switch: SwitchableBackend) -> None:
    """Raise what a call to an unreachable store raises, while ``switch`` is off."""
    if not switch.available:
        raise StoreUnavailableError(switch.url, SWITCHED_OFF)


class _SwitchedRecords:
    """The wrapped back end's records, unreachable while the switch is off (see :class:`RecordStore`)."""

    def __init__(self, switch: SwitchableBackend) -> None:
        self._switch = switch

    async def all(self, collection: str) -> dict[str, dict[str, Any]]:
        """See :meth:`RecordStore.all`."""
        _refuse_while_off(self._switch)
        return await self._switch.wrapped.records.all(collection)

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """See :meth:`RecordStore.get`."""
        _refuse_while_off(self._switch)
        return await self._switch.wrapped.records.get(collection, key)

    async def put(self, collection: str, key: str, record: dict[str, Any]) -> None:
        """See :meth:`RecordStore.put`; nothing is written while switched off."""
        _refuse_while_off(self._switch)
        await self._switch.wrapped.records.put(collection, key, record)

    async def add(self, collection: str, key: str, record: dict[str, Any]) -> bool:
        """See :meth:`RecordStore.add`; nothing is written while switched off."""
        _refuse_while_off(self._switch)
        return await self._switch.wrapped.records.add(collection, key, record)

    async def delete(self, collection: str, key: str) -> bool:
        """See :meth:`RecordStore.delete`; nothing is deleted while switched off."""
        _refuse_while_off(self._switch)
        return await self._switch.wrapped.records.delete(collection, key)
