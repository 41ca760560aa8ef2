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

import math
import threading
from dataclasses import dataclass
from typing import Final, NamedTuple

from policystore._records import maker
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
    "rules_for",
    "strictest_state",
    "trading_limit",
]

_EMPTY: Final = InstrumentLimits()
_ACTIVE: Final = TradingState.ACTIVE
_REDUCING: Final = TradingState.REDUCING
_DEFAULT_STATE: Final = f"instruments.{DEFAULT_INSTRUMENT}.state"


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
    """One instrument's state and limits in force (made by :func:`instrument_rules` and :class:`TradingRules`).

    Attributes:
        symbol: the instrument.
        listed: True when it has an entry of its own (``instruments.<SYMBOL>``).
        state: its state, with the path that set it.
        max_order_notional, max_order_quantity, max_position_notional, price_collar:
            each limit in force with its path, or None when none applies.
        opening_notional: the largest notional an order that opens a position
            (none held) may have under the order and position limits (inf: none).
        opening_quantity: the largest quantity of one order (inf: none).
        opening_caps: the notional limits of an order that opens a position, each as
            ``(field name, value)``: ``max_order_notional``, then ``max_position_notional``,
            those that apply (what a sizer sizes within).
    """

    symbol: str
    listed: bool
    state: StateVerdict
    max_order_notional: Bound | None
    max_order_quantity: Bound | None
    max_position_notional: Bound | None
    price_collar: Bound | None
    opening_notional: float
    opening_quantity: float
    opening_caps: tuple[tuple[str, float], ...]


# Every instrument a consumer meets under a snapshot is resolved once, on its first signal: built
# without a call per field (see policystore._records).
_instrument_record = maker(InstrumentRules)


def _instrument(  # noqa: PLR0917 - InstrumentRules' own fields, in order
    symbol: str,
    listed: bool,
    state: StateVerdict,
    order_notional: Bound | None,
    order_quantity: Bound | None,
    position_notional: Bound | None,
    collar: Bound | None,
) -> InstrumentRules:
    """Build an instrument's rules, with the figures every order is compared with first derived from its limits."""
    caps: tuple[tuple[str, float], ...] = ()
    if order_notional is not None:
        caps = (("max_order_notional", order_notional.value),)
    if position_notional is not None:
        caps = (*caps, ("max_position_notional", position_notional.value))
    opening = math.inf
    for _, value in caps:
        opening = min(opening, value)
    quantity = math.inf if order_quantity is None else order_quantity.value
    return _instrument_record(
        symbol, listed, state, order_notional, order_quantity, position_notional, collar, opening, quantity, caps
    )


class _Fallback(NamedTuple):
    """What an instrument field without a value of its own falls back to, the same for every instrument."""

    state: StateVerdict | None  # instruments.default.state, if set
    limits: tuple[Bound | None, ...]  # by INSTRUMENT_LIMIT_FIELDS: the default entry's, else the hard cap
    unlisted: StateVerdict  # the state of a symbol without an entry: the default's, else active


def _fallback(policy: Policy) -> _Fallback:
    default = policy.instruments.get(DEFAULT_INSTRUMENT, _EMPTY)
    state = None if default.state is None else StateVerdict(default.state, _DEFAULT_STATE)
    limits: list[Bound | None] = []
    for field in INSTRUMENT_LIMIT_FIELDS:
        value = getattr(default, field)
        limits.append(_cap(policy, field) if value is None else Bound(value, f"instruments.default.{field}"))
    return _Fallback(state, tuple(limits), StateVerdict(_ACTIVE, _DEFAULT_STATE) if state is None else state)


def _unlisted(symbol: str, fallback: _Fallback) -> InstrumentRules:
    """The rules of a symbol without an entry of its own: the default entry's in force."""
    return _instrument(symbol, False, fallback.unlisted, *fallback.limits)  # noqa: FBT003 - not listed


