"""What the conformance checks share: the back end under test, failures, documents, listeners."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from policystore import FieldChange, HistoryEntry, StoreUnavailableError
from policystore.backends.base import Backend, Published
from policystore.model.policy import default_policy
from policystore.testing._switch import SwitchableBackend

__all__ = [
    "BackendFactory",
    "ConformanceError",
    "Listener",
    "Outage",
    "Session",
    "document",
    "entry",
    "expect",
    "expect_equal",
    "within",
]

T = TypeVar("T")
#: A call the suite makes to stop or start a store: a function or a coroutine function.
Action = Callable[[], Awaitable[object]] | Callable[[], object]


class ConformanceError(AssertionError):
    """Raised when a back end breaks the contract; the message names the promise and what happened instead.

    An AssertionError, not a :class:`~policystore.PolicyStoreError`: it reports a
    failed test, and test runners show it as one.
    """


@dataclass(frozen=True, slots=True)
class BackendFactory:
    """One new, empty store of the back end under test, and the ways the suite reaches it.

    Give each check a factory of its own (its own database file, namespace or
    name): a check writes to the store.

    Args:
        open: returns a new, unconnected back end on the store. Every call
            returns one on the same store, as several processes would open it.
        unreachable: returns a back end whose store cannot be reached (a
            closed port, a path that cannot be a database). None: a back end
            from ``open``, switched off with :class:`SwitchableBackend`.
        stop: makes the store unreachable for every back end ``open`` gave
            (stops its server), keeping its data. With ``start``, the outage
            checks ride out a real outage; None: one simulated with
            :class:`SwitchableBackend`. A function or a coroutine function.
        start: makes the store reachable again, with its data.
        timeout: the seconds within which a call to an unreachable store must
            fail, and a listener must hear of a commit.

    Raises:
        ValueError: only one of ``stop`` and ``start`` was given, or the timeout is not positive.
    """

    open: Callable[[], Backend]
    unreachable: Callable[[], Backend] | None = None
    stop: Action | None = None
    start: Action | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if (self.stop is None) != (self.start is None):
            raise ValueError("give a BackendFactory both stop and start, or neither")
        if not self.timeout > 0:
            raise ValueError(f"a BackendFactory's timeout must be a positive number of seconds, not {self.timeout!r}")


def expect(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds.

    Raises:
        ConformanceError: it does not hold.
    """
    if not condition:
        raise ConformanceError(message)


def expect_equal(expected: object, actual: object, what: str) -> None:
    """Fail unless ``actual == expected``, naming ``what`` was compared.

    Raises:
        ConformanceError: they differ.
    """
    if expected != actual:
        raise ConformanceError(f"{what}: expected {expected!r}, got {actual!r}")


async def within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    """Await ``awaitable`` for at most ``seconds``.

    Raises:
        ConformanceError: it took longer (``what`` says what did not finish).
    """
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise ConformanceError(f"{what} did not finish within {seconds:g} s") from None


async def run_action(action: Action) -> None:
    """Run a stop or start action: a coroutine function on the loop, a function on a thread (it may block)."""
    if inspect.iscoroutinefunction(action):
        await action()
    else:
        await asyncio.to_thread(action)


def document(version: int, marker: int = 0) -> dict[str, Any]:
    """Return a valid policy document of ``version``; ``marker`` makes documents of one version differ."""
    data = default_policy().document()
    data |= {"version": version, "updated_by": f"writer-{marker}", "reason": f"version {version}"}
    data["updated_at"] = (_EPOCH + timedelta(minutes=version)).isoformat()
    data["modes"]["NORMAL"]["max_positions"] = 10 + version
    data["strategies"]["moderate"]["cooldown_seconds"] = 100 + marker
    return data


_EPOCH = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def entry(version: int, marker: int = 0) -> HistoryEntry:
    """Return the entry of :func:`document` ``(version, marker)``: values of every JSON kind, text beyond ASCII."""
    return HistoryEntry(
        version=version,
        at=_EPOCH + timedelta(minutes=version, microseconds=123456 + marker),
        by=f"writer-{marker}",
        reason=f"version {version}: tighter, «Ω» ✓\nsecond line",
        changes=(
            FieldChange("modes.NORMAL.max_positions", 9 + version, 10 + version),
            FieldChange("modes.NORMAL.max_leverage", 5.0, 4.5),
            FieldChange("modes.NORMAL.enable_rl", old=True, new=False),
            FieldChange("emergency.reason", None, "text"),
        ),
    )


