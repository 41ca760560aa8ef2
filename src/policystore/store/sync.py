"""SyncPolicyStore: the same API without ``await``, for code that has no event loop.

A thin facade: it runs one :class:`PolicyStore` on a private event loop in a
daemon thread. Reads (``get``, ``snapshot``, ``explain``) go straight to the
store's local snapshot and never touch that loop. The end of an expiring change
replaces that snapshot from the loop's thread at the moment it comes (the
loop is idle, so its timer is on time), and ``snapshot``, ``gate`` and
``explain`` check the end themselves too. The writes and the audit trail are
in :mod:`policystore.store.sync_writes`, the proposals in
:mod:`policystore.store.sync_proposals`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Self, SupportsFloat, TypeVar

from policystore.backends.base import Backend
from policystore.errors import PolicyStoreError
from policystore.model.events import PolicyChanged
from policystore.model.fleet import FleetAck, FleetMember
from policystore.model.modes import RiskModeConfig
from policystore.model.policy import Policy
from policystore.model.roles import Actor
from policystore.store.bus import EventTypes, Subscriber
from policystore.store.sources import Explanation, Source, TradingGate
from policystore.store.store import MISSING, PolicyStore
from policystore.store.sync_proposals import SyncProposals
from policystore.store.sync_writes import SyncWrites

__all__ = ["SyncPolicyStore"]

T = TypeVar("T")


class SyncPolicyStore(SyncWrites, SyncProposals):
    """A blocking facade over :class:`PolicyStore`; takes the same arguments."""

    def __init__(self, *args: Any, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="policystore-sync", daemon=True)
        self._thread.start()
        self._watchers: set[queue.Queue[PolicyChanged | None]] = set()
        try:
            self._store = self._call(self._make(args, options))
        except BaseException:
            self._stop_loop()  # a refused argument must not leave the thread running
            raise

    @staticmethod
    async def _make(args: tuple[Any, ...], options: dict[str, Any]) -> PolicyStore:
        return PolicyStore(*args, **options)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            # Waiting on the loop from the loop's own thread would never return.
            coro.close()
            msg = (
                "a blocking SyncPolicyStore method was called from a subscriber, which runs on the "
                "store's own thread; use the async store (.store) there, or hand the work to another thread"
            )
            raise RuntimeError(msg)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> Self:
        """Open the store at ``url``; see :meth:`PolicyStore.open`."""
        store = cls(url, **options)
        try:
            store.initialize()
        except BaseException:
            store.close()  # stop the thread: the caller never gets the store
            raise
        return store

    def initialize(self) -> None:
        """See :meth:`PolicyStore.initialize`."""
        self._call(self._store.initialize())

    def close(self) -> None:
        """Close the store and stop its thread."""
        if self._loop.is_closed():
            return
        self._call(self._store.close())
        for events in list(self._watchers):
            events.put(None)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def shutdown(self) -> None:
        """See :meth:`PolicyStore.shutdown`: the older store's name for :meth:`close`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def store(self) -> PolicyStore:
        """The async store behind this facade."""
        return self._store

    @property
    def backend(self) -> Backend:
        """See :attr:`PolicyStore.backend`."""
        return self._store.backend

    @property
    def actor(self) -> Actor:
        """See :attr:`PolicyStore.actor`."""
        return self._store.actor

    @property
    def url(self) -> str:
        """See :attr:`PolicyStore.url`."""
        return self._store.url

    @property
    def stale(self) -> bool:
        """See :attr:`PolicyStore.stale`."""
        return self._store.stale

    @property
    def source(self) -> Source:
        """See :attr:`PolicyStore.source`."""
        return self._store.source

    @property
    def member_id(self) -> str | None:
        """See :attr:`PolicyStore.member_id`."""
        return self._store.member_id

    @property
    def fleet_error(self) -> PolicyStoreError | None:
        """See :attr:`PolicyStore.fleet_error`."""
        return self._store.fleet_error

    # Local reads: no loop, no I/O.
    def get(self, path: str, default: Any = MISSING) -> Any:
        """See :meth:`PolicyStore.get`."""
        return self._store.get(path, default)

    def snapshot(self) -> Policy:
        """See :meth:`PolicyStore.snapshot`."""
        return self._store.snapshot()

    def explain(self, path: str) -> Explanation:
        """See :meth:`PolicyStore.explain`."""
        return self._store.explain(path)

    def paths(self) -> list[str]:
        """See :meth:`PolicyStore.paths`."""
        return self._store.paths()

    def gate(self) -> TradingGate:
        """See :meth:`PolicyStore.gate`."""
        return self._store.gate()

    def get_policy(self) -> Policy:
        """See :meth:`PolicyStore.get_policy`."""
        return self._call(self._store.get_policy())

    def get_active_risk_config(self) -> RiskModeConfig:
        """See :meth:`PolicyStore.get_active_risk_config`."""
        return self._call(self._store.get_active_risk_config())

    def get_value(self, path: str, default: Any = MISSING) -> Any:
        """See :meth:`PolicyStore.get_value`."""
        return self._call(self._store.get_value(path, default))

    def can_open_new_trades(self) -> bool:
        """See :meth:`PolicyStore.can_open_new_trades`."""
        return self._call(self._store.can_open_new_trades())

    def subscribe(self, callback: Subscriber, *, types: EventTypes | None = None) -> Callable[[], None]:
        """See :meth:`PolicyStore.subscribe`; ``callback`` runs on the facade's thread."""
        return self._store.subscribe(callback, types=types)

    def watch(self, *, types: EventTypes | None = None) -> Iterator[PolicyChanged]:
        """Iterate (blocking) over change events until :meth:`close`; see :meth:`PolicyStore.watch`."""
        # Subscribe now, not at the first next(): no event between the two is missed.
        events: queue.Queue[PolicyChanged | None] = queue.Queue()
        unsubscribe = self._store.subscribe(events.put, types=types)
        self._watchers.add(events)

        def follow() -> Iterator[PolicyChanged]:
            try:
                while (event := events.get()) is not None:
                    yield event
            finally:
                unsubscribe()
                self._watchers.discard(events)

        return follow()

    def report_daily_loss(self, loss_fraction: SupportsFloat, *, reporter: str, actor: Actor | None = None) -> bool:
        """See :meth:`PolicyStore.report_daily_loss`."""
        return self._call(self._store.report_daily_loss(loss_fraction, reporter=reporter, actor=actor))

    def fleet(self) -> list[FleetMember]:
        """See :meth:`PolicyStore.fleet`."""
        return self._call(self._store.fleet())

    def wait_for_fleet(self, version: int, *, timeout: float = 10.0) -> FleetAck:
        """See :meth:`PolicyStore.wait_for_fleet`."""
        return self._call(self._store.wait_for_fleet(version, timeout=timeout))

    def refresh(self) -> Policy:
        """See :meth:`PolicyStore.refresh`."""
        return self._call(self._store.refresh())