def _own(symbol: str, entry: InstrumentLimits, fallback: _Fallback) -> InstrumentRules:
    """The rules of a symbol with an entry of its own (``default`` included): its values, else the fallbacks."""
    if entry.state is not None:
        state = StateVerdict(entry.state, f"instruments.{symbol}.state")
    elif fallback.state is not None:
        state = fallback.state
    else:
        state = StateVerdict(_ACTIVE, f"instruments.{symbol}.state")
    # A path is made only for a value the entry sets itself: the others share the fallback's.
    order_notional, order_quantity, position_notional, collar = fallback.limits
    if (value := entry.max_order_notional) is not None:
        order_notional = Bound(value, f"instruments.{symbol}.max_order_notional")
    if (value := entry.max_order_quantity) is not None:
        order_quantity = Bound(value, f"instruments.{symbol}.max_order_quantity")
    if (value := entry.max_position_notional) is not None:
        position_notional = Bound(value, f"instruments.{symbol}.max_position_notional")
    if (value := entry.price_collar) is not None:
        collar = Bound(value, f"instruments.{symbol}.price_collar")
    listed = symbol != DEFAULT_INSTRUMENT
    return _instrument(symbol, listed, state, order_notional, order_quantity, position_notional, collar)


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
    fallback = _fallback(policy)
    return _unlisted(symbol, fallback) if own is None else _own(symbol, own, fallback)


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
        resolved: the instruments :meth:`instrument` resolved so far, by symbol (read it, never
            write it): a consumer that decides every signal looks a symbol up here first.
    """

    __slots__ = (
        "_fallback",
        "_strategy_states",
        "_verdicts",
        "allow_unlisted",
        "firm",
        "max_daily_loss",
        "max_gross_exposure",
        "max_orders_per_minute",
        "policy",
        "quiet",
        "resolved",
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
        # What every instrument falls back to, resolved once: a symbol's own rules are then its own values alone.
        self._fallback = _fallback(policy)
        self.resolved: dict[str, InstrumentRules] = {}
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
        rules = self.resolved.get(symbol)
        if rules is None:
            own = self.policy.instruments.get(symbol)
            fallback = self._fallback
            rules = _unlisted(symbol, fallback) if own is None else _own(symbol, own, fallback)
            self.resolved[symbol] = rules
        return rules

    def strategy_state(self, strategy: str) -> StateVerdict:
        """Return the stricter of the firm's state and ``strategy``'s (an unknown strategy has none)."""
        verdict = self.firm
        own = self._strategy_states.get(strategy)
        if own is not None and own.state.rank > verdict.state.rank:
            verdict = own
        return verdict

    def state_for(self, symbol: str, strategy: str) -> StateVerdict:
        """Return the strictest state for an order in ``symbol`` from ``strategy`` (see :func:`strictest_state`).

        Resolved once per pair: every signal asks.
        """
        key = (symbol, strategy)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self.strategy_state(strategy)
            instrument = self.instrument(symbol).state
            if instrument.state.rank > verdict.state.rank:
                verdict = instrument
            self._verdicts[key] = verdict
        return verdict


#: The rules of the last snapshots consumers asked for, by the snapshot's identity (see rules_for).
_shared: dict[int, TradingRules] = {}
_shared_lock = threading.Lock()
#: How many snapshots' rules are kept: a process may decide from several stores at once.
_SHARED_KEPT: Final = 8


def rules_for(policy: Policy) -> TradingRules:
    """Return the trading rules of ``policy``: the same object for every consumer deciding from this snapshot.

    An executor and its sizer decide each signal from one snapshot; sharing its
    rules resolves each instrument once for both, on the first signal in it. The
    rules of the last few snapshots are kept, each with its snapshot, so the key
    (the snapshot's identity) cannot be reused while kept; a new version is a
    new snapshot, so a change of the policy is never answered by older rules.

    Args:
        policy: the snapshot.

    Returns:
        Its rules.
    """
    rules = _shared.get(id(policy))
    if rules is not None and rules.policy is policy:
        return rules
    rules = TradingRules(policy)
    with _shared_lock:  # only on a snapshot's first use: several threads may decide at once
        while len(_shared) >= _SHARED_KEPT:
            del _shared[next(iter(_shared))]  # the oldest first
        _shared[id(policy)] = rules
    return rules
