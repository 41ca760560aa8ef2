"""The event-driven executor: gates each trading signal by the policy, sizes it and sends it to a broker.

Every signal is decided from ONE snapshot of the policy, taken with the store's
trading verdict from the same read state (:meth:`PolicyStore.gate`), in this order:

1. ``halted``: the strictest trading state that applies is ``halted``: the
   firm's (``trading.state``), the signal's strategy's
   (``strategies.<name>.state``) or its instrument's (``instruments.<SYMBOL>.state``,
   else ``instruments.default.state``). Nothing passes it, not even a close;
2. an opposite signal for a held position closes it. It only reduces risk, so
   nothing below refuses it: no state short of ``halted``, no kill switch, limit,
   collar or throttle blocks a way out;
3. the store's gate, one reason for each fact that holds new risk shut (the
   same rule ``can_open_new_trades()`` answers by):

   - ``kill_switch``: the kill switch is on;
   - ``version_refused``: the store holds a newer version that was refused as invalid;
   - ``store_rewound``: the store went back to an older version (a restore, a
     replaced file, a failover that lost writes), not yet confirmed by a write;
   - ``store_unavailable``: the store cannot be reached and its stale rule forbids new trades;
4. ``daily_drawdown``: the day's loss reached ``risk.max_daily_drawdown``, or the
   broker's loss or equity figure is unusable (NaN, infinite, equity not
   positive): a loss that cannot be measured counts as reached. The executor
   also turns the kill switch on through the store (author ``executor``);
5. ``daily_loss``: the day's loss in money reached ``trading.max_daily_loss``
   (else ``hard_limits.max_daily_loss``). The loss is the drawdown breaker's,
   in money: the broker's fraction of the day's starting equity times that
   equity. The kill switch is turned on the same way;
6. ``reducing``: the strictest state that applies is ``reducing`` (this order
   would open a position);
7. ``instrument_not_allowed``: ``trading.allow_unlisted`` is false and the symbol
   has no entry of its own under ``instruments``;
8. ``unknown_strategy``: the policy has no such strategy;
9. ``position_open``: a position in the symbol is already open (no pyramiding);
10. ``low_confidence``: below the strategy's effective ``min_confidence``;
11. ``cooldown``: the symbol's last entry is less than the strategy's ``cooldown_seconds`` ago (signal time);
12. ``max_positions``: the broker holds the strategy's effective ``max_positions`` or more;
13. ``order_rate``: this executor sent ``trading.max_orders_per_minute`` orders or
    more in the last 60 seconds of its clock (counted per executor: opens and
    closes, filled or rejected);
14. ``price_collar``: the price is further from the signal's ``reference_price``
    than the instrument's ``price_collar`` (a fraction). Without a reference
    price the collar does not apply, and the decision's detail says so;
15. ``gross_exposure``: the open positions' notionals already reach
    ``trading.max_gross_exposure``, leaving no room (or the broker's exposure
    cannot be measured);
16. ``zero_size``: the caps leave no room for a position;
17. the sized order against the instrument's limits (its own, else
    ``instruments.default``'s, else the hard cap): ``order_quantity``
    (``max_order_quantity``), ``order_notional`` (``max_order_notional``),
    ``position_notional`` (``max_position_notional``, the notional held after the
    order), then ``gross_exposure`` (exposure plus the order above the limit).
    The built-in sizer sizes within these; this is the last word on any sizer;
18. ``broker_rejected``: the broker's submit raised (the order, its sizing and
    the error are recorded; no position is counted as opened). A failed close
    is refused with this reason too.

A refusal is a decision with a reason, never an exception, and every decision
is recorded with the policy version it was made under; a refusal by a trading
control names the policy path that refused (``control``). Decisions are made
one at a time, in order of arrival (:class:`~policystore.consumers.turns.Turns`), so signals handled concurrently, from
:meth:`EventDrivenExecutor.run` and direct calls alike, each see the positions
the ones before them opened.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Final

from policystore.consumers.breakers import LossBreakers
from policystore.consumers.brokers import Broker, ClosedTrade, Order
from policystore.consumers.outcomes import DecisionRecords, make_order
from policystore.consumers.pretrade import (
    OrderThrottle,
    collar_check,
    exposure_measure,
    exposure_refusal,
    size_refusal,
)
from policystore.consumers.reasons import Reason
from policystore.consumers.routes import Route
from policystore.consumers.signals import DecisionRecorder, ExecutionDecision, Signal, Sizer
from policystore.consumers.sizing import SizingDecision, StrategyCache
from policystore.consumers.turns import Turns
from policystore.model.controls import TradingRules, rules_for
from policystore.model.numbers import finite_float
from policystore.model.policy import Policy
from policystore.store.sources import GateRefusal, TradingGate
from policystore.store.store import PolicyStore

__all__ = ["DecisionRecorder", "EventDrivenExecutor", "ExecutionDecision", "Reason", "Signal", "Sizer"]

#: A position's target sits this many stop distances from the entry.
TARGET_MULTIPLE = 2.0

#: The decision's reason for each refusal of the store's gate.
_GATE_REASONS: dict[GateRefusal, Reason] = {
    GateRefusal.KILL_SWITCH: Reason.KILL_SWITCH,
    GateRefusal.VERSION_REFUSED: Reason.VERSION_REFUSED,
    GateRefusal.STORE_REWOUND: Reason.STORE_REWOUND,
    GateRefusal.STORE_UNAVAILABLE: Reason.STORE_UNAVAILABLE,
}


#: What a decision comes to before any await: a refusal, an order that opens to send (with its sizing and
#: a note for the decision), or, for a close and a loss breaker, a coroutine that makes the decision.
_Outcome = ExecutionDecision | tuple[SizingDecision, Order, str] | Coroutine[Any, Any, ExecutionDecision]
INF: Final = math.inf


def _sizes_in_room(sizer: Sizer) -> bool:
    """Whether ``sizer.decide`` takes the open positions' figures (``position_notional``, ``gross_exposure``)."""
    try:
        parameters = inspect.signature(sizer.decide).parameters
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return True
    return {"position_notional", "gross_exposure"} <= parameters.keys()


