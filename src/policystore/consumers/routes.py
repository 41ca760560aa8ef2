"""What one snapshot says of every signal of one strategy in one symbol, worked out once per snapshot.

Most of what the policy says of a signal depends only on the snapshot, the
signal's strategy and its symbol: the trading state in force and the refusal it
makes, whether an order that opens a position is refused for a ``reducing``
state or an unlisted instrument, the instrument's limits, the strategy's
config. The executor keeps one :class:`Route` for each pair it has seen under
the snapshot it decides from, and starts over when a signal's snapshot is
another object (a new version, an expiring change ended, another source), so a
change of the policy is seen by the next signal. What changes between signals
(positions, losses, exposure, the order rate, the signal's own figures) is
checked per signal, in :mod:`policystore.consumers.execution`.
"""

from __future__ import annotations

import math

from policystore.consumers.pretrade import Refusal, halted_refusal, listing_refusal, reducing_refusal
from policystore.consumers.size_rules import StrategyCache
from policystore.model.controls import TradingRules
from policystore.model.policy import Policy, StrategyConfig
from policystore.model.trading import TradingState

__all__ = ["Route"]


class Route:
    """The facts of one snapshot for the signals of one strategy in one symbol.

    Args:
        rules: the snapshot's trading controls.
        strategies: the snapshot's strategy configs.
        symbol: the signal's instrument.
        strategy: the signal's strategy.

    Attributes:
        controls: the trading controls, or None when none is set (``rules.quiet``):
            every check of one is skipped then.
        instrument: the instrument's state and limits in force.
        halted: the refusal of any order, a close included, when the strictest
            state that applies is ``halted``; else None.
        opening: the refusal of an order that opens a position for the other
            facts that never change between signals, in the executor's order: the
            state ``reducing``, then an unlisted instrument; else None.
        config: the strategy's effective config, or None when the policy has no such strategy.
        collar: the instrument's price collar (a fraction), or None.
        order_rate: ``trading.max_orders_per_minute`` in force (inf: none).
        gross: the gross exposure limit in force (inf: none).
        opening_quantity, opening_notional: the most one order that opens a position may
            have under the instrument's limits (inf: none).

    The figures are the values of the controls' bounds, read once here: every signal compares with them.
    """

    __slots__ = (
        "collar",
        "config",
        "controls",
        "gross",
        "halted",
        "instrument",
        "opening",
        "opening_notional",
        "opening_quantity",
        "order_rate",
    )

    def __init__(self, rules: TradingRules, strategies: StrategyCache, symbol: str, strategy: str) -> None:
        policy: Policy = rules.policy
        self.config: StrategyConfig | None = strategies.get(policy, strategy)
        self.controls: TradingRules | None = None
        instrument = self.instrument = rules.instrument(symbol)
        self.halted: Refusal | None = None
        self.opening: Refusal | None = None
        self.collar: float | None = None
        self.opening_quantity = self.opening_notional = self.order_rate = self.gross = math.inf
        if rules.quiet:
            return
        self.controls = rules
        self.collar = None if instrument.price_collar is None else instrument.price_collar.value
        rate, gross = rules.max_orders_per_minute, rules.max_gross_exposure
        self.order_rate = math.inf if rate is None else rate.value
        self.gross = math.inf if gross is None else gross.value
        self.opening_quantity, self.opening_notional = instrument.opening_quantity, instrument.opening_notional
        # The strictest state that applies (see TradingRules.state_for), without keeping it a second time.
        verdict = rules.strategy_state(strategy)
        if instrument.state.state.rank > verdict.state.rank:
            verdict = instrument.state
        if verdict.state is TradingState.HALTED:
            self.halted = halted_refusal(verdict, symbol)
        elif verdict.state is not TradingState.ACTIVE:
            self.opening = reducing_refusal(verdict, symbol)
        else:
            self.opening = listing_refusal(rules, instrument)
