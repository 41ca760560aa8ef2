"""The event-driven executor: gates each trading signal by the policy, sizes it and sends it to a broker.

Every signal is decided from ONE snapshot of the policy, taken with the store's
trading verdict from the same read state (:meth:`PolicyStore.gate`), in this order:

1. an opposite signal for a held position closes it (always allowed: it lowers risk);
2. the store's gate, one reason for each fact that holds new risk shut (the
   same rule ``can_open_new_trades()`` answers by):

   - ``kill_switch``: the kill switch is on;
   - ``version_refused``: the store holds a newer version that was refused as invalid;
   - ``store_rewound``: the store went back to an older version (a restore, a
     replaced file, a failover that lost writes), not yet confirmed by a write;
   - ``store_unavailable``: the store cannot be reached and its stale rule forbids new trades;
3. ``daily_drawdown``: the day's loss reached ``risk.max_daily_drawdown``, or the
   broker's loss or equity figure is unusable (NaN, infinite, equity not
   positive): a loss that cannot be measured counts as reached. The executor
   also turns the kill switch on through the store (author ``executor``);
4. ``unknown_strategy``: the policy has no such strategy;
5. ``position_open``: a position in the symbol is already open (no pyramiding);
6. ``low_confidence``: below the strategy's effective ``min_confidence``;
7. ``cooldown``: the symbol's last entry is less than the strategy's ``cooldown_seconds`` ago (signal time);
8. ``max_positions``: the broker holds the strategy's effective ``max_positions`` or more;
9. ``zero_size``: the caps leave no room for a position;
10. ``broker_rejected``: the broker's submit raised (the order, its sizing and
    the error are recorded; no position is counted as opened). A failed close
    is refused with this reason too.

A refusal is a decision with a reason, never an exception, and every decision
is recorded with the policy version it was made under. Decisions are made one
at a time (an :class:`asyncio.Lock`), so signals handled concurrently, from
:meth:`EventDrivenExecutor.run` and direct calls alike, each see the positions
the ones before them opened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from policystore.consumers.brokers import Broker, ClosedTrade, Fill, Order, Position, Side
from policystore.consumers.sizing import SizingDecision, StrategyCache
from policystore.errors import PolicyStoreError
from policystore.model.numbers import finite_float, short_repr
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.store.sources import GateRefusal, TradingGate
from policystore.store.store import PolicyStore

__all__ = ["DecisionRecorder", "EventDrivenExecutor", "ExecutionDecision", "Reason", "Signal", "Sizer"]

log = logging.getLogger("policystore.consumers")

#: A position's target sits this many stop distances from the entry.
TARGET_MULTIPLE = 2.0


class Reason(StrEnum):
    """Why a signal was accepted or refused."""

    ACCEPTED = "accepted"
    CLOSED = "closed"
    KILL_SWITCH = "kill_switch"
    VERSION_REFUSED = "version_refused"
    STORE_REWOUND = "store_rewound"
    STORE_UNAVAILABLE = "store_unavailable"
    UNKNOWN_STRATEGY = "unknown_strategy"
    POSITION_OPEN = "position_open"
    DAILY_DRAWDOWN = "daily_drawdown"
    LOW_CONFIDENCE = "low_confidence"
    COOLDOWN = "cooldown"
    MAX_POSITIONS = "max_positions"
    ZERO_SIZE = "zero_size"
    BROKER_REJECTED = "broker_rejected"

    def __str__(self) -> str:
        return self.value


#: The decision's reason for each refusal of the store's gate.
_GATE_REASONS: dict[GateRefusal, Reason] = {
    GateRefusal.KILL_SWITCH: Reason.KILL_SWITCH,
    GateRefusal.VERSION_REFUSED: Reason.VERSION_REFUSED,
    GateRefusal.STORE_REWOUND: Reason.STORE_REWOUND,
    GateRefusal.STORE_UNAVAILABLE: Reason.STORE_UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Signal:
    """A trading signal: buy or sell ``symbol`` at about ``price``.

    Args:
        symbol: the instrument.
        side: ``"buy"`` or ``"sell"``.
        confidence: in [0, 1].
        price: the reference price, > 0.
        strategy: the strategy that produced it (its config comes from the policy).
        time: when it was produced, timezone-aware (converted to UTC).
        stop_distance: price distance to the stop per unit, > 0, if known.
        volatility: price volatility as a fraction, > 0, if known.

    Raises:
        ValueError: a field is out of range (the message names it).
    """

    symbol: str
    side: Side
    confidence: float
    price: float
    strategy: str
    time: datetime
    stop_distance: float | None = None
    volatility: float | None = None

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("symbol must not be empty")
        if self.side not in {"buy", "sell"}:
            raise ValueError(f"side must be 'buy' or 'sell' (got {self.side!r})")
        if not 0 <= self.confidence <= 1:
            raise ValueError(f"confidence must be in [0, 1] (got {self.confidence!r})")
        # finite_float, not a comparison with inf: 10**400 compares below inf but no float holds it.
        if not (finite_float(self.price) or 0.0) > 0.0:
            raise ValueError(f"price must be a positive finite number (got {short_repr(self.price)})")
        for name in ("stop_distance", "volatility"):
            value = getattr(self, name)
            if value is not None and not (finite_float(value) or 0.0) > 0.0:
                raise ValueError(f"{name} must be a positive finite number when given (got {short_repr(value)})")
        if self.time.tzinfo is None:
            raise ValueError("time must be timezone-aware (UTC)")
        if self.time.utcoffset():
            object.__setattr__(self, "time", self.time.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class ExecutionDecision:
    """What the executor did with one signal.

    Attributes:
        accepted: True if the broker filled an order (False for every refusal, ``broker_rejected`` included).
        reason: why (``accepted``, ``closed`` or a refusal reason).
        signal: the signal decided on.
        policy_version: the version of the snapshot the decision used.
        mode: that snapshot's active mode.
        detail: one sentence with the figures behind the reason.
        sizing: the sizing decision, for opened positions and for opens the broker rejected.
        order: the order sent, if any (also when the broker rejected it).
        fill: the broker's fill, if any.
        decided_at: when the executor decided (its clock).
    """

    accepted: bool
    reason: Reason
    signal: Signal
    policy_version: int
    mode: str
    detail: str
    decided_at: datetime
    sizing: SizingDecision | None = None
    order: Order | None = None
    fill: Fill | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as one flat, JSON-ready record (what the decision log stores)."""
        s = self.signal
        record: dict[str, Any] = {
            "time": s.time.isoformat(),
            "decided_at": self.decided_at.isoformat(),
            "symbol": s.symbol,
            "strategy": s.strategy,
            "side": s.side,
            "confidence": s.confidence,
            "price": s.price,
            "accepted": self.accepted,
            "reason": self.reason.value,
            "detail": self.detail,
            "policy_version": self.policy_version,
            "mode": self.mode,
        }
        if self.sizing is not None:
            z = self.sizing
            record.update(
                quantity=z.quantity,
                notional=z.notional,
                leverage=z.leverage,
                risk_amount=z.risk_amount,
                multiplier=z.multiplier,
                binding_caps=list(z.binding_caps),
                stop_distance=z.stop_distance,
            )
        if self.fill is not None:
            f = self.fill
            record.update(
                fill_action=f.action,
                fill_quantity=f.quantity,
                fill_price=f.price,
                fee=f.fee,
                realized_pnl=f.realized_pnl,
            )
        return record


