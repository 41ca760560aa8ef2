"""PolicyStore: the async API over one back end, with a local snapshot every read answers from.

Reads (``get``, ``snapshot``, ``explain``) never do I/O: they look values up in
a table built once per version. Every write is validated, checked against the
caller's role, committed with compare-and-set on the version, recorded in
history and announced as events. Changes made elsewhere reach the snapshot
through the back end's notifications, with a periodic version check as a
safety net; when the store cannot be reached, reads answer from the
last-known-good copy on disk, then the environment, then the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Self, SupportsFloat

from policystore.backends.base import Backend
from policystore.errors import (
    PolicyStoreError,
    StoreUnavailableError,
    UnknownPathError,
)
from policystore.model.events import PolicyChanged
from policystore.model.modes import RiskModeConfig
from policystore.model.numbers import finite_float, short_repr
from policystore.model.paths import suggest
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.store.bus import EventBus, EventTypes, ExternalEventBus, Subscriber
from policystore.store.lkg import LastKnownGood
from policystore.store.opening import NO_POLICY_REASON, backend_for
from policystore.store.sources import Explanation, Source, StaleTradingRule, TradingGate
from policystore.store.urls import default_lkg_path
from policystore.store.writes import Writes

__all__ = ["MISSING", "NO_POLICY_REASON", "PolicyStore", "StaleTradingRule"]

log = logging.getLogger("policystore")


class _Missing(Enum):
    """Tells "no default passed" apart from ``default=None``."""

    MISSING = "MISSING"


MISSING: Final = _Missing.MISSING
_AUTO: Final = object()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        user = "unknown"
    return Actor(f"local:{user}", Role.ADMIN)


class PolicyStore(Writes):
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
        watch: follow changes made by other processes (off for one-shot tools).
        stale_trading: the rule ``can_open_new_trades`` follows while stale.
        clock: returns the current UTC time.

    Raises:
        ClientTypeError: the Redis client is a synchronous ``redis.Redis``.
        PolicyValidationError: both ``backend`` and ``redis_client`` were given,
            or the URL names no known store.
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
    ) -> None:
        self._backend: Backend = backend_for(backend, redis_client)
        self._create = create
        if lkg_path is _AUTO:
            lkg_path = default_lkg_path(self._backend.url)
        self._lkg = LastKnownGood(lkg_path) if lkg_path is not None else None  # type: ignore[arg-type]
        self._external = event_bus
        self._refresh_interval = refresh_interval
        self._actor = actor or _default_actor()
        self._environ = os.environ if environ is None else environ
        self._watch = watch
        self._stale_rule = StaleTradingRule(stale_trading)
        self._clock = clock
        self._bus = EventBus()
        self._outbox = deque()
        self._lock = asyncio.Lock()
        self._initialized = False
        self._reload_asked = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.last_error: PolicyStoreError | None = None
        self._set_state(self._fallback_state())

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
            # A back end of the user's own need not know ``create``: it is passed only when False.
            await (self._backend.connect() if self._create else self._backend.connect(create=False))
            if await self._backend.current_version() == 0:
                missing = not self._create
                if self._create:
                    await self._seed()
            if not missing:
                await self.refresh()
        except StoreUnavailableError as exc:
            self._mark_unreachable(exc)  # unreachable: open stale and keep trying
        if missing:
            # Reachable and empty: no outage to ride out, and nothing to follow.
            raise StoreUnavailableError(self._backend.url, NO_POLICY_REASON)
        if self._watch:
            self._tasks.append(asyncio.create_task(self._follow_notifications(), name="policystore-notify"))
            self._tasks.append(asyncio.create_task(self._safety_net(), name="policystore-refresh"))

    async def close(self) -> None:
        """Stop following changes, end ``watch()`` iterators and release the back end."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self._deliver_all()
        self._bus.close()
        await self._flush_last_known_good()
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
        return self._actor

    # -- reads: local, no I/O -----------------------------------------------

    def get(self, path: str, default: Any = MISSING) -> Any:
        """Return the value at ``path`` from this process's snapshot; never does I/O.

        Raises:
            UnknownPathError: no such path and no default was given.
        """
        try:
            return self._values[path]
        except KeyError:
            if default is MISSING:
                raise UnknownPathError(path, suggest(path, list(self._values))) from None
            return default

    def snapshot(self) -> Policy:
        """Return the whole policy as this process sees it now (immutable)."""
        return self._state.policy

    def explain(self, path: str) -> Explanation:
        """Tell which source answers ``path``, with the value, version and staleness.

        Raises:
            UnknownPathError: no such path.
        """
        state = self._state
        if path not in state.values:
            raise UnknownPathError(path, suggest(path, list(state.values)))
        return state.explain(path)

    def paths(self) -> list[str]:
        """Return every readable path, sorted."""
        return sorted(self._values)

    @property
    def stale(self) -> bool:
        """True while answers do not come from the live store."""
        return self._state.stale

    @property
    def source(self) -> Source:
        """The layer of the fallback chain that answers now."""
        return self._state.source

    async def get_policy(self) -> Policy:
        """Return the current policy (the local snapshot)."""
        await self._reload_if_asked()
        return self._state.policy

    async def get_active_risk_config(self) -> RiskModeConfig:
        """Return the active mode's config: the same object until the policy changes."""
        await self._reload_if_asked()
        return self._state.policy.risk

    async def get_value(self, path: str, default: Any = MISSING) -> Any:
        """Async form of :meth:`get`: the value at ``path`` from the local snapshot.

        Raises:
            UnknownPathError: no such path and no default was given.
        """
        await self._reload_if_asked()
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

    def gate(self) -> TradingGate:
        """Return the policy this process holds and whether it allows new risk, from one read state.

        The one rule for new risk; ``can_open_new_trades()`` is its verdict. A
        caller that decides by the policy (an executor) takes both from the same
        gate, so they cannot disagree: no new trade while the kill switch is on;
        while the store holds a newer version that was refused as invalid (its
        kill switch cannot be known); after the store went back to an older
        version (a restore, a replaced file, or a failover that lost writes),
        until the next write confirms the policy; and while stale, as the
        store's :class:`StaleTradingRule` says. ``refusal`` names which one.
        Never does I/O.
        """
        return self._state.gate

    async def can_open_new_trades(self) -> bool:
        """Return whether a new trade may be opened now: ``gate().allowed`` (see :meth:`gate`)."""
        return self._state.gate.allowed

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
        limit = self._state.policy.risk.max_daily_drawdown
        # A loss that cannot be read as a finite number cannot be compared with the limit:
        # treat it as a breach rather than let it pass every check (or raise before tripping).
        loss = finite_float(loss_fraction)
        if (loss is None or loss >= limit) and not self._state.policy.emergency.active:
            mode = self._state.policy.active_mode
            shown = short_repr(loss_fraction)
            figure = f"{loss:.2%}" if loss is not None else f"{shown} (not a number the limit can be compared with)"
            reason = (
                f"drawdown breaker: the day's loss of {figure} reached max_daily_drawdown {limit:.2%} of mode {mode}"
            )
            await self.set_emergency_mode(
                True, reason=reason, updated_by=reporter, actor=actor or Actor(reporter, Role.OPERATOR)
            )
        return await self.can_open_new_trades()
