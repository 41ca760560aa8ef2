"""Which changes to a policy raise risk: modes, hard caps, strategies, the kill switch and approvals.

A change raises risk when it lets the system take more: a limit made looser
anywhere it binds, new room to trade in, fewer approvals, or the kill switch
turned off. The trading states and controls are compared by
:mod:`policystore.model.trading_risk`, the other half of :func:`risk_increases`.
The store asks this to decide who may make a change (only admins raise risk)
and whether a change notice may be installed without a confirming read.
"""

from __future__ import annotations

from typing import Any

from policystore.model.change_control import APPROVALS_PATH
from policystore.model.modes import LIMIT_FIELDS
from policystore.model.policy import STRATEGY_FIELDS, Policy, StrategyConfig
from policystore.model.trading_risk import trading_increases

__all__ = ["risk_increases"]


def _looser(field: str, old: Any, new: Any) -> bool:
    return bool(new > old) if LIMIT_FIELDS[field] > 0 else bool(new < old)


def _override_loosened(mode_field: str | None, old: Any, new: Any) -> bool:
    """Whether a stored strategy override went looser: removed, or moved the loose way.

    A removed override (None) falls back to the mode, which it could only have
    tightened; setting one where none was can only tighten.
    """
    if old is None:
        return False
    if new is None:
        return True
    return bool(new < old) if mode_field is None else _looser(mode_field, old, new)


def _strategy_increases(old: Policy, new: Policy) -> set[str]:
    """Strategy paths made looser, in the stored overrides or in the effective config under any mode.

    Stored values are compared because an override the active mode hides today
    (a 3.0 leverage cap under a 3.0 mode) binds under every looser mode; the
    effective values under every mode both policies have catch the rest.
    """
    raised: set[str] = set()
    modes = [(old.modes[m], new.modes[m]) for m in old.modes.keys() & new.modes.keys()]
    modes.append((old.risk, new.risk))  # a mode switch: the active mode of each side
    for name in new.strategies.keys() & old.strategies.keys():
        before, after = old.strategies[name], new.strategies[name]
        for field, mode_field in STRATEGY_FIELDS.items():
            if _override_loosened(mode_field, getattr(before, field), getattr(after, field)):
                raised.add(f"strategies.{name}.{field}")
        for old_mode, new_mode in modes:
            before_s = StrategyConfig.derive(name, before, old_mode)
            after_s = StrategyConfig.derive(name, after, new_mode)
            for field, mode_field in STRATEGY_FIELDS.items():
                if mode_field is not None and _looser(mode_field, getattr(before_s, field), getattr(after_s, field)):
                    raised.add(f"strategies.{name}.{field}")
    return raised


def risk_increases(old: Policy, new: Policy) -> list[str]:
    """Return the paths whose change lets the system take more risk, sorted.

    More risk is any limit made looser: higher leverage, risk per trade,
    drawdown, positions, size cap or scaling, or lower minimum confidence, in
    any mode, in the active mode's effective limits (a mode switch), in the hard
    caps, or in a strategy; adding a mode or a strategy; and turning the kill
    switch off.

    A strategy is compared both as stored and as it takes effect under every
    mode: removing an override, or moving it the loose way, raises risk even
    while the active mode is stricter still and hides it, since it binds again
    under any looser mode. A shorter cooldown raises risk too.

    Removing a mode or a strategy lowers risk: it takes away room to trade in
    (a signal for a strategy that is gone is refused). The active mode and the
    built-in ones cannot be removed; validation refuses that.

    The trading states and controls are compared as stored and in force (see
    :mod:`policystore.model.trading_risk`): a state moved toward ``active``, a
    limit or collar raised or removed, a hard cap raised or removed, and more
    instruments allowed all raise risk.

    Fewer approvals required (``change_control.approvals_required`` lowered)
    raises risk too: it lets risk be raised by fewer people.
    """
    raised: set[str] = set()
    for name, mode in new.modes.items():
        before = old.modes.get(name)
        if before is None:
            # A new mode or strategy is new room to take risk in; otherwise one
            # could be removed and added back looser in two lowering-looking steps.
            raised.add(f"modes.{name}")
        else:
            raised.update(f"modes.{name}.{f}" for f in LIMIT_FIELDS if _looser(f, getattr(before, f), getattr(mode, f)))
    raised.update(f"strategies.{name}" for name in new.strategies.keys() - old.strategies.keys())
    raised.update(f"risk.{f}" for f in LIMIT_FIELDS if _looser(f, getattr(old.risk, f), getattr(new.risk, f)))
    raised.update(
        f"hard_limits.{f}" for f in LIMIT_FIELDS if _looser(f, getattr(old.hard_limits, f), getattr(new.hard_limits, f))
    )
    raised.update(_strategy_increases(old, new))
    raised.update(trading_increases(old, new))
    if new.change_control.approvals_required < old.change_control.approvals_required:
        raised.add(APPROVALS_PATH)
    if old.emergency.active and not new.emergency.active:
        raised.add("emergency.active")
    return sorted(raised)
