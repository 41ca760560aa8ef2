"""``GET /healthz`` (liveness with store reachability) and ``GET /metrics`` (Prometheus).

``/healthz`` answers 200 whenever the server runs, even when the store cannot be
reached: the server still serves reads from its last-known-good copy, so it is
alive. The body says whether the store is reachable and whether answers are
stale (``status`` is ``"ok"`` or ``"degraded"``), for monitors to alert on.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from policystore.errors import PolicyStoreError, StoreUnavailableError, VersionConflictError
from policystore.model.controls import firm_state, instrument_rules
from policystore.model.events import EventType, PolicyChanged
from policystore.model.policy import Policy
from policystore.model.trading import DEFAULT_INSTRUMENT
from policystore.server.errors import refusal_reason
from policystore.store.store import PolicyStore

__all__ = ["HealthResponse", "ServerMetrics", "router", "store_reachable"]

#: How long a health check waits for the store before calling it unreachable.
PROBE_TIMEOUT: Final = 1.0

router = APIRouter(tags=["health"])


class ServerMetrics:
    """The server's Prometheus metrics, in a registry of its own (one per app).

    Args:
        registry: where to register; a new one by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.reads = Counter("policystore_http_reads", "Read requests answered.", ["route"], registry=self.registry)
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
    """Report whether the store is reachable and the version and staleness of answers.

    Always 200 while the server runs; ``status`` says ``degraded`` when the
    store is unreachable or answers are stale.
    """
    store: PolicyStore = request.app.state.store
    started = time.perf_counter()
    reachable = await store_reachable(store)
    elapsed = (time.perf_counter() - started) * 1000
    healthy = reachable and not store.stale
    return HealthResponse(
        status="ok" if healthy else "degraded",
        store_reachable=reachable,
        version=store.snapshot().version,
        stale=store.stale,
        source=store.source.value,
        checked_at=datetime.now(UTC),
        probe_ms=round(elapsed, 3),
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
    collected.reachable.set(1 if await store_reachable(store) else 0)
    snapshot = store.snapshot()
    collected.version.set(snapshot.version)
    collected.set_trading_states(snapshot)
    collected.stale.set(1 if store.stale else 0)
    return Response(collected.render(), media_type=CONTENT_TYPE_LATEST)
