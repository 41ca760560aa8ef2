"""An event recorder: subscribe to a store, keep what it delivers, wait for what a test expects."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Self, TypeVar

from policystore import EventType, PolicyChanged, PolicyStore, SyncPolicyStore

__all__ = ["EventRecorder"]

T = TypeVar("T")
_Ready = Callable[[list[PolicyChanged]], T | None]


class EventRecorder:
    """Records the change events a store delivers, for a test to wait for and assert on.

    It subscribes when made and unsubscribes at :meth:`stop` (or at the end of
    a ``with`` block). Events are recorded on whatever thread the store
    delivers them, so it serves a :class:`~policystore.SyncPolicyStore` as well
    as a :class:`~policystore.PolicyStore`::

        recorder = EventRecorder(store, types=["policy.updated", "policy.mode.changed"])
        await store.switch_mode("DEFENSIVE", reason="calm")
        event = await recorder.wait_for_version(2, kind="policy.mode.changed")

    Args:
        store: the store to record.
        types: the event kinds to record, as for :meth:`PolicyStore.subscribe`;
            None records each change once, as its ``policy.updated`` event, and
            ``policy.rejected`` notices.
    """

    def __init__(self, store: PolicyStore | SyncPolicyStore, *, types: Iterable[EventType | str] | None = None) -> None:
        self._condition = threading.Condition()
        self._events: list[PolicyChanged] = []
        self._waiters: list[Callable[[], bool]] = []
        self._unsubscribe: Callable[[], None] | None = store.subscribe(self._record, types=types)

    def _record(self, event: PolicyChanged) -> None:
        with self._condition:
            self._events.append(event)
            self._condition.notify_all()
            self._waiters = [waiter for waiter in self._waiters if not waiter()]

    # -- what was recorded ------------------------------------------------------

    @property
    def events(self) -> list[PolicyChanged]:
        """The events recorded so far, oldest first (a copy)."""
        with self._condition:
            return list(self._events)

    @property
    def versions(self) -> list[int]:
        """The version of each event recorded so far, oldest first."""
        return [event.version for event in self.events]

    def clear(self) -> None:
        """Forget the events recorded so far."""
        with self._condition:
            self._events.clear()

    def stop(self) -> None:
        """Unsubscribe: record nothing more (what was recorded stays)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- waiting, from async code --------------------------------------------------

    # The waits take a timeout, as asyncio.wait_for does: a test states how long it is willing to wait.
    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[PolicyChanged]:  # noqa: ASYNC109
        """Wait until at least ``count`` events are recorded.

        Args:
            count: how many events to wait for.
            timeout: seconds to wait at most.

        Returns:
            The first ``count`` events, oldest first.

        Raises:
            TimeoutError: fewer were recorded in time; the message lists those that were.
        """
        return await self._until(_first(count), timeout, f"{count} event(s)")

    async def wait_for_version(
        self,
        version: int,
        *,
        kind: EventType | str = EventType.UPDATED,
        timeout: float = 10.0,  # noqa: ASYNC109 - as for wait_for
    ) -> PolicyChanged:
        """Wait for the event of ``kind`` that ``version`` made.

        Args:
            version: the policy version the event is about.
            kind: the event kind (``policy.updated`` by default).
            timeout: seconds to wait at most.

        Returns:
            That event.

        Raises:
            TimeoutError: it was not recorded in time; the message lists what was.
        """
        wanted = EventType(kind)
        return await self._until(
            _of_version(version, wanted), timeout, f"the {wanted.value} event of version {version}"
        )

    async def _until(self, ready: _Ready[T], timeout: float, what: str) -> T:  # noqa: ASYNC109 - as for wait_for
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def waiter() -> bool:  # called with the condition held, on the thread that records
            result = ready(self._events)
            if result is None:
                return False
            with contextlib.suppress(RuntimeError):  # the waiting loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result)
            return True

        with self._condition:
            result = ready(self._events)
            if result is not None:
                return result
            self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(self._missing(what, timeout)) from None
        finally:
            with self._condition:
                self._waiters = [w for w in self._waiters if w is not waiter]

    # -- waiting, from threads (a SyncPolicyStore's caller) ---------------------------

    def wait_for_blocking(self, count: int, *, timeout: float = 10.0) -> list[PolicyChanged]:
        """Block until at least ``count`` events are recorded; as :meth:`wait_for`, for code without a loop.

        Do not call it on the event loop that delivers the events: it would wait out its timeout.

        Args:
            count: how many events to wait for.
            timeout: seconds to wait at most.

        Returns:
            The first ``count`` events, oldest first.

        Raises:
            TimeoutError: fewer were recorded in time; the message lists those that were.
        """
        return self._block_until(_first(count), timeout, f"{count} event(s)")

    def wait_for_version_blocking(
        self, version: int, *, kind: EventType | str = EventType.UPDATED, timeout: float = 10.0
    ) -> PolicyChanged:
        """Block until the event of ``kind`` that ``version`` made is recorded; see :meth:`wait_for_version`.

        Args:
            version: the policy version the event is about.
            kind: the event kind (``policy.updated`` by default).
            timeout: seconds to wait at most.

        Returns:
            That event.

        Raises:
            TimeoutError: it was not recorded in time; the message lists what was.
        """
        wanted = EventType(kind)
        return self._block_until(
            _of_version(version, wanted), timeout, f"the {wanted.value} event of version {version}"
        )

    def _block_until(self, ready: _Ready[T], timeout: float, what: str) -> T:
        found: list[T] = []

        def done() -> bool:
            result = ready(self._events)
            if result is not None:
                found.append(result)
            return result is not None

        with self._condition:
            if not self._condition.wait_for(done, timeout):
                raise TimeoutError(self._missing(what, timeout))
        return found[-1]

    def _missing(self, what: str, timeout: float) -> str:
        seen = ", ".join(f"{event.type.value} of version {event.version}" for event in self.events) or "nothing"
        return f"{what} not recorded within {timeout:g} s; recorded: {seen}"


def _first(count: int) -> _Ready[list[PolicyChanged]]:
    def ready(events: list[PolicyChanged]) -> list[PolicyChanged] | None:
        return list(events[:count]) if len(events) >= count else None

    return ready


def _of_version(version: int, kind: EventType) -> _Ready[PolicyChanged]:
    def ready(events: list[PolicyChanged]) -> PolicyChanged | None:
        return next((e for e in events if e.version == version and e.type is kind), None)

    return ready


def _settle(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)
