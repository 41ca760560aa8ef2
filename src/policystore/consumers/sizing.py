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
from collections.abc import Sequence
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
    InstrumentCaps,
    ModeLimits,
    SizingDecision,
    StrategyCache,
    check_held,
    diagnose,
    instrument_caps,
    positive,
    size_position,
)
from policystore.model.controls import TradingRules
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
        self._limits_policy: Policy | None = None
        self._limits: dict[str | None, ModeLimits] = {}
        self._rules: TradingRules | None = None
        self._caps: dict[str, InstrumentCaps] = {}

    @property
    def max_leverage(self) -> float:
        """The leverage cap in force now: the stricter of this agent's own and the policy's.

        The policy's is that of the agent's default strategy (the active mode's
        without one), read from the store's current snapshot.
        """
        return self._limits_for(self._store.snapshot(), self._strategy).max_leverage

    def _limits_for(self, policy: Policy, strategy: str | None) -> ModeLimits:
        if policy is not self._limits_policy:
            self._limits_policy = policy
            self._limits = {}
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

    def _instrument_caps(
        self, snap: Policy, symbol: str, position_notional: float, gross_exposure: float
    ) -> tuple[Sequence[tuple[str, float]], float]:
        """The instrument's limits and the rooms left under them, as ``size_position``'s extra caps.

        None when no trading control applies. The parts that do not change between
        orders are worked out once per snapshot and symbol: every decision asks.

        Raises:
            ValueError: a held notional or exposure that is not a finite number >= 0.
        """
        rules = self._rules
        if rules is None or rules.policy is not snap:
            rules = self._rules = TradingRules(snap)
            self._caps = {}
        if rules.quiet:
            return (), INF
        caps = self._caps.get(symbol)
        if caps is None:
            caps = self._caps[symbol] = instrument_caps(rules.instrument(symbol))
        # A plain finite float passes the first test; anything else is looked at closely (10**400 compares
        # below inf but is no float, NaN fails every comparison, a string cannot be compared).
        if not (type(position_notional) is float and type(gross_exposure) is float) or not (
            0.0 <= position_notional < INF and 0.0 <= gross_exposure < INF
        ):
            check_held(position_notional, gross_exposure)
        if position_notional == 0.0 or caps.position is None:
            extra = caps.opening
        else:
            extra = (*caps.order, (CAP_POSITION_NOTIONAL, caps.position - position_notional))
        gross = rules.max_gross_exposure
        if gross is not None:
            extra = (*extra, (CAP_GROSS_EXPOSURE, gross.value - gross_exposure))
        return extra, caps.quantity

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
        try:
            # One chained comparison on the hot path; the slow path below names what was wrong.
            valid = 0.0 < equity < INF and 0.0 < price < INF and 0.0 <= confidence <= 1.0
            if valid and not isinstance(confidence, bool):
                # An int passes the comparisons exactly however large; as a float it must be finite
                # (10**400 raises OverflowError here, not deep in the arithmetic).
                equity, price, confidence = float(equity), float(price), float(confidence)
            else:
                valid = False
        except (TypeError, OverflowError):
            valid = False
        if not valid:
            diagnose(equity, price, confidence)
        if stop_distance is not None:
            stop = positive("stop_distance", stop_distance)
            if volatility is not None:
                volatility = positive("volatility", volatility)
        elif volatility is not None:
            volatility = positive("volatility", volatility)
            stop = VOLATILITY_STOP_MULTIPLE * volatility * price
            # Finite inputs can still overflow to inf (risk_amount would be 0 x inf = NaN) or
            # underflow to 0 (a stop at the entry price).
            if not 0.0 < stop < INF:
                raise ValueError(
                    f"volatility {volatility!r} at price {price!r} gives a stop distance of {stop!r}, "
                    "not a positive finite number"
                )
        else:
            raise ValueError("stop_distance or volatility is required: neither was given, so no stop can be set")
        name = strategy if strategy is not None else self._strategy
        limits = self._limits_for(snap, name)
        notional_caps, quantity_cap = self._instrument_caps(snap, symbol, position_notional, gross_exposure)
        multiplier = self.learner.choose(confidence, stop / price) if limits.learn else 1.0
        quantity, binding = size_position(
            equity,
            price,
            stop,
            risk_pct=limits.risk_pct,
            max_leverage=limits.max_leverage,
            scaling=limits.scaling,
            size_cap=limits.size_cap,
            multiplier=multiplier,
            notional_caps=notional_caps,
            quantity_cap=quantity_cap,
        )
        notional = quantity * price
        return SizingDecision(
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
