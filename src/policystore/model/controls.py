"""The trading controls in force: each state and limit resolved to its value and the path that set it.

Resolution rules, the same for the read path (:func:`policystore.model.paths.flatten`),
the authority rule (:mod:`policystore.model.trading_risk`) and the consumers:

* firm-wide state: ``trading.state``, made at least ``reducing`` while the kill
  switch is on (``trading.effective_state``);
* an instrument's field: its own entry's value, else ``instruments.default``'s,
  else, for a limit with an optional hard cap, ``hard_limits.<field>``; a state
  set nowhere is ``active``, a limit set nowhere is no limit (None);
* a firm-wide limit: ``trading.<field>``, else ``hard_limits.<field>``;
* the state that applies to a signal: the strictest of the firm's, its
  strategy's and its instrument's (ties go to the wider scope).

:class:`TradingRules` holds all of it for one policy, resolved once, for the
consumers that check every signal.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Final, NamedTuple

from policystore.model.policy import Policy
from policystore.model.trading import (
    DEFAULT_INSTRUMENT,
    INSTRUMENT_LIMIT_FIELDS,
    OPTIONAL_CAP_FIELDS,
    TRADING_LIMIT_FIELDS,
    InstrumentLimits,
    TradingState,
)

__all__ = [
    "Bound",
    "InstrumentRules",
    "StateVerdict",
    "TradingRules",
    "firm_state",
    "instrument_rules",
    "strictest_state",
    "trading_limit",
]

_EMPTY: Final = InstrumentLimits()
_ACTIVE: Final = TradingState.ACTIVE
_REDUCING: Final = TradingState.REDUCING


class Bound(NamedTuple):
    """A limit in force: its value and the path that set it (``instruments.BTC.max_order_notional``)."""

    value: float
    path: str


class StateVerdict(NamedTuple):
    """A state in force and the path that decided it (``emergency.active`` for the kill switch)."""

    state: TradingState
    path: str


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """One instrument's state and limits in force.

    Attributes:
        symbol: the instrument.
        listed: True when it has an entry of its own (``instruments.<SYMBOL>``).
        state: its state, with the path that set it.
        max_order_notional, max_order_quantity, max_position_notional, price_collar:
            each limit in force with its path, or None when none applies.
        opening_notional: the largest notional an order that opens a position
            (none held) may have under the order and position limits (inf: none).
        opening_quantity: the largest quantity of one order (inf: none).
    """

    symbol: str
    listed: bool
    state: StateVerdict
    max_order_notional: Bound | None
    max_order_quantity: Bound | None
    max_position_notional: Bound | None
    price_collar: Bound | None
    opening_notional: float = dataclasses.field(init=False)
    opening_quantity: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        # Derived once: a consumer compares every order with these before it looks closer.
        bounds = [b.value for b in (self.max_order_notional, self.max_position_notional) if b is not None]
        object.__setattr__(self, "opening_notional", min(bounds, default=math.inf))
        quantity = self.max_order_quantity
        object.__setattr__(self, "opening_quantity", math.inf if quantity is None else quantity.value)


def firm_state(policy: Policy) -> StateVerdict:
    """Return the firm-wide state in force: ``trading.state``, at least ``reducing`` while the kill switch is on.

    Args:
        policy: the snapshot.

    Returns:
        The state and the path that decided it (``emergency.active`` when the kill switch raised it).
    """
    state = policy.trading.state
    if policy.emergency.active and state is _ACTIVE:
        return StateVerdict(_REDUCING, "emergency.active")
    return StateVerdict(state, "trading.state")


def trading_limit(policy: Policy, field: str) -> Bound | None:
    """Return the firm-wide limit ``trading.<field>`` in force, else its hard cap, else None.

    Args:
        policy: the snapshot.
        field: one of ``max_orders_per_minute``, ``max_daily_loss``, ``max_gross_exposure``.

    Returns:
        The limit and the path that set it, or None when none applies.
    """
    value = getattr(policy.trading, field)
    if value is not None:
        return Bound(value, f"trading.{field}")
    return _cap(policy, field)


def _cap(policy: Policy, field: str) -> Bound | None:
    cap = getattr(policy.hard_limits, field) if field in OPTIONAL_CAP_FIELDS else None
    return None if cap is None else Bound(cap, f"hard_limits.{field}")


def instrument_rules(policy: Policy, symbol: str) -> InstrumentRules:
    """Return the state and limits in force for ``symbol``.

    Args:
        policy: the snapshot.
        symbol: any string; one without an entry of its own gets the default's
            (``"default"`` gives the default entry's own).

    Returns:
        The instrument's rules, each value with the path that set it.
    """
    own = policy.instruments.get(symbol)
    default = policy.instruments.get(DEFAULT_INSTRUMENT, _EMPTY)
    key = symbol if own is not None else DEFAULT_INSTRUMENT
    entry = own if own is not None else _EMPTY
    if entry.state is not None:
        state = StateVerdict(entry.state, f"instruments.{key}.state")
    elif default.state is not None:
        state = StateVerdict(default.state, "instruments.default.state")
    else:
        state = StateVerdict(_ACTIVE, f"instruments.{key}.state")
    limits: list[Bound | None] = []
    for field in INSTRUMENT_LIMIT_FIELDS:
        value = getattr(entry, field)
        if value is not None:
            limits.append(Bound(value, f"instruments.{key}.{field}"))
        elif (fallback := getattr(default, field)) is not None:
            limits.append(Bound(fallback, f"instruments.default.{field}"))
        else:
            limits.append(_cap(policy, field))
    return InstrumentRules(symbol, own is not None and symbol != DEFAULT_INSTRUMENT, state, *limits)


def strictest_state(policy: Policy, symbol: str, strategy: str | None = None) -> StateVerdict:
    """Return the state that applies to an order in ``symbol`` from ``strategy``, with the path that decided it.

    The strictest of the firm's (kill switch folded in), the strategy's (an
    unknown strategy has none) and the instrument's; on a tie the wider scope
    is named. This is what ``explain`` can say of a symbol's effective state.

    Args:
        policy: the snapshot.
        symbol: the instrument.
        strategy: the strategy, or None for the firm's and the instrument's alone.

    Returns:
        The state and the path that decided it.
    """
    verdict = firm_state(policy)
    settings = policy.strategies.get(strategy) if strategy is not None else None
    if settings is not None and settings.state.rank > verdict.state.rank:
        verdict = StateVerdict(settings.state, f"strategies.{strategy}.state")
    instrument = instrument_rules(policy, symbol).state
    return instrument if instrument.state.rank > verdict.state.rank else verdict


class TradingRules:
    """Every trading control of one policy, resolved once for the checks of every signal.

    Args:
        policy: the snapshot.

    Attributes:
        policy: the snapshot the rules come from.
        firm: the firm-wide state in force.
        allow_unlisted: ``trading.allow_unlisted``.
        max_orders_per_minute, max_daily_loss, max_gross_exposure: the firm-wide limits in force.
        quiet: True when no control can refuse anything: every state active
            everywhere, no limit, unlisted instruments allowed. A consumer may
            skip every check then.
    """

    __slots__ = (
        "_instruments",
        "_strategy_states",
        "_verdicts",
        "allow_unlisted",
        "firm",
        "max_daily_loss",
        "max_gross_exposure",
        "max_orders_per_minute",
        "policy",
        "quiet",
    )

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.firm = firm_state(policy)
        self.allow_unlisted = policy.trading.allow_unlisted
        self.max_orders_per_minute = trading_limit(policy, "max_orders_per_minute")
        self.max_daily_loss = trading_limit(policy, "max_daily_loss")
        self.max_gross_exposure = trading_limit(policy, "max_gross_exposure")
        self._strategy_states = {
            name: StateVerdict(s.state, f"strategies.{name}.state")
            for name, s in policy.strategies.items()
            if s.state is not _ACTIVE
        }
        self._instruments: dict[str, InstrumentRules] = {}
        self._verdicts: dict[tuple[str, str], StateVerdict] = {}
        caps = policy.hard_limits
        self.quiet = (
            self.firm.state is _ACTIVE
            and self.allow_unlisted
            and not self._strategy_states
            and not policy.instruments
            and all(getattr(caps, field) is None for field in OPTIONAL_CAP_FIELDS)
            and all(getattr(policy.trading, field) is None for field in TRADING_LIMIT_FIELDS)
        )

    def instrument(self, symbol: str) -> InstrumentRules:
        """Return ``symbol``'s state and limits in force (resolved once per symbol)."""
        rules = self._instruments.get(symbol)
        if rules is None:
            rules = self._instruments[symbol] = instrument_rules(self.policy, symbol)
        return rules

    def state_for(self, symbol: str, strategy: str) -> StateVerdict:
        """Return the strictest state for an order in ``symbol`` from ``strategy`` (see :func:`strictest_state`).

        Resolved once per pair: every signal asks.
        """
        key = (symbol, strategy)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self.firm
            own = self._strategy_states.get(strategy)
            if own is not None and own.state.rank > verdict.state.rank:
                verdict = own
            instrument = self.instrument(symbol).state
            if instrument.state.rank > verdict.state.rank:
                verdict = instrument
            self._verdicts[key] = verdict
        return verdict
