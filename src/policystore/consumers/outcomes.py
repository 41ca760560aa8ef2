"""What an executor's decisions come to: the records of refusals, opened and closed positions, and broker failures.

:class:`DecisionRecords` is the part of
:class:`~policystore.consumers.execution.EventDrivenExecutor` that makes an
:class:`ExecutionDecision` once a decision is reached, counts what was sent
(the order-rate throttle, the cooldown, the outcome the sizer learns from),
and sends the orders that close a position. The order in which a signal is
checked lives in :mod:`policystore.consumers.execution`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from policystore._records import maker
from policystore.consumers.brokers import Broker, Fill, Order, Position
from policystore.consumers.pretrade import OrderThrottle, Refusal
from policystore.consumers.reasons import Reason
from policystore.consumers.signals import ExecutionDecision, Signal
from policystore.consumers.sizing import SizingDecision
from policystore.model.policy import Policy

__all__ = ["DecisionRecords", "make_order"]

log = logging.getLogger("policystore.consumers")

# The records of every decision, built without a call per field.
make_order, _execution_decision = maker(Order), maker(ExecutionDecision)
#: The reasons of the decisions that sent an order the broker filled.
_TAKEN: Final = frozenset({Reason.ACCEPTED, Reason.CLOSED})


class DecisionRecords:
    """Make an executor's decisions into records, and count what it sent.

    Attributes (set by the executor):
        _clock: the executor's clock (``decided_at``, the throttle's window).
        _broker: where orders go.
        _throttle: the orders this executor sent in the last minute.
        _last_entry: when each symbol last opened (signal time): the cooldown.
        _open_sizing: the sizing of each position opened and not seen closed.
    """

    _clock: Callable[[], datetime]
    _broker: Broker
    _throttle: OrderThrottle
    _last_entry: dict[str, datetime]
    _open_sizing: dict[str, SizingDecision]

    def _decision(
        self, snap: Policy, signal: Signal, reason: Reason, detail: str, at: datetime | None = None, **outcome: Any
    ) -> ExecutionDecision:
        """Record what was decided for ``signal`` under ``snap``; ``outcome`` holds sizing, order, fill, control."""
        return _execution_decision(
            accepted=reason in _TAKEN,
            reason=reason,
            signal=signal,
            policy_version=snap.version,
            mode=snap.active_mode,
            detail=detail,
            decided_at=at if at is not None else self._clock(),
            **outcome,
        )

    def _refuse(self, snap: Policy, signal: Signal, reason: Reason, detail: str) -> ExecutionDecision:
        return self._decision(snap, signal, reason, detail)

    def _refused(self, snap: Policy, signal: Signal, refusal: Refusal, **outcome: Any) -> ExecutionDecision:
        """A refusal by a trading control, naming the path that refused."""
        return self._decision(snap, signal, refusal.reason, refusal.detail, control=refusal.control, **outcome)

    async def _tripped(
        self, snap: Policy, signal: Signal, reason: Reason, trip: Awaitable[str], control: str | None
    ) -> ExecutionDecision:
        """A refusal by a loss breaker, once it has turned the kill switch on (``trip`` says what it did)."""
        detail = await trip
        return self._decision(snap, signal, reason, detail, control=control)

    def _opened(  # noqa: PLR0917 - the parts of one opened order, as _decide and the broker made them
        self, snap: Policy, signal: Signal, sizing: SizingDecision, order: Order, fill: Fill, note: str
    ) -> ExecutionDecision:
        """Count an order that opened a position, and decide it accepted."""
        at = self._clock()
        self._throttle.record(at)
        self._last_entry[signal.symbol] = signal.time
        self._open_sizing[signal.symbol] = sizing
        return _execution_decision(  # every field in order, as the hot path's cheapest call
            True,  # noqa: FBT003 - accepted
            Reason.ACCEPTED,
            signal,
            snap.version,
            snap.active_mode,
            "sized within the policy" + note,
            at,
            sizing,
            order,
            fill,
            None,
        )

    async def _close(self, snap: Policy, signal: Signal, held: Position) -> ExecutionDecision:
        order = make_order(
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
        at = self._clock()
        self._throttle.record(at)
        detail = f"closed the {held.side} position in {signal.symbol}"
        return self._decision(snap, signal, Reason.CLOSED, detail, at, order=order, fill=fill)

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
        at = self._clock()
        self._throttle.record(at)  # it was sent: a rejected order counts toward the rate as well
        return self._decision(snap, signal, Reason.BROKER_REJECTED, detail, at, sizing=sizing, order=order)
