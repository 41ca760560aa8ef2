"""What goes into the executor and what comes out: signals, decisions, and the sizer and recorder it talks to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from policystore.consumers.brokers import Fill, Order, Side
from policystore.consumers.reasons import Reason
from policystore.consumers.sizing import SizingDecision
from policystore.model.numbers import finite_float, short_repr
from policystore.model.policy import Policy

__all__ = ["DecisionRecorder", "ExecutionDecision", "Signal", "Sizer"]


@dataclass(frozen=True, slots=True)
class Signal:
    """A trading signal: buy or sell ``symbol`` at about ``price``.

    Args:
        symbol: the instrument.
        side: ``"buy"`` or ``"sell"``.
        confidence: in [0, 1].
        price: the order's price, > 0.
        strategy: the strategy that produced it (its config comes from the policy).
        time: when it was produced, timezone-aware (converted to UTC).
        stop_distance: price distance to the stop per unit, > 0, if known.
        volatility: price volatility as a fraction, > 0, if known.
        reference_price: the market price the price collar is measured against, > 0,
            if known; without one the collar does not apply (and the decision says so).

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
    reference_price: float | None = None

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
        for name in ("stop_distance", "volatility", "reference_price"):
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
        control: the policy path whose value refused the signal (``instruments.BTC.max_order_notional``,
            ``strategies.moderate.state``), for the refusals of the trading controls; else None.
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
    control: str | None = None

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
        if s.reference_price is not None:
            record["reference_price"] = s.reference_price
        # The signal's own stop inputs, so that a preview can decide it again (``stop_distance`` is the sizing's).
        if s.stop_distance is not None:
            record["signal_stop_distance"] = s.stop_distance
        if s.volatility is not None:
            record["volatility"] = s.volatility
        if self.control is not None:
            record["control"] = self.control
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
    """What the executor needs from a sizer (see :class:`RLPositionSizingAgent`).

    A sizer whose ``decide`` also takes the keywords ``position_notional`` and
    ``gross_exposure`` (the built-in one does) is given the notional held in the
    symbol and the sum over every open position, to size within the room left
    under ``max_position_notional`` and ``trading.max_gross_exposure``.
    """

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
