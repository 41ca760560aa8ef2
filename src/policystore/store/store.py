"""PolicyStore: the async API over one back end, with a local snapshot every read answers from.

Reads (``get``, ``snapshot``, ``explain``) never do I/O: they look values up in
a table built once per version. Every write is validated, checked against the
caller's role, committed with compare-and-set on the version, recorded in
history and announced as events. Changes made elsewhere reach the snapshot
through the back end's notifications, with a periodic version check as a
safety net; when the store cannot be reached, reads answer from the
last-known-good copy on disk, then the environment, then the defaults.

The store is composed of parts, each with its own state: the local reads and
the read state they answer from (:mod:`~policystore.store.reads`), the audited
writes (:mod:`~policystore.store.writes`) over the compare-and-set write loop
(:mod:`~policystore.store.writer`), the proposals that wait for approvals
(:mod:`~policystore.store.proposals`), the follower that keeps the read state
current (:mod:`~policystore.store.follower`, with the change-notice fast path of
:mod:`~policystore.store.notices`), the changes of the read state
(:mod:`~policystore.store.local_copy`), the outbox of events
(:mod:`~policystore.store.outbox`), the keeper of the last-known-good copy
(:mod:`~policystore.store.keeper`), the timer that ends expiring changes
(:mod:`~policystore.store.expiry`) and, for a store that follows changes, its
reports as a member of the fleet (:mod:`~policystore.store.fleet`). This module
opens, assembles and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Self, SupportsFloat

from policystore.backends.base import Backend, ReportRequests
from policystore.errors import StoreUnavailableError
from policystore.model.events import PolicyChanged
from policystore.model.modes import RiskModeConfig
from policystore.model.numbers import finite_float, short_repr
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.store.bus import EventBus, EventTypes, ExternalEventBus, Subscriber
from policystore.store.connector import Connector
from policystore.store.fleet import FleetReads
from policystore.store.fleet_reports import FleetReporter, check_name
from policystore.store.follower import Follower
from policystore.store.identity import default_actor
from policystore.store.keeper import CopyKeeper
from policystore.store.lkg import LastKnownGood
from policystore.store.local_copy import LocalCopy
from policystore.store.opening import NO_POLICY_REASON, backend_for
from policystore.store.outbox import Outbox
from policystore.store.proposals import Proposals
from policystore.store.reads import MISSING, Reads
from policystore.store.sources import StaleTradingRule
from policystore.store.urls import default_lkg_path
from policystore.store.writer import Writer
from policystore.store.writes import Writes

__all__ = ["MISSING", "NO_POLICY_REASON", "PolicyStore", "StaleTradingRule"]

log = logging.getLogger("policystore")


_AUTO: Final = object()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PolicyStore(Reads, Writes, Proposals, FleetReads):
    """The policy store: async reads and writes over one back end.

    Open one with :meth:`open` (``await PolicyStore.open("sqlite:///policy.db")``),
    or construct it and ``await store.initialize()``. The first argument may be a
    back end, a URL, or a ``redis.asyncio.Redis`` client; code written for the
    older store passes the client as ``redis_client=`` and closes with
    :meth:`shutdown`, and both work.

    Args:
        backend: a :class:`Backend`, a store URL, a Redis client, or None for
            ``$POLICYSTORE_URL`` (default ``sqlite:///./policystore.db``).
        event_bus: a system bus with ``publish(topic, payload)``; it receives
            every event (each kind) of this process's own writes.
        redis_client: a ``redis.asyncio.Redis`` client, instead of ``backend``.
        create: seed a store that holds no policy yet with the built-in one
            (default). With False, such a store is an error at
            :meth:`initialize` and nothing is written: no file, no folder, no
            last-known-good copy.
        lkg_path: the last-known-good file; None for none; by default derived
            from the URL.
        refresh_interval: seconds between safety-net version checks.
        actor: who this store writes as, and with which role; by default the
            local user as an admin (access to the store's URL is admin access).
        environ: the environment to read fallback values from (``os.environ``).
        watch: follow changes made by other processes (off for one-shot tools);
            a store that follows them is a member of its store's fleet (see :meth:`fleet`).
        stale_trading: the rule ``can_open_new_trades`` follows while stale.
        clock: returns the current UTC time. Expiring changes end by it: this
            process's own clock is the one it trusts (see the README on clocks).
        name: this process's name in the fleet (``"executor-1"``); by default
            the program's name.

    Raises:
        ClientTypeError: the Redis client is a synchronous ``redis.Redis``.
        PolicyValidationError: both ``backend`` and ``redis_client`` were given,
            the URL names no known store, or ``name`` is not 1 to 100 printable characters.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        event_bus: ExternalEventBus | None = None,
        *,
        redis_client: Any = None,
        create: bool = True,
        lkg_path: str | os.PathLike[str] | object | None = _AUTO,
        refresh_interval: float = 60.0,
        actor: Actor | None = None,
        environ: Mapping[str, str] | None = None,
        watch: bool = True,
        stale_trading: StaleTradingRule | str = StaleTradingRule.LAST_KNOWN_GOOD,
        clock: Callable[[], datetime] = _utc_now,
        name: str | None = None,
    ) -> None:
        member_name = check_name(name)
        self._backend: Backend = backend_for(backend, redis_client)
        self._create = create
        if lkg_path is _AUTO:
            lkg_path = default_lkg_path(self._backend.url)
        lkg = LastKnownGood(lkg_path) if lkg_path is not None else None  # type: ignore[arg-type]
        actor = actor or default_actor()
        rule = StaleTradingRule(stale_trading)
        self._initialized = False
        self._reload_asked = False
        self._closed = False
        # The parts, each with its own state; they share the lock that orders installs.
        lock = asyncio.Lock()
        self._bus = EventBus()
        self._outbox = Outbox(self._bus, closed=self._is_closed)
        self._keeper = CopyKeeper(lkg, closed=self._is_closed)
        reporter = (
            FleetReporter(self._backend.records, self._read_state, name=member_name, url=self._backend.url)
            if watch
            else None
        )
        self._copy = LocalCopy(
            self._read_state,
            self._set_state,
            self._set_error,
            keeper=self._keeper,
            outbox=self._outbox,
            rule=rule,
            clock=clock,
            applied=reporter.applied if reporter is not None else lambda: None,
        )
        Reads.__init__(self, self._copy.fallback(os.environ if environ is None else environ), clock=clock)
        self._connector = Connector(self._backend, create=create)
        writer = Writer(
            self._backend,
            self._copy,
            lock=lock,
            outbox=self._outbox,
            keeper=self._keeper,
            clock=clock,
            actor=actor,
            external=event_bus,
            refresh=self.refresh,
            connect=self._connector.ensure,
        )
        Writes.__init__(self, writer)
        Proposals.__init__(self, writer)
        FleetReads.__init__(self, self._backend, reporter)
        self._follower = Follower(
            self._backend,
            self._copy,
            writer=writer,
            lock=lock,
            outbox=self._outbox,
            keeper=self._keeper,
            clock=clock,
            watch=watch,
            refresh_interval=refresh_interval,
            closed=self._is_closed,
            connect=self._connector.ensure,
        )
        if watch:
            # A store that follows changes records the return of an expiring change it sees end.
            self._ends.recorder = writer.record_returns

    def _is_closed(self) -> bool:
        return self._closed

    # -- opening and closing -------------------------------------------------

    @classmethod
    async def open(cls, url: str | None = None, **options: Any) -> Self:
        """Open the store at ``url`` and load the current policy.

        A store that cannot be reached still opens: reads answer from the
        fallback chain (see :meth:`explain`) and the store keeps trying.

        Args:
            url: ``memory://``, ``sqlite:///PATH`` or ``redis://HOST:PORT/DB``.
            **options: the keyword arguments of :class:`PolicyStore`.

        Returns:
            The initialised store.
        """
        store = cls(url, **options)
        try:
            await store.initialize()
        except BaseException:
            await store.close()  # release the connection: the caller never gets the store
            raise
        return store

    async def initialize(self) -> None:
        """Connect, create the first version in a new store, load it and start following changes.

        Raises:
            RuntimeError: the store was already initialised or has been closed.
            StoreUnavailableError: with ``create=False``, the store holds no
                policy (for SQLite: there is no file); nothing was written.
        """
        if self._initialized or self._closed:
            raise RuntimeError("this PolicyStore was already initialised; open a new one instead")
        self._initialized = True
        missing = False
        try:
            await self._connector.connect()
            if await self._backend.current_version() == 0:
                missing = not self._create
                if self._create:
                    await self._writer.seed()
            if not missing:
                await self.refresh()
        except StoreUnavailableError as exc:
            self._copy.mark_unreachable(exc)  # unreachable: open stale and keep trying
        if missing:
            # Reachable and empty: no outage to ride out, and nothing to follow.
            raise StoreUnavailableError(self._backend.url, NO_POLICY_REASON)
        # Time the end of any expiring change now that the store runs on a loop (a copy read at
        # construction, before any loop, holds them too).
        self._ends.watch(self._state)
        self._follower.start()
        if self._reporter is not None:
            if isinstance(self._backend, ReportRequests):  # a waiter's request is answered at once
                self._backend.on_report_request(self._reporter.requested)
            # Listed before the caller gets the store, unless the store is out of reach.
            await self._reporter.start(report_now=not self.stale)

    async def close(self) -> None:
        """Stop following changes, leave the fleet, end ``watch()`` iterators and release the back end."""
        self._closed = True
        self._ends.stop()
        if self._reporter is not None:
            # Before the follower stops: a report in flight ends on the connection it was sent on
            # (on PostgreSQL the listening one, which stopping the follower closes).
            if isinstance(self._backend, ReportRequests):
                self._backend.on_report_request(None)
            await self._reporter.leave()
        await self._follower.stop()
        await self._outbox.deliver_all()
        self._bus.close()
        await self._keeper.flush()
        await self._backend.close()

    async def shutdown(self) -> None:
        """Close the store: the older store's name for :meth:`close`."""
        await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The store's URL, without any password."""
        return self._backend.url

    @property
    def backend(self) -> Backend:
        """The back end this store writes to."""
        return self._backend

    @property
    def actor(self) -> Actor:
        """Who this store writes as by default."""
        return self._writer.actor

    async def refresh(self) -> Policy:
        """Check the store now and load its newest version if it differs from the one held.

        Returns:
            The policy this process now holds.

        Raises:
            StoreUnavailableError: the store cannot be reached (reads go stale).
        """
        return await self._follower.refresh(deep=True)

    # -- async reads: local, no I/O unless the older store's cache was dropped --

    async def get_policy(self) -> Policy:
        """Return the current policy (the local snapshot)."""
        await self._reload_if_asked()
        return self._now().policy

    async def get_active_risk_config(self) -> RiskModeConfig:
        """Return the active mode's config: the same object until the policy changes."""
        await self._reload_if_asked()
        return self._now().policy.risk

    async def get_value(self, path: str, default: Any = MISSING) -> Any:
        """Async form of :meth:`get`: the value at ``path`` from the local snapshot.

        Raises:
            UnknownPathError: no such path and no default was given.
        """
        await self._reload_if_asked()
        self._now()  # an expiring change past its end is returned before the lookup
        return self.get(path, default)

    # Code written for the older store dropped its cache by hand (``store._cache = None``)
    # to force the next read from the store. The snapshot follows changes by itself; the
    # assignment is accepted and makes the next async read check the store first.
    @property
    def _cache(self) -> Policy:
        return self._state.policy

    @_cache.setter
    def _cache(self, _value: object) -> None:
        self._reload_asked = True

    @property
    def _cache_timestamp(self) -> datetime:
        return self._state.policy.updated_at

    @_cache_timestamp.setter
    def _cache_timestamp(self, _value: object) -> None:
        self._reload_asked = True

    async def _reload_if_asked(self) -> None:
        if self._reload_asked and self._initialized and not self._closed:
            self._reload_asked = False
            with contextlib.suppress(StoreUnavailableError):  # stale: answered from the fallback chain
                await self.refresh()

    # -- events --------------------------------------------------------------

    def subscribe(self, callback: Subscriber, *, types: EventTypes | None = None) -> Callable[[], None]:
        """Call ``callback`` with change events; return a function that unsubscribes.

        Args:
            callback: a function or coroutine function taking a :class:`PolicyChanged`.
            types: the event kinds to deliver (:class:`EventType` or their values).
                None: each change once, as its ``policy.updated`` event, and
                ``policy.rejected`` notices.

        Raises:
            PolicyValidationError: ``types`` names something that is not an event kind.
        """
        return self._bus.subscribe(callback, types=types)

    def watch(self, *, types: EventTypes | None = None) -> AsyncIterator[PolicyChanged]:
        """Iterate over change events from now on, in version order; ``types`` as for :meth:`subscribe`.

        Raises:
            PolicyValidationError: ``types`` names something that is not an event kind.
        """
        return self._bus.watch(types=types)

    async def report_daily_loss(
        self, loss_fraction: SupportsFloat, *, reporter: str, actor: Actor | None = None
    ) -> bool:
        """The drawdown breaker: turn the kill switch on once the day's loss reaches the limit.

        Args:
            loss_fraction: the day's loss as a fraction of the day's starting equity:
                any real number or a :class:`~decimal.Decimal`. Anything that cannot
                be read as a finite float (NaN, an infinity, ``10**400``, None, a
                string) counts as reaching the limit.
            reporter: who measured the loss; the author of the kill switch write.
            actor: the role to write with (an operator is enough).

        Returns:
            True if new trades may still be opened.

        Raises:
            StoreUnavailableError: the breaker tripped but the kill switch could not
                be written; nothing may be opened, and the caller must not trade.
        """
        held = self._now().policy
        limit = held.risk.max_daily_drawdown
        # A loss that cannot be read as a finite number cannot be compared with the limit:
        # treat it as a breach rather than let it pass every check (or raise before tripping).
        loss = finite_float(loss_fraction)
        if (loss is None or loss >= limit) and not held.emergency.active:
            mode = held.active_mode
            shown = short_repr(loss_fraction)
            figure = f"{loss:.2%}" if loss is not None else f"{shown} (not a number the limit can be compared with)"
            reason = (
                f"drawdown breaker: the day's loss of {figure} reached max_daily_drawdown {limit:.2%} of mode {mode}"
            )
            await self.set_emergency_mode(
                True, reason=reason, updated_by=reporter, actor=actor or Actor(reporter, Role.OPERATOR)
            )
        return await self.can_open_new_trades()
