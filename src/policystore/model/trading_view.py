"""The trading states and controls as readers are shown them: the path a state is written at, and what is in force.

The command line, the HTTP API, the dashboard and the metrics all show the
same facts, so they are made here once, from :mod:`policystore.model.controls`:

* :func:`state_path`: the path ``policystore trading`` and ``POST /v1/trading``
  write, for the firm, a strategy or an instrument;
* :func:`scope_of`: which scope a deciding path belongs to (``firm``,
  ``kill switch``, ``strategy``, ``instrument``, ``default``);
* :func:`in_force`: every state and limit in force with the path that set it,
  as JSON-ready data; :func:`path_facts`: the same for one path.
"""

from __future__ import annotations

from typing import Any, Final

from policystore.errors import FieldError, PolicyValidationError
from policystore.model.controls import (
    Bound,
    StateVerdict,
    firm_state,
    instrument_rules,
    strictest_state,
    trading_limit,
)
from policystore.model.paths import suggest
from policystore.model.policy import Policy
from policystore.model.trading import DEFAULT_INSTRUMENT, INSTRUMENT_LIMIT_FIELDS, TRADING_LIMIT_FIELDS

__all__ = [
    "FIRM_STATE_PATH",
    "bound_json",
    "in_force",
    "path_facts",
    "scope_of",
    "state_path",
    "strategy_state",
    "verdict_json",
]

#: The firm-wide state a person sets.
FIRM_STATE_PATH: Final = "trading.state"
#: The path that raises the firm-wide state while the kill switch is on.
_KILL_SWITCH: Final = "emergency.active"


