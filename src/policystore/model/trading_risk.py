"""Which changes to the trading states and controls raise risk: the trading half of ``risk_increases``.

Looser is: a state moved toward ``active``; a limit raised, or removed (None is
no limit, the loosest there is); a wider price collar; more instruments allowed
(``trading.allow_unlisted`` turned on, or an entry added while it is off); a
hard cap raised or removed. Every value is compared as stored and as it is in
force (:mod:`policystore.model.controls`), so a change that looks like
tightening where it is written but loosens what applies (an instrument's own
``active`` under a halted default) is caught, and so is one that loosens a
stored value hidden today (an own limit removed that falls back to a stricter
default still took away a limit of its own).
"""

from __future__ import annotations

import math
from typing import Final

from policystore.model.controls import Bound, instrument_rules, trading_limit
from policystore.model.policy import Policy
from policystore.model.trading import (
    DEFAULT_INSTRUMENT,
    INSTRUMENT_LIMIT_FIELDS,
    OPTIONAL_CAP_FIELDS,
    TRADING_LIMIT_FIELDS,
    InstrumentLimits,
    TradingState,
)

__all__ = ["looser_limit", "looser_state", "trading_increases"]

_EMPTY: Final = InstrumentLimits()


def looser_limit(old: float | Bound | None, new: float | Bound | None) -> bool:
    """Whether an optional limit went looser: higher, or removed (None is no limit)."""
    before = math.inf if old is None else float(old[0] if isinstance(old, Bound) else old)
    after = math.inf if new is None else float(new[0] if isinstance(new, Bound) else new)
    return after > before


def looser_state(old: TradingState | None, new: TradingState | None) -> bool:
    """Whether a state went looser: toward ``active`` (None, a state not set, counts as ``active``)."""
    return (0 if new is None else new.rank) < (0 if old is None else old.rank)


def _allowed(policy: Policy, symbol: str) -> bool:
    return policy.trading.allow_unlisted or symbol in policy.instruments


def trading_increases(old: Policy, new: Policy) -> set[str]:
    """Return the trading paths whose change lets the system take more risk.

    Names ``trading.<field>``, ``hard_limits.<cap>``, ``strategies.<name>.state``,
    ``instruments.<KEY>.<field>`` and ``instruments.<SYMBOL>`` (newly allowed
    while unlisted instruments are not).
    """
    raised: set[str] = set()
    if looser_state(old.trading.state, new.trading.state):
        raised.add("trading.state")
    if new.trading.allow_unlisted and not old.trading.allow_unlisted:
        raised.add("trading.allow_unlisted")
    for field in TRADING_LIMIT_FIELDS:
        stored = looser_limit(getattr(old.trading, field), getattr(new.trading, field))
        if stored or looser_limit(trading_limit(old, field), trading_limit(new, field)):
            raised.add(f"trading.{field}")
    raised.update(
        f"hard_limits.{field}"
        for field in OPTIONAL_CAP_FIELDS
        if looser_limit(getattr(old.hard_limits, field), getattr(new.hard_limits, field))
    )
    raised.update(
        f"strategies.{name}.state"
        for name in old.strategies.keys() & new.strategies.keys()
        if looser_state(old.strategies[name].state, new.strategies[name].state)
    )
    for key in {DEFAULT_INSTRUMENT} | old.instruments.keys() | new.instruments.keys():
        raised.update(_instrument_increases(old, new, key))
    return raised


def _instrument_increases(old: Policy, new: Policy, key: str) -> set[str]:
    """One entry's fields looser as stored or in force, and the instrument newly allowed."""
    raised: set[str] = set()
    before, after = old.instruments.get(key, _EMPTY), new.instruments.get(key, _EMPTY)
    # ``instruments.default`` in force is what every instrument without an entry trades under.
    rules_before, rules_after = instrument_rules(old, key), instrument_rules(new, key)
    if looser_state(before.state, after.state) or looser_state(rules_before.state.state, rules_after.state.state):
        raised.add(f"instruments.{key}.state")
    for field in INSTRUMENT_LIMIT_FIELDS:
        stored = looser_limit(getattr(before, field), getattr(after, field))
        if stored or looser_limit(getattr(rules_before, field), getattr(rules_after, field)):
            raised.add(f"instruments.{key}.{field}")
    if key != DEFAULT_INSTRUMENT and _allowed(new, key) and not _allowed(old, key):
        raised.add(f"instruments.{key}")
    return raised