class Sizer(Protocol):
    """What the executor needs from a sizer (see :class:`RLPositionSizingAgent`)."""

    def decide(  # noqa: PLR0917 - mirrors RLPositionSizingAgent.decide
        self,
        symbol: str,
        equity: float,
        price: float,
        confidence: float,
        stop_distance: float | None = None,
        volatility: float | None = None,
        strategy: str | None = None,
        *,
        policy: Policy | None = None,
    ) -> SizingDecision:
        """Size one position from ``policy``."""

    def record_outcome(self, decision: SizingDecision, pnl: float) -> None:
        """Learn from a closed trade."""


class DecisionRecorder(Protocol):
    """Where decisions go (see :mod:`policystore.consumers.decision_log`)."""

    def record(self, decision: ExecutionDecision) -> None:
        """Record one decision durably."""


class EventDrivenExecutor:
    """Turns trading signals into orders, inside the policy.

    Args:
        policy_store: the policy; read from its local snapshot, written only by the drawdown breaker.
        broker: where orders go; its account state answers equity, positions and the day's loss.
        sizer: sizes accepted signals.
        decision_log: records every decision, or None.
        clock: returns the current UTC time (``decided_at``).

    Example::

        executor = EventDrivenExecutor(policy_store=store, broker=PaperBroker(10_000),
                                       sizer=RLPositionSizingAgent(policy_store=store))
        decision = await executor.handle(signal)
        decision.accepted, decision.reason, decision.policy_version
    """

    def __init__(
        self,
        policy_store: PolicyStore,
        broker: Broker,
        sizer: Sizer,
        *,
        decision_log: DecisionRecorder | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = policy_store
        self._broker = broker
        self._sizer = sizer
        self._log = decision_log
        self._clock = clock or (lambda: datetime.now(UTC))
        self._strategies = StrategyCache()
        self._last_entry: dict[str, datetime] = {}
        self._open_sizing: dict[str, SizingDecision] = {}
        # The gates read broker state (open positions, last entries) that only changes once an
        # awaited submit returns; deciding two signals at once would let both pass the same gate.
        self._lock = asyncio.Lock()
        broker.on_close(self._closed)

    def _closed(self, trade: ClosedTrade) -> None:
        sizing = self._open_sizing.pop(trade.symbol, None)
        if sizing is not None:
            self._sizer.record_outcome(sizing, trade.pnl)

    async def run(self, queue: asyncio.Queue[Signal | None]) -> int:
        """Handle signals from ``queue`` until a None sentinel arrives.

        A broker failure is a ``broker_rejected`` decision, not an exception, so
        the loop goes on with the next signal.

        Returns:
            How many signals were handled.
        """
        handled = 0
        while (signal := await queue.get()) is not None:
            try:
                await self.handle(signal)
                handled += 1
            finally:
                queue.task_done()
        queue.task_done()
        return handled

    async def handle(self, signal: Signal) -> ExecutionDecision:
        """Decide on one signal from one snapshot, send the order if accepted, and record the decision.

        Concurrent calls are decided one after another, each from a snapshot taken
        once the previous decision is made and recorded.

        Returns:
            The decision; refusals carry their reason, a broker that raised included
            (``broker_rejected``, with the error in ``detail``).

        Raises:
            OSError, ValueError: the decision log could not record the decision.
        """
        async with self._lock:
            # The policy and the verdict on new risk, from one read state of the store.
            decision = await self._decide(self._store.gate(), signal)
            if self._log is not None:
                self._log.record(decision)
            return decision

    def _decision(self, snap: Policy, signal: Signal, reason: Reason, detail: str, **outcome: Any) -> ExecutionDecision:
        """Record what was decided for ``signal`` under ``snap``; ``outcome`` holds sizing, order and fill."""
        return ExecutionDecision(
            accepted=reason in {Reason.ACCEPTED, Reason.CLOSED},
            reason=reason,
            signal=signal,
            policy_version=snap.version,
            mode=snap.active_mode,
            detail=detail,
            decided_at=self._clock(),
            **outcome,
        )

    def _refuse(self, snap: Policy, signal: Signal, reason: Reason, detail: str) -> ExecutionDecision:
        return self._decision(snap, signal, reason, detail)

    async def _decide(self, gate: TradingGate, signal: Signal) -> ExecutionDecision:  # noqa: PLR0911 - one return per gate, in policy order
        snap = gate.policy
        broker = self._broker
        held = broker.position(signal.symbol)
        if held is not None and held.side != signal.side:
            return await self._close(snap, signal, held)
        if gate.refusal is not None:
            return self._refuse(snap, signal, _GATE_REASONS[gate.refusal], gate.detail)
        reported_loss, reported_equity = broker.daily_loss_fraction(), broker.equity
        # Every comparison with NaN is False: a NaN loss would pass ``loss >= limit``, so an
        # unusable figure (NaN, infinite, too large for a float, None, a string) must count as a
        # breach explicitly. Equity is checked here too: it is what the loss is measured against
        # and what the size is computed from.
        loss, equity = finite_float(reported_loss), finite_float(reported_equity)
        if loss is None or equity is None or equity <= 0.0 or loss >= snap.risk.max_daily_drawdown:
            return await self._breaker(snap, signal, reported_loss, reported_equity)
        config = self._strategies.get(snap, signal.strategy)
        if config is None:
            return self._refuse(
                snap,
                signal,
                Reason.UNKNOWN_STRATEGY,
                f"strategy {signal.strategy!r} is not in policy version {snap.version}",
            )
        if held is not None:
            return self._refuse(
                snap, signal, Reason.POSITION_OPEN, f"a {held.side} position in {signal.symbol} is already open"
            )
        if signal.confidence < config.min_confidence:
            return self._refuse(
                snap,
                signal,
                Reason.LOW_CONFIDENCE,
                f"confidence {signal.confidence:g} is below {config.name}'s min_confidence {config.min_confidence:g}",
            )
        last = self._last_entry.get(signal.symbol)
        if last is not None and (waited := (signal.time - last).total_seconds()) < config.cooldown_seconds:
            return self._refuse(
                snap,
                signal,
                Reason.COOLDOWN,
                f"{signal.symbol} traded {waited:g}s ago; {config.name}'s cooldown is {config.cooldown_seconds:g}s",
            )
        if (count := broker.open_position_count()) >= config.max_positions:
            return self._refuse(
                snap,
                signal,
                Reason.MAX_POSITIONS,
                f"{count} positions are open; {config.name}'s max_positions is {config.max_positions}",
            )
        return await self._open(snap, signal, equity)

    async def _breaker(
        self, snap: Policy, signal: Signal, reported_loss: Any, reported_equity: Any
    ) -> ExecutionDecision:
        limit = snap.risk.max_daily_drawdown
        loss, equity = finite_float(reported_loss), finite_float(reported_equity)
        try:
            if loss is not None and equity is not None and equity > 0.0:
                detail = f"the day's loss of {loss:.2%} reached max_daily_drawdown {limit:.2%}"
                await self._store.report_daily_loss(loss, reporter="executor")
            else:
                figures = [f"the day's loss is {short_repr(reported_loss)}"] if loss is None else []
                figures += [f"the equity is {short_repr(reported_equity)}"] if equity is None or equity <= 0.0 else []
                detail = (
                    f"{' and '.join(figures)}: not usable, the loss cannot be measured, so it counts as "
                    f"reaching max_daily_drawdown {limit:.2%}"
                )
                # The kill switch is turned on here rather than through report_daily_loss so that
                # its reason names the unusable figure (equity is not a loss the store can judge).
                if not self._store.snapshot().emergency.active:
                    await self._store.set_emergency_mode(
                        True,
                        reason=f"drawdown breaker: {detail}",
                        updated_by="executor",
                        actor=Actor("executor", Role.OPERATOR),
                    )
        except PolicyStoreError as exc:
            # Still refused: the loss is measured again on every signal, so trading stays halted.
            log.error("The drawdown breaker could not turn the kill switch on: %s", exc)  # noqa: TRY400 - the cause is in the message
            detail += f"; turning the kill switch on failed: {exc}"
        return self._refuse(snap, signal, Reason.DAILY_DRAWDOWN, detail)

    async def _close(self, snap: Policy, signal: Signal, held: Position) -> ExecutionDecision:
        order = Order(
            signal.symbol,
            signal.side,
            held.quantity,
            signal.price,
            signal.time,
            signal.strategy,
            policy_version=snap.version,
            reduce_only=True,
        )
        try:
            fill = await self._broker.submit(order)
        except Exception as exc:  # noqa: BLE001 - any broker failure becomes a recorded refusal
            return self._rejected(snap, signal, order, exc, f"closing the {held.side} position")
        detail = f"closed the {held.side} position in {signal.symbol}"
        return self._decision(snap, signal, Reason.CLOSED, detail, order=order, fill=fill)

    def _rejected(
        self,
        snap: Policy,
        signal: Signal,
        order: Order,
        exc: Exception,
        action: str,
        *,
        sizing: SizingDecision | None = None,
    ) -> ExecutionDecision:
        detail = f"the broker failed {action} in {signal.symbol}: {type(exc).__name__}: {exc}"
        log.error("Refused %s %s: %s", signal.side, signal.symbol, detail)
        return self._decision(snap, signal, Reason.BROKER_REJECTED, detail, sizing=sizing, order=order)

    async def _open(self, snap: Policy, signal: Signal, equity: float) -> ExecutionDecision:
        sizing = self._sizer.decide(
            signal.symbol,
            equity,
            signal.price,
            signal.confidence,
            signal.stop_distance,
            signal.volatility,
            signal.strategy,
            policy=snap,
        )
        if sizing.quantity <= 0:
            return self._refuse(snap, signal, Reason.ZERO_SIZE, "the policy's caps leave no room for a position")
        stop = sizing.stop_distance
        sign = 1.0 if signal.side == "buy" else -1.0
        order = Order(
            signal.symbol,
            signal.side,
            sizing.quantity,
            signal.price,
            signal.time,
            signal.strategy,
            signal.price - sign * stop,
            signal.price + sign * TARGET_MULTIPLE * stop,
            snap.version,
        )
        try:
            fill = await self._broker.submit(order)
        except Exception as exc:  # noqa: BLE001 - any broker failure becomes a recorded refusal
            # Nothing is counted as opened: no cooldown starts and no outcome is awaited for it.
            return self._rejected(snap, signal, order, exc, f"opening a {signal.side} position", sizing=sizing)
        self._last_entry[signal.symbol] = signal.time
        self._open_sizing[signal.symbol] = sizing
        return self._decision(
            snap, signal, Reason.ACCEPTED, "sized within the policy", sizing=sizing, order=order, fill=fill
        )