def state_path(policy: Policy, *, strategy: str | None = None, symbol: str | None = None) -> str:
    """Return the path that holds the state of one scope: the firm's, a strategy's or an instrument's.

    A symbol is not checked here: the write's validation names the symbol
    pattern, as for every other instrument path. ``default`` names the state of
    every instrument without one of its own.

    Args:
        policy: the version the write is based on (for its strategies).
        strategy: a strategy's name, or None.
        symbol: an instrument's symbol (or ``default``), or None.

    Returns:
        ``trading.state``, ``strategies.<name>.state`` or ``instruments.<SYMBOL>.state``.

    Raises:
        PolicyValidationError: both a strategy and a symbol were given, or the
            policy has no such strategy (nothing is written then).
    """
    if strategy is not None and symbol is not None:
        raise PolicyValidationError(
            [FieldError("scope", "name a strategy or a symbol, not both: a state belongs to one scope")]
        )
    if symbol is not None:
        return f"instruments.{symbol}.state"
    if strategy is None:
        return FIRM_STATE_PATH
    if strategy not in policy.strategies:
        names = sorted(policy.strategies)
        near = suggest(strategy, names, limit=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        message = f"the policy has no strategy {strategy!r}{hint}; its strategies are {', '.join(names)}"
        raise PolicyValidationError([FieldError(f"strategies.{strategy}", message)])
    return f"strategies.{strategy}.state"


def scope_of(path: str) -> str:
    """Name the scope a state's deciding path belongs to.

    Args:
        path: a path a :class:`~policystore.model.controls.StateVerdict` names.

    Returns:
        ``kill switch`` (``emergency.active``), ``firm`` (``trading.*``),
        ``strategy``, ``default`` (``instruments.default.state``) or ``instrument``.
    """
    if path == _KILL_SWITCH:
        return "kill switch"
    head, _, rest = path.partition(".")
    if head == "strategies":
        return "strategy"
    if head == "instruments":
        return "default" if rest.startswith(f"{DEFAULT_INSTRUMENT}.") else "instrument"
    return "firm"


def strategy_state(policy: Policy, name: str) -> StateVerdict:
    """Return the state a strategy's orders meet before any instrument's: the stricter of the firm's and its own.

    Args:
        policy: the snapshot.
        name: a strategy the policy holds.

    Returns:
        The state and the path that decided it (the firm's on a tie: the wider scope is named).

    Raises:
        KeyError: the policy has no such strategy.
    """
    firm = firm_state(policy)
    own = policy.strategies[name].state
    return StateVerdict(own, f"strategies.{name}.state") if own.rank > firm.state.rank else firm


def verdict_json(verdict: StateVerdict) -> dict[str, str]:
    """Return a state in force as ``{"state", "set_by", "scope"}``."""
    return {"state": verdict.state.value, "set_by": verdict.path, "scope": scope_of(verdict.path)}


def bound_json(bound: Bound | None) -> dict[str, Any] | None:
    """Return a limit in force as ``{"value", "set_by"}``, or None when none applies."""
    return None if bound is None else {"value": bound.value, "set_by": bound.path}


def in_force(policy: Policy) -> dict[str, Any]:
    """Return every trading state and limit in force, each with the path that set it.

    Args:
        policy: the snapshot.

    Returns:
        ``{"trading": {...}, "instruments": {...}}``. ``trading`` holds
        ``effective_state`` (the firm's, kill switch folded in), each firm-wide
        limit, and ``strategies``: for each strategy, the state its orders meet
        before any instrument's (the stricter of the firm's and its own).
        ``instruments`` holds ``default`` and each instrument with an entry:
        ``listed``, ``state`` (its own, else the default's), each limit, and
        ``in_force``: the state an order in it meets from any strategy (the
        stricter of the firm's and the instrument's). Every state is a
        :func:`verdict_json`, every limit a :func:`bound_json`.
    """
    firm = firm_state(policy)
    trading: dict[str, Any] = {"effective_state": verdict_json(firm)}
    for field in TRADING_LIMIT_FIELDS:
        trading[field] = bound_json(trading_limit(policy, field))
    trading["strategies"] = {name: verdict_json(strategy_state(policy, name)) for name in policy.strategies}
    instruments: dict[str, Any] = {}
    for key in (DEFAULT_INSTRUMENT, *sorted(policy.instruments.keys() - {DEFAULT_INSTRUMENT})):
        rules = instrument_rules(policy, key)
        entry: dict[str, Any] = {"listed": rules.listed, "state": verdict_json(rules.state)}
        entry.update({field: bound_json(getattr(rules, field)) for field in INSTRUMENT_LIMIT_FIELDS})
        entry["in_force"] = verdict_json(strictest_state(policy, key))
        instruments[key] = entry
    return {"trading": trading, "instruments": instruments}


def path_facts(policy: Policy, path: str) -> dict[str, Any]:
    """Return what ``explain`` and ``GET /v1/values`` add for a trading path: what set it, the state in force.

    Args:
        policy: the snapshot the explanation was made from.
        path: the explained path.

    Returns:
        ``set_by`` (the path whose value answers, or None when no limit
        applies) for an instrument's field or a firm-wide limit; ``in_force``
        (a state with the path and scope that decided it) for a state; nothing
        for any other path.
    """
    head, _, rest = path.partition(".")
    if head not in {"instruments", "trading", "strategies"}:
        return {}  # decided before working out the view: GET /v1/values asks this at every read
    view = in_force(policy)
    if head == "instruments":
        key, _, field = rest.rpartition(".")
        return _entry_facts(view["instruments"].get(key), field)
    trading = view["trading"]
    if head == "trading" and rest in {"state", "effective_state"}:
        return {"in_force": trading["effective_state"]}
    if head == "trading" and rest in TRADING_LIMIT_FIELDS:
        return {"set_by": _source(trading[rest])}
    name, _, field = rest.partition(".")
    if head == "strategies" and field == "state" and name in trading["strategies"]:
        return {"in_force": trading["strategies"][name]}
    return {}


def _source(bound: dict[str, Any] | None) -> str | None:
    return None if bound is None else str(bound["set_by"])


def _entry_facts(entry: dict[str, Any] | None, field: str) -> dict[str, Any]:
    """One instrument entry's facts for ``field``: what set it and, for its state, the state in force."""
    if entry is None:
        return {}
    if field == "state":
        return {"set_by": entry["state"]["set_by"], "in_force": entry["in_force"]}
    if field in INSTRUMENT_LIMIT_FIELDS:
        return {"set_by": _source(entry[field])}
    return {}
