"""``GET /healthz`` (liveness with store reachability) and ``GET /metrics`` (Prometheus).

``/healthz`` answers 200 whenever the server runs, even when the store cannot be
reached: the server still serves reads from its last-known-good copy, so it is
alive. The body says whether the store is reachable and whether answers are
stale (``status`` is ``"ok"`` or ``"degraded"``), for monitors to alert on, and
how many processes follow the store (its fleet), how many of them are lost and
how many are behind the current version. Both read the fleet's records within
a second; the fleet's figures are absent (null) when they cannot be read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from policystore.errors import PolicyStoreError, StoreUnavailableError, VersionConflictError
from policystore.model.controls import firm_state, instrument_rules
from policystore.model.events import EventType, PolicyChanged
from policystore.model.fleet import FleetMember, FleetStatus
from policystore.model.policy import Policy
from policystore.model.trading import DEFAULT_INSTRUMENT
from policystore.server.errors import refusal_reason
from policystore.store.store import PolicyStore

__all__ = ["FleetCount", "HealthResponse", "ServerMetrics", "count_fleet", "count_members", "router", "store_reachable"]

#: How long a health check waits for the store before calling it unreachable.
PROBE_TIMEOUT: Final = 1.0
#: How long a health check or a scrape waits for the fleet's records.
FLEET_TIMEOUT: Final = 1.0


@dataclass(frozen=True, slots=True)
class FleetCount:
    """How many members the fleet has, live and lost, and how many live ones are behind the current version."""

    live: int
    lost: int
    behind: int


def count_members(members: Sequence[FleetMember], version: int) -> FleetCount:
    """Count ``members`` by status, and the live ones that have not applied ``version``.

    Args:
        members: the fleet (see :meth:`PolicyStore.fleet`).
        version: the store's current version.
    """
    live = [m for m in members if m.status is FleetStatus.LIVE]
    return FleetCount(len(live), len(members) - len(live), sum(m.version < version for m in live))


async def count_fleet(store: PolicyStore) -> FleetCount | None:
    """Count the fleet within :data:`FLEET_TIMEOUT` seconds; None when its records cannot be read in time.

    Args:
        store: the server's store.
    """
    try:
        async with asyncio.timeout(FLEET_TIMEOUT):
            members = await store.fleet()
            version = await store.backend.current_version()
    except (StoreUnavailableError, TimeoutError):
        return None
    return count_members(members, version)


router = APIRouter(tags=["health"])


class ServerMetrics:
    """The server's Prometheus metrics, in a registry of its own (one per app).

    Args:
        registry: where to register; a new one by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.reads = Counter("policystore_http_reads", "Read requests answered.", ["route"], registry=self.registry)
        #: route -> its counter among :attr:`reads`, looked up at its first read rather than at each.
        self._reads_by_route: dict[str, Counter] = {}
        self.writes = Counter("policystore_http_writes", "Writes committed.", ["operation"], registry=self.registry)
        self.conflicts = Counter(
            "policystore_http_conflicts", "Writes refused on a version conflict.", registry=self.registry
        )
        self.refusals = Counter(
            "policystore_http_refusals", "Requests refused, by reason.", ["reason"], registry=self.registry
        )
        self.version = Gauge("policystore_policy_version", "Policy version this server holds.", registry=self.registry)
        self.reachable = Gauge(
            "policystore_store_reachable", "1 when the store answered the last probe.", registry=self.registry
        )
        self.stale = Gauge(
            "policystore_stale", "1 while answers come from a fallback, not the live store.", registry=self.registry
        )
        self.stream_clients = Gauge(
            "policystore_stream_clients", "Open change-stream connections.", registry=self.registry
        )
        self.dropped_clients = Counter(
            "policystore_stream_dropped_clients", "Stream clients closed for falling behind.", registry=self.registry
        )
        self.trading_state = Gauge(
            "policystore_trading_state",
            "Trading state by scope: 0 active, 1 reducing, 2 halted. scope=firm: name=state as set "
            "(trading.state) and name=effective_state with the kill switch folded in; scope=strategy: "
            "name=the strategy, its own state; scope=instrument: name=the symbol or default, its state "
            "(its own, else the default's).",
            ["scope", "name"],
            registry=self.registry,
        )
        self.propagation = Histogram(
            "policystore_propagation_lag_seconds",
            "Seconds from a change's commit to this server installing it.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.fleet_members = Gauge(
            "policystore_fleet_members",
            "Processes following the store, by status (live, or lost: not heard for 5 s).",
            ["status"],
            registry=self.registry,
        )
        self.fleet_behind = Gauge(
            "policystore_fleet_behind",
            "Live members of the fleet that have not applied the store's current version.",
            registry=self.registry,
        )
        self.fleet_waits = Counter(
            "policystore_fleet_waits",
            "Writes that waited for the fleet, by outcome (complete, or incomplete: answered 202).",
            ["outcome"],
            registry=self.registry,
        )

    def set_fleet(self, count: FleetCount) -> None:
        """Record the fleet's size and how many of its live members are behind.

        Args:
            count: the fleet counted (see :func:`count_fleet`).
        """
        self.fleet_members.labels(FleetStatus.LIVE.value).set(count.live)
        self.fleet_members.labels(FleetStatus.LOST.value).set(count.lost)
        self.fleet_behind.set(count.behind)

    def count_read(self, route: str) -> None:
        """Count a read answered by ``route`` in :attr:`reads`.

        Args:
            route: the route's label, such as ``value`` or ``history``.
        """
        counter = self._reads_by_route.get(route)
        if counter is None:
            counter = self._reads_by_route[route] = self.reads.labels(route)
        counter.inc()

    def count_refusal(self, error: PolicyStoreError) -> None:
        """Count a request refused with ``error``, under its class's metric label.

        A refusal labelled as a version conflict is counted among the conflicts too.

        Args:
            error: the error the request was answered with.
        """
        self.refusals.labels(refusal_reason(error)).inc()
        if refusal_reason(error) == VersionConflictError.metric_label:
            self.conflicts.inc()

    def observe_event(self, event: PolicyChanged, now: datetime | None = None) -> None:
        """Record the propagation lag of ``event`` (once per version: its ``policy.updated``).

        Args:
            event: the change event this server just installed.
            now: when it was installed (default: now).
        """
        if event.type is EventType.UPDATED:
            lag = ((now or datetime.now(UTC)) - event.at).total_seconds()
            self.propagation.observe(max(lag, 0.0))

    def set_trading_states(self, policy: Policy) -> None:
        """Set :attr:`trading_state` from ``policy``: only its scopes are listed (a removed one goes).

        Args:
            policy: the policy this server holds.
        """
        self.trading_state.clear()
        self.trading_state.labels("firm", "state").set(policy.trading.state.rank)
        self.trading_state.labels("firm", "effective_state").set(firm_state(policy).state.rank)
        for name, settings in policy.strategies.items():
            self.trading_state.labels("strategy", name).set(settings.state.rank)
        for key in policy.instruments.keys() | {DEFAULT_INSTRUMENT}:
            self.trading_state.labels("instrument", key).set(instrument_rules(policy, key).state.state.rank)

    def render(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        data: bytes = generate_latest(self.registry)
        return data


class HealthResponse(BaseModel):
    """What ``/healthz`` answers."""

    status: str = Field(description="'ok', or 'degraded' when the store is unreachable or answers are stale.")
    store_reachable: bool = Field(description="Whether the store answered a probe just now.")
    version: int = Field(description="Policy version this server answers with.")
    stale: bool = Field(description="True when answers do not come from the live store.")
    source: str = Field(description="Layer answering reads: store, last_known_good, environment or default.")
    checked_at: datetime = Field(description="When the probe ran (UTC).")
    probe_ms: float = Field(description="How long the probe took, in milliseconds.")
    fleet_members: int | None = Field(description="Live processes following the store; null if unread.")
    fleet_lost: int | None = Field(description="Members not heard for 5 s; null if the fleet could not be read.")
    fleet_behind: int | None = Field(
        description="Live members that have not applied the current version; null if the fleet could not be read."
    )


async def store_reachable(store: PolicyStore) -> bool:
    """Probe the store: can its current version be read within :data:`PROBE_TIMEOUT`?

    A reachable store that this server still reads as stale is asked to
    refresh, so reads come back to the live store as soon as it returns.

    Args:
        store: the store to probe.

    Returns:
        True if the store answered in time.
    """
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await store.backend.current_version()
            if store.stale:
                await store.refresh()
    except (StoreUnavailableError, TimeoutError):
        return False
    return True


@router.get("/healthz", summary="Liveness and store reachability")
async def healthz(request: Request) -> HealthResponse:
    """Report whether the store is reachable, the version and staleness of answers, and the fleet.

    Always 200 while the server runs; ``status`` says ``degraded`` when the
    store is unreachable or answers are stale. ``fleet_members``, ``fleet_lost``
    and ``fleet_behind`` count the processes that follow the store, those not
    heard from for 5 s, and the live ones without the current version.
    """
    store: PolicyStore = request.app.state.store
    started = time.perf_counter()
    reachable = await store_reachable(store)
    elapsed = (time.perf_counter() - started) * 1000
    fleet = await count_fleet(store) if reachable else None
    if fleet is not None:
        metrics: ServerMetrics = request.app.state.metrics
        metrics.set_fleet(fleet)
    healthy = reachable and not store.stale
    return HealthResponse(
        status="ok" if healthy else "degraded",
        store_reachable=reachable,
        version=store.snapshot().version,
        stale=store.stale,
        source=store.source.value,
        checked_at=datetime.now(UTC),
        probe_ms=round(elapsed, 3),
        fleet_members=None if fleet is None else fleet.live,
        fleet_lost=None if fleet is None else fleet.lost,
        fleet_behind=None if fleet is None else fleet.behind,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            "description": "Metrics in the Prometheus text format.",
        }
    },
)
async def metrics(request: Request) -> Response:
    """Return the server's metrics in the Prometheus text format."""
    store: PolicyStore = request.app.state.store
    collected: ServerMetrics = request.app.state.metrics
    reachable = await store_reachable(store)
    collected.reachable.set(1 if reachable else 0)
    fleet = await count_fleet(store) if reachable else None
    if fleet is not None:
        collected.set_fleet(fleet)
    snapshot = store.snapshot()
    collected.version.set(snapshot.version)
    collected.set_trading_states(snapshot)
    collected.stale.set(1 if store.stale else 0)
    return Response(collected.render(), media_type=CONTENT_TYPE_LATEST)