class EventDrivenExecutor(DecisionRecords):
    """Turns trading signals into orders, inside the policy.

    Args:
        policy_store: the policy; read from its local snapshot, written only by the loss breakers.
        broker: where orders go; its account state answers equity, positions, exposure and the day's loss.
        sizer: sizes accepted signals.
        decision_log: records every decision, or None.
        clock: returns the current UTC time (``decided_at``, and the order-rate throttle's window).

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
        self._breakers = LossBreakers(policy_store)
        self._broker = broker
        self._sizer = sizer
        self._log = decision_log
        self._clock = clock or functools.partial(datetime.now, UTC)
        # What the snapshot of the last decision says of each (symbol, strategy) seen under it (see Route).
        self._strategies = StrategyCache()
        self._routes_policy: Policy | None = None
        self._routes: dict[str, dict[str, Route]] = {}  # by strategy, then symbol
        self._rules: TradingRules | None = None
        self._throttle = OrderThrottle()
        self._last_entry: dict[str, datetime] = {}
        self._open_sizing: dict[str, SizingDecision] = {}
        self._exposure = exposure_measure(broker, self._open_sizing.keys)
        self._sizer_room = _sizes_in_room(sizer)
        # The gates read broker state (open positions, last entries) that only changes once an
        # awaited submit returns; deciding two signals at once would let both pass the same gate.
        self._turns = Turns()
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
        turns = self._turns
        if not turns.take():
            await turns.wait()
        try:
            # The policy and the verdict on new risk, from one read state of the store.
            gate = self._store.gate()
            outcome = self._decide(gate, signal)
            if isinstance(outcome, tuple):  # an order that opens a position: sent here, one coroutine less
                sizing, order, note = outcome
                try:
                    fill = await self._broker.submit(order)
                except Exception as exc:  # noqa: BLE001 - any broker failure becomes a recorded refusal
                    # Nothing is counted as opened: no cooldown starts and no outcome is awaited for it.
                    action = f"opening a {signal.side} position"
                    decision = self._rejected(gate.policy, signal, order, exc, action, sizing=sizing)
                else:
                    decision = self._opened(gate.policy, signal, sizing, order, fill, note)
            elif isinstance(outcome, ExecutionDecision):
                decision = outcome
            else:
                decision = await outcome  # a close, or a loss breaker to trip
            if self._log is not None:
                self._log.record(decision)
            return decision
        finally:
            turns.give()

    def _route(self, snap: Policy, signal: Signal) -> Route:
        """Make the signal's route under ``snap``, starting the routes over when ``snap`` is a new snapshot."""
        rules = self._rules
        if rules is None or snap is not self._routes_policy:
            self._routes_policy = snap
            self._routes = {}
            rules = self._rules = rules_for(snap)
        routes = self._routes.get(signal.strategy)
        if routes is None:
            routes = self._routes[signal.strategy] = {}
        route = routes[signal.symbol] = Route(rules, self._strategies, signal.symbol, signal.strategy)
        return route

    def _decide(self, gate: TradingGate, signal: Signal) -> _Outcome:  # noqa: C901, PLR0911, PLR0912 - one return per gate, in the documented order
        """Steps 1 to 17 (see the module): a refusal, an order that opens to send, or what to await for the rest."""
        snap = gate.policy
        # What never changes between signals under this snapshot, worked out for the first of them.
        routes = self._routes.get(signal.strategy) if snap is self._routes_policy else None
        route = routes.get(signal.symbol) if routes is not None else None
        if route is None:
            route = self._route(snap, signal)
        if route.halted is not None:  # the one refusal of an order that reduces
            return self._refused(snap, signal, route.halted)
        broker = self._broker
        held = broker.position(signal.symbol)
        if held is not None and held.side != signal.side:
            return self._close(snap, signal, held)
        if gate.refusal is not None:
            return self._refuse(snap, signal, _GATE_REASONS[gate.refusal], gate.detail)
        reported_loss, reported_equity = broker.daily_loss_fraction(), broker.equity
        # Every comparison with NaN is False: a NaN loss would pass ``loss >= limit``, so an
        # unusable figure (NaN, infinite, too large for a float, None, a string) must count as a
        # breach explicitly. Equity is checked here too: it is what the loss is measured against
        # and what the size is computed from. A finite float is taken as it is; anything else is
        # read by finite_float.
        loss = reported_loss if type(reported_loss) is float and -INF < reported_loss < INF else None
        if loss is None:
            loss = finite_float(reported_loss)
        equity = reported_equity if type(reported_equity) is float and -INF < reported_equity < INF else None
        if equity is None:
            equity = finite_float(reported_equity)
        if loss is None or equity is None or equity <= 0.0 or loss >= snap.risk.max_daily_drawdown:
            trip = self._breakers.drawdown(snap.risk.max_daily_drawdown, reported_loss, reported_equity)
            return self._tripped(snap, signal, Reason.DAILY_DRAWDOWN, trip, None)
        controls = route.controls  # None when no control is set: every check of one is skipped
        if controls is not None:
            limit = controls.max_daily_loss
            # daily_loss_amount(loss, equity) written out (loss > 0 here): every signal comes this way.
            if limit is not None and loss > 0.0 and (amount := loss * equity / (1.0 - loss)) >= limit.value:
                trip = self._breakers.loss_limit(limit, amount)
                return self._tripped(snap, signal, Reason.DAILY_LOSS, trip, limit.path)
            if route.opening is not None:  # reducing, then unlisted
                return self._refused(snap, signal, route.opening)
        config = route.config
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
        return self._opening(snap, signal, equity, route)

    def _opening(  # noqa: C901 - steps 13 to 17, one test each
        self, snap: Policy, signal: Signal, equity: float, route: Route
    ) -> ExecutionDecision | tuple[SizingDecision, Order, str]:
        """Steps 13 to 17: a refusal, or the sizing, the order to send and a note for the decision."""
        rules, gross = route.controls, None
        exposure, note = 0.0, ""
        if rules is not None:
            # Each check is called only when its control could refuse: every signal comes this way.
            if (
                len(self._throttle.sent)
                >= route.order_rate  # fewer orders kept than the limit (inf: none): none to forget
                and (refusal := self._throttle.refusal(rules.max_orders_per_minute, self._clock)) is not None
            ):
                return self._refused(snap, signal, refusal)
            collar, reference = route.collar, signal.reference_price
            if collar is not None and (reference is None or abs(signal.price - reference) / reference > collar):
                refusal, note = collar_check(route.instrument, signal.price, reference)
                if refusal is not None:
                    return self._refused(snap, signal, refusal)
            bound = rules.max_gross_exposure
            if bound is not None:
                gross = route.gross
                reported = self._exposure()
                measured = reported if type(reported) is float and -INF < reported < INF else finite_float(reported)
                if measured is None or measured >= gross:
                    return self._refused(snap, signal, exposure_refusal(bound, measured))
                exposure = measured
        if gross is not None and self._sizer_room:
            # Checked at construction: this sizer's decide takes the open positions' figures.
            decide: Any = self._sizer.decide
            sizing: SizingDecision = decide(
                signal.symbol,
                equity,
                signal.price,
                signal.confidence,
                signal.stop_distance,
                signal.volatility,
                signal.strategy,
                policy=snap,
                position_notional=0.0,
                gross_exposure=exposure,
            )
        else:
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
        quantity, price = sizing.quantity, signal.price
        if quantity <= 0:
            detail = "the policy's caps leave no room for a position"
            if sizing.binding_caps:
                detail += f" ({', '.join(sizing.binding_caps)} bound it)"
            return self._decision(snap, signal, Reason.ZERO_SIZE, detail + note, sizing=sizing)
        # The order against the instrument's limits, the quick test first: the notional is worked out
        # here, never taken from the sizer's decision, as this check is the last word on it.
        notional = quantity * price
        if rules is not None and not (
            quantity <= route.opening_quantity
            and notional <= route.opening_notional
            and (gross is None or notional <= gross - exposure)
        ):
            # No position is held here (step 9 refused one), so the position after is the order.
            refusal = size_refusal(rules, route.instrument, quantity, price, 0.0, exposure)
            if refusal is not None:
                return self._refused(snap, signal, refusal._replace(detail=refusal.detail + note), sizing=sizing)
        stop = sizing.stop_distance
        sign = 1.0 if signal.side == "buy" else -1.0
        order = make_order(
            signal.symbol,
            signal.side,
            quantity,
            price,
            signal.time,
            signal.strategy,
            price - sign * stop,
            price + sign * TARGET_MULTIPLE * stop,
            snap.version,
        )
        return sizing, order, note