def published_document(hint: Published) -> dict[str, Any]:
    """The document a :class:`Published` hint carries, parsed if it came as text."""
    raw = hint.document
    parsed = json.loads(raw) if isinstance(raw, bytes) else raw
    expect(isinstance(parsed, dict), f"the published document of version {hint.version} is no JSON object")
    return dict(parsed)


class Session:
    """The back ends a check opens, all closed when the check ends (``async with``).

    Args:
        factory: the back end under test.
    """

    def __init__(self, factory: BackendFactory) -> None:
        self.factory = factory
        self._opened: list[Backend] = []
        self._outages: list[Outage] = []

    async def open(self, *, connect: bool = True) -> Backend:
        """Return a new back end on the store, connected unless ``connect`` is False."""
        backend = self.adopt(self.factory.open())
        if connect:
            await within(self.factory.timeout, backend.connect(), f"connect() of {backend.url}")
        return backend

    def adopt(self, backend: Backend) -> Backend:
        """Close ``backend`` with the others when the check ends; return it."""
        self._opened.append(backend)
        return backend

    def track(self, outage: Outage) -> None:
        """End ``outage`` when the check ends, if the check did not: the store is left reachable."""
        self._outages.append(outage)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for outage in self._outages:
            if outage.down:  # a check that failed during an outage still leaves the store reachable
                await outage.end()
        for backend in reversed(self._opened):
            with contextlib.suppress(Exception):  # a close that fails must not hide the check's own failure
                await asyncio.wait_for(backend.close(), self.factory.timeout)


class Outage:
    """A real outage (the factory's ``stop`` and ``start``), or one simulated with switches.

    Back ends for the outage come from :meth:`backend`: with a simulated
    outage, each is a :class:`SwitchableBackend` that :meth:`begin` switches off.

    Args:
        session: the check's session; back ends are opened through it.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._factory = session.factory
        self.real = self._factory.stop is not None
        self.down = False
        self._switches: list[SwitchableBackend] = []
        session.track(self)

    def backend(self) -> Backend:
        """Return a new, unconnected back end on the store that the outage reaches."""
        if self.real:
            return self._session.adopt(self._factory.open())
        switch = SwitchableBackend(self._factory.open(), available=not self.down)
        self._switches.append(switch)
        return self._session.adopt(switch)

    async def begin(self) -> None:
        """Make the store unreachable."""
        self.down = True
        if self._factory.stop is not None:
            await run_action(self._factory.stop)
        for switch in self._switches:
            switch.set_available(False)

    async def end(self) -> None:
        """Make the store reachable again."""
        self.down = False
        if self._factory.start is not None:
            await run_action(self._factory.start)
        for switch in self._switches:
            switch.set_available(True)


class Listener:
    """Reads a back end's notifications in the background, as a store does, and keeps every hint.

    When the iterator raises :class:`~policystore.StoreUnavailableError` the
    listener listens again, as a store would; any other error fails the check.

    Args:
        backend: the back end to listen on.
        timeout: how long :meth:`until` waits by default.
    """

    def __init__(self, backend: Backend, timeout: float) -> None:
        self.hints: list[int | Published] = []
        self.ended = False
        self._backend = backend
        self._timeout = timeout
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._listen(), name="policystore-conformance-listener")

    async def _listen(self) -> None:
        try:
            while True:
                try:
                    async for hint in self._backend.notifications():
                        self.hints.append(hint)
                        self._changed.set()
                except StoreUnavailableError:
                    await asyncio.sleep(0.05)
                    continue
                self.ended = True
                return
        except Exception as exc:  # noqa: BLE001 - reported by until() as the check's failure
            self._error = exc
        finally:
            self._changed.set()

    async def until(self, ready: Callable[[list[int | Published]], bool], what: str) -> None:
        """Wait until ``ready(hints)`` holds.

        Raises:
            ConformanceError: it did not hold within the timeout, the
                notifications failed, or they ended first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while not ready(self.hints):
            if self._error is not None:
                raise ConformanceError(f"notifications() failed while waiting for {what}: {self._error!r}")
            if self.ended:
                raise ConformanceError(f"notifications() ended while waiting for {what}; hints: {self.hints!r}")
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ConformanceError(f"no {what} within {self._timeout:g} s; hints heard: {self.hints!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop(self) -> None:
        """Stop listening."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
