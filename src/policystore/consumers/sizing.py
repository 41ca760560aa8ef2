"""Position sizing under the policy: a risk-based size, scaled, capped, and optionally learned.

How a size is made, every limit read from ONE snapshot of the policy:

1. ``base = equity * max_risk_pct_per_trade / stop_distance``: the quantity
   that loses exactly the per-trade risk budget if the stop is hit. Without a
   stop, the stop is ``2 * volatility * price`` (volatility as a fraction).
2. ``scaled = base * scaling_factor``.
3. The caps apply after scaling, so scaling can never loosen them:
   ``risk_amount = quantity * stop_distance <= equity * max_risk_pct_per_trade``,
   ``notional <= position_size_cap`` and ``notional <= equity * max_leverage``.
   A ``scaling_factor`` below 1 shrinks every size; one above 1 cannot take a
   trade past its risk budget (the budget binds instead).
   The instrument's limits in force (its own, else ``instruments.default``'s,
   else the hard cap) are caps too: ``notional <= max_order_notional``,
   ``quantity <= max_order_quantity``, ``notional <= max_position_notional -
   position_notional`` (the room left in the instrument) and ``notional <=
   trading.max_gross_exposure - gross_exposure`` (the room left firm-wide). So
   the size is the tightest of the caps, and never one the executor's limits
   would refuse when a smaller one fits.
4. ``quantity = capped * multiplier``: the learned multiplier (``ai.enable_rl``
   on) is at most 1.0, so it only shrinks a size that already obeys the caps;
   with learning off it is exactly 1.0.

With a strategy, its effective config (overrides clamped to the mode) gives
``max_risk_pct_per_trade``, ``max_leverage`` and ``scaling_factor``; the size
cap is the mode's. A decision names every cap that bound it
(``binding_caps``: ``max_risk_pct_per_trade``, ``position_size_cap``,
``max_leverage``, ``scaling_factor``, ``max_order_notional``,
``max_order_quantity``, ``max_position_notional``, ``max_gross_exposure``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.size_rules import (
    CAP_GROSS_EXPOSURE,
    CAP_LEVERAGE,
    CAP_ORDER_NOTIONAL,
    CAP_ORDER_QUANTITY,
    CAP_POSITION_NOTIONAL,
    CAP_RISK,
    CAP_SCALING,
    CAP_SIZE,
    INF,
    VOLATILITY_STOP_MULTIPLE,
    ModeLimits,
    SizingDecision,
    StrategyCache,
    check_held,
    checked_inputs,
    holding_caps,
    make_sizing,
    positive,
    size_position,
    sized,
    stop_from,
    tightest,
)
from policystore.model.controls import TradingRules, rules_for
from policystore.model.policy import Policy
from policystore.store.store import PolicyStore

__all__ = [
    "CAP_GROSS_EXPOSURE",
    "CAP_LEVERAGE",
    "CAP_ORDER_NOTIONAL",
    "CAP_ORDER_QUANTITY",
    "CAP_POSITION_NOTIONAL",
    "CAP_RISK",
    "CAP_SCALING",
    "CAP_SIZE",
    "VOLATILITY_STOP_MULTIPLE",
    "RLPositionSizingAgent",
    "SizingDecision",
    "StrategyCache",
    "size_position",
]


class RLPositionSizingAgent:
    """Sizes positions under the policy's limits, with an optional learned multiplier.

    Args:
        policy_store: where every limit comes from (its local snapshot; no I/O per decision).
        strategy: the default strategy whose effective config applies, or None for the mode's limits.
        learner: the multiplier learner; by default a :class:`MultiplierLearner` seeded with ``seed``,
            loaded from ``model_path`` if that file exists.
        seed: seeds the default learner's exploration.
        model_path: a JSON file the learner is loaded from and saved to after each outcome.
        max_leverage: a leverage cap of this agent's own, for code written for the older
            agent: it can only lower the policy's (the stricter of the two applies), never
            raise it. None: the policy's alone.
        use_math_ai: the learned multiplier's switch, by its older name. False: the
            multiplier is exactly 1.0 whatever ``ai.enable_rl`` says; True: it follows
            ``ai.enable_rl``.

    Raises:
        ValueError: ``max_leverage`` is not a positive finite number.

    Example::

        sizer = RLPositionSizingAgent(policy_store=store, strategy="moderate")
        d = sizer.decide("BTCUSDT", equity=10_000, price=50_000, confidence=0.7, stop_distance=1_000)
        d.quantity, d.risk_amount, d.binding_caps, d.policy_version
    """

    def __init__(
        self,
        policy_store: PolicyStore,
        *,
        strategy: str | None = None,
        learner: MultiplierLearner | None = None,
        seed: int = 0,
        model_path: str | os.PathLike[str] | None = None,
        max_leverage: float | None = None,
        use_math_ai: bool = True,
    ) -> None:
        self._store = policy_store
        self._strategy = strategy
        self._leverage_cap = INF if max_leverage is None else positive("max_leverage", max_leverage)
        self._use_learning = bool(use_math_ai)
        self._model_path = Path(model_path) if model_path is not None else None
        if learner is None:
            exists = self._model_path is not None and self._model_path.exists()
            learner = MultiplierLearner.load(self._model_path) if exists else MultiplierLearner(seed=seed)  # type: ignore[arg-type]
        self.learner = learner
        self._strategies = StrategyCache()
        # What one snapshot says, worked out once per snapshot (``self._rules.policy``): every decision asks.
        self._limits: dict[str | None, ModeLimits] = {}  # by strategy
        self._rules: TradingRules | None = None  # shared with every consumer of the snapshot (rules_for)

    @property
    def max_leverage(self) -> float:
        """The leverage cap in force now: the stricter of this agent's own and the policy's.

        The policy's is that of the agent's default strategy (the active mode's
        without one), read from the store's current snapshot.
        """
        return self._limits_for(self._store.snapshot(), self._strategy).max_leverage

    def _use(self, policy: Policy) -> TradingRules:
        """Start the caches over for ``policy``; return its trading controls."""
        self._limits = {}
        rules = self._rules = rules_for(policy)
        return rules

    def _limits_for(self, policy: Policy, strategy: str | None) -> ModeLimits:
        if self._rules is None or self._rules.policy is not policy:
            self._use(policy)
        limits = self._limits.get(strategy)
        if limits is None:
            risk = policy.risk
            if strategy is None:
                limits = ModeLimits(
                    risk.max_risk_pct_per_trade,
                    min(risk.max_leverage, self._leverage_cap),
                    risk.scaling_factor,
                    risk.position_size_cap,
                    risk.enable_rl and self._use_learning,
                )
            else:
                config = self._strategies.get(policy, strategy)
                if config is None:
                    known = ", ".join(sorted(policy.strategies))
                    raise ValueError(f"strategy {strategy!r} is not in the policy (known: {known})")
                limits = ModeLimits(
                    config.max_risk_pct_per_trade,
                    min(config.max_leverage, self._leverage_cap),
                    config.scaling_factor,
                    risk.position_size_cap,
                    risk.enable_rl and self._use_learning,
                )
            self._limits[strategy] = limits
        return limits

    def decide(  # noqa: PLR0917 - the documented positional form decide(symbol, equity, price, confidence, ...)
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
        position_notional: float = 0.0,
        gross_exposure: float = 0.0,
    ) -> SizingDecision:
        """Size one position from one snapshot of the policy.

        Args:
            symbol: the instrument.
            equity: account equity, > 0.
            price: entry price, > 0.
            confidence: the signal's confidence in [0, 1].
            stop_distance: price distance to the stop per unit, > 0.
            volatility: price volatility as a fraction (> 0), used for a stop of
                ``2 * volatility * price`` when no stop distance is given.
            strategy: the strategy whose config applies (default: the agent's).
            policy: the snapshot to decide from (default: ``store.snapshot()``);
                an executor passes the one its checks used.
            position_notional: the notional already held in ``symbol`` (>= 0): the
                size fits in what ``max_position_notional`` leaves.
            gross_exposure: the sum of the notionals of every open position (>= 0):
                the size fits in what ``trading.max_gross_exposure`` leaves.

        Returns:
            The decision; its quantity is 0 if the caps leave no room.

        Raises:
            ValueError: a bad argument (named in the message), neither a stop
                distance nor a volatility, or an unknown strategy.
        """
        snap = policy if policy is not None else self._store.snapshot()
        # Plain floats in range pass these tests alone; anything else is looked at closely, and refused by name.
        if not (
            type(equity) is float
            and type(price) is float
            and type(confidence) is float
            and 0.0 < equity < INF
            and 0.0 < price < INF
            and 0.0 <= confidence <= 1.0
        ):
            equity, price, confidence = checked_inputs(equity, price, confidence)
        if volatility is None and type(stop_distance) is float and 0.0 < stop_distance < INF:
            stop = stop_distance
        else:
            stop, volatility = stop_from(price, stop_distance, volatility)
        name = strategy if strategy is not None else self._strategy
        rules = self._rules
        if rules is None or rules.policy is not snap:
            rules = self._use(snap)
        limits = self._limits.get(name) or self._limits_for(snap, name)
        if rules.quiet:  # no trading control applies: no extra cap
            notional_caps: tuple[tuple[str, float], ...] = ()
            notional_cap = quantity_cap = room = INF
        else:
            # The instrument's limits, resolved once per snapshot and symbol (an executor deciding from
            # the same snapshot has resolved them already).
            instrument = rules.resolved.get(symbol)
            if instrument is None:
                instrument = rules.instrument(symbol)
            # A plain finite float passes the first test; anything else is looked at closely (10**400 compares
            # below inf but is no float, NaN fails every comparison, a string cannot be compared).
            if not (type(position_notional) is float and type(gross_exposure) is float) or not (
                0.0 <= position_notional < INF and 0.0 <= gross_exposure < INF
            ):
                check_held(position_notional, gross_exposure)
            if position_notional == 0.0:
                notional_caps, notional_cap = instrument.opening_caps, instrument.opening_notional
            else:
                notional_caps = holding_caps(instrument, position_notional)
                notional_cap = tightest(notional_caps)
            gross, room = rules.max_gross_exposure, INF  # the room left under the exposure limit: a cap of its own
            if gross is not None:
                room = gross.value - gross_exposure  # finite: both figures are
                if room < notional_cap:  # noqa: PLR1730 - min() without its call, on every decision
                    notional_cap = room
            quantity_cap = instrument.opening_quantity
        multiplier = self.learner.choose(confidence, stop / price) if limits.learn else 1.0
        quantity, binding = sized(
            equity,
            price,
            stop,
            limits.risk_pct,
            limits.max_leverage,
            limits.scaling,
            limits.size_cap,
            multiplier,
            notional_caps,
            quantity_cap,
            notional_cap,
            room,
        )
        notional = quantity * price
        return make_sizing(
            symbol,
            quantity,
            notional,
            notional / equity,
            quantity * stop,
            snap.version,
            snap.active_mode,
            name,
            binding,
            multiplier,
            equity,
            price,
            confidence,
            stop,
            volatility,
        )

    def record_outcome(self, decision: SizingDecision, pnl: float) -> None:
        """Teach the learner the outcome of a sized trade; saved to ``model_path`` if one was given.

        The reward is the PnL as a fraction of the equity at decision time.

        Args:
            decision: the decision the trade was sized with.
            pnl: the trade's realised profit or loss, in money.

        Raises:
            ValueError: the PnL is not finite.
        """
        if not math.isfinite(pnl):
            raise ValueError(f"pnl must be a finite number (got {pnl!r})")
        if decision.multiplier not in self.learner.actions:
            return  # sized by another learner's actions: nothing this table can learn
        self.learner.learn(
            decision.confidence, decision.stop_distance / decision.price, decision.multiplier, pnl / decision.equity
        )
        if self._model_path is not None:
            self.learner.save(self._model_path)

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Save the learner to ``path`` (default: ``model_path``).

        Raises:
            ValueError: no path given and no ``model_path`` set.
        """
        target = path if path is not None else self._model_path
        if target is None:
            raise ValueError("no path to save to: pass path or construct the agent with model_path")
        self.learner.save(target)
