"""'Does this raise risk?' for the trading states and controls, over random changes built to a known direction.

Each example starts from a random valid policy with random trading controls,
applies up to four steps that each tighten one field (a stricter state, a
lower or newly set limit, a narrower collar, fewer allowed instruments, a lower
cap) and judges the result against the start; some examples then take one step
that loosens one field the start held (a state back to active, a limit or cap
removed, unlisted instruments allowed, an instrument newly allowed). Tightening
steps are chosen against the values in force, so they tighten what applies as
well as what is stored. The rule: only-tightening changes are always an
operator's to make, and any loosening one never is.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policystore import Actor, PermissionDeniedError, PolicyValidationError, Role
from policystore.model.changes import risk_increases
from policystore.model.policy import default_policy
from policystore.model.roles import authorize_change
from policystore.model.validation import build_policy

OPERATOR = Actor("otto", Role.OPERATOR)
STATES = ("active", "reducing", "halted")
STRATEGIES = ("conservative", "moderate", "aggressive", "defensive")
KEYS = ("default", "BTC", "ETH")
TRADING_VALUES: dict[str, list[Any]] = {
    "max_orders_per_minute": [10, 30, 60, 120],
    "max_daily_loss": [200.0, 500.0, 1000.0],
    "max_gross_exposure": [2e4, 5e4, 1e5],
}
INSTRUMENT_VALUES: dict[str, list[Any]] = {
    "max_order_notional": [1e3, 5e3, 1e4],
    "max_order_quantity": [1.0, 5.0, 10.0],
    "max_position_notional": [2e3, 1e4, 3e4],
    "price_collar": [0.01, 0.05, 0.1],
}
#: Every cap is at or above every value of the limit it bounds, so random documents stay valid.
CAP_VALUES: dict[str, list[Any]] = {
    "max_order_notional": [1e4, 2e4],
    "max_position_notional": [3e4, 5e4],
    "max_gross_exposure": [1e5, 2e5],
    "max_daily_loss": [1000.0, 2000.0],
    "max_orders_per_minute": [120, 240],
}
INF = float("inf")


def rank(state: str | None) -> int:
    """active (or not set) 0, reducing 1, halted 2."""
    return STATES.index(state or "active")


def maybe(draw: st.DrawFn, values: list[Any]) -> Any:
    """One of ``values``, or None about a third of the time."""
    return draw(st.sampled_from([None, *values, *values]))


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """The built-in policy with random states, firm-wide limits, caps and instrument entries."""
    data = copy.deepcopy(default_policy().document())
    data["trading"] = {"state": draw(st.sampled_from(STATES)), "allow_unlisted": draw(st.booleans())}
    data["trading"].update({f: maybe(draw, v) for f, v in TRADING_VALUES.items()})
    data["hard_limits"].update({f: maybe(draw, v) for f, v in CAP_VALUES.items()})
    for name in STRATEGIES:
        data["strategies"][name]["state"] = draw(st.sampled_from(STATES))
    for key in KEYS:
        if draw(st.booleans()):
            entry = {"state": maybe(draw, list(STATES))}
            entry.update({f: maybe(draw, v) for f, v in INSTRUMENT_VALUES.items()})
            data["instruments"][key] = entry
    return data


def in_force(data: dict[str, Any], key: str, field: str) -> float:
    """An instrument limit in force, read plainly: own, else the default's, else the cap, else none (inf)."""
    for source in (data["instruments"].get(key, {}), data["instruments"].get("default", {})):
        if source.get(field) is not None:
            return float(source[field])
    cap = data["hard_limits"].get(field)
    return INF if cap is None else float(cap)


def state_in_force(data: dict[str, Any], key: str) -> int:
    """An instrument's state in force, as a rank: own, else the default's, else active."""
    own = data["instruments"].get(key, {}).get("state")
    return rank(own if own is not None else data["instruments"].get("default", {}).get("state"))


def tighten(draw: st.DrawFn, data: dict[str, Any]) -> None:  # noqa: C901, PLR0912 - one branch per kind of field
    """Make one field stricter, against the values in force; do nothing when that field cannot be."""
    kind = draw(st.sampled_from(["firm", "strategy", "state", "limit", "trading", "cap", "unlisted"]))
    trading = data["trading"]
    if kind == "firm" and rank(trading["state"]) < 2:
        trading["state"] = STATES[draw(st.integers(rank(trading["state"]) + 1, 2))]
    elif kind == "strategy":
        strategy = data["strategies"][draw(st.sampled_from(STRATEGIES))]
        if rank(strategy["state"]) < 2:
            strategy["state"] = STATES[draw(st.integers(rank(strategy["state"]) + 1, 2))]
    elif kind in {"state", "limit"}:
        key = draw(st.sampled_from(KEYS))
        if key != "default" and key not in data["instruments"] and not trading["allow_unlisted"]:
            return  # a new entry would allow an instrument that was not
        entry = data["instruments"].setdefault(key, {})
        if kind == "state":
            floor = max(state_in_force(data, key), rank(entry.get("state")) + 1)
            if floor <= 2:
                entry["state"] = STATES[draw(st.integers(floor, 2))]
        else:
            field = draw(st.sampled_from(sorted(INSTRUMENT_VALUES)))
            ceiling = in_force(data, key, field) if key != "default" else in_force(data, "default", field)
            choices = [v for v in INSTRUMENT_VALUES[field] if v <= ceiling]
            if choices:
                entry[field] = draw(st.sampled_from(choices))
    elif kind == "trading":
        field = draw(st.sampled_from(sorted(TRADING_VALUES)))
        cap = data["hard_limits"].get(field)
        ceiling = trading.get(field) if trading.get(field) is not None else (INF if cap is None else cap)
        choices = [v for v in TRADING_VALUES[field] if v <= ceiling]
        if choices:
            trading[field] = draw(st.sampled_from(choices))
    elif kind == "cap":
        field = draw(st.sampled_from(sorted(CAP_VALUES)))
        current = data["hard_limits"].get(field)
        choices = [v for v in CAP_VALUES[field] if current is None or v < current]
        if choices:
            data["hard_limits"][field] = draw(st.sampled_from(choices))
    elif kind == "unlisted":
        trading["allow_unlisted"] = False


#: One loosening step: the path it loosens, where in the document it writes, and what.
Step = tuple[str, tuple[str, ...], Any]


def put(data: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    """Write ``value`` at ``where`` in ``data``, making the entries on the way."""
    node = data
    for part in where[:-1]:
        node = node.setdefault(part, {})
    node[where[-1]] = value


def stored_loosening(start: dict[str, Any]) -> list[Step]:
    """Steps that loosen a value as stored: a state back to active, a limit or cap removed, unlisted allowed."""
    trading = start["trading"]
    steps: list[Step] = []
    if rank(trading["state"]) > 0:
        steps.append(("trading.state", ("trading", "state"), "active"))
    if not trading["allow_unlisted"]:
        steps.append(("trading.allow_unlisted", ("trading", "allow_unlisted"), True))
    steps += [(f"trading.{f}", ("trading", f), None) for f in TRADING_VALUES if trading.get(f) is not None]
    caps = start["hard_limits"]
    steps += [(f"hard_limits.{f}", ("hard_limits", f), None) for f in CAP_VALUES if caps.get(f) is not None]
    steps += [
        (f"strategies.{n}.state", ("strategies", n, "state"), "active")
        for n in STRATEGIES
        if rank(start["strategies"][n]["state"]) > 0
    ]
    steps += [
        (f"instruments.{key}.{field}", ("instruments", key, field), None)
        for key, entry in start["instruments"].items()
        for field, value in entry.items()
        if value is not None and (field != "state" or rank(value) > 0)
    ]
    return steps


def looser_in_force(start: dict[str, Any]) -> list[Step]:
    """Steps that tighten nothing as stored but loosen what applies: an own value looser than the default's."""
    steps: list[Step] = []
    for key in ("BTC", "ETH"):
        if key not in start["instruments"] and not start["trading"]["allow_unlisted"]:
            continue  # a new entry there is an instrument newly allowed, offered separately
        own = start["instruments"].get(key, {})
        if own.get("state") is None and state_in_force(start, key) > 0:
            steps.append((f"instruments.{key}.state", ("instruments", key, "state"), "active"))
        for field, values in INSTRUMENT_VALUES.items():
            cap = start["hard_limits"].get(field)
            looser = [v for v in values if in_force(start, key, field) < v <= (INF if cap is None else cap)]
            if own.get(field) is None and looser:
                steps.append((f"instruments.{key}.{field}", ("instruments", key, field), looser[-1]))
    return steps


def listing_loosening(start: dict[str, Any], data: dict[str, Any]) -> list[Step]:
    """Steps that allow an instrument that was not allowed: an entry added while unlisted ones are refused."""
    if start["trading"]["allow_unlisted"] or data["trading"]["allow_unlisted"]:
        return []
    return [
        (f"instruments.{key}", ("instruments", key), {"state": "halted"})
        for key in ("BTC", "ETH")
        if key not in start["instruments"] and key not in data["instruments"]
    ]


def loosen(draw: st.DrawFn, start: dict[str, Any], data: dict[str, Any]) -> str | None:
    """Make one field looser than ``start`` held it; return its path, or None when no such step was found."""
    # A kind first, then a step of it: steps that loosen only what is in force are few but matter most.
    kinds = [
        steps for steps in (stored_loosening(start), looser_in_force(start), listing_loosening(start, data)) if steps
    ]
    if not kinds:
        return None
    path, where, value = draw(st.sampled_from(draw(st.sampled_from(kinds))))
    put(data, where, value)
    return path


@st.composite
def changes(draw: st.DrawFn) -> tuple[Any, Any, str | None]:
    """A start, the result of tightening steps (and perhaps one loosening step), and the loosened path."""
    start = draw(documents())
    data = copy.deepcopy(start)
    for _ in range(draw(st.integers(0, 4))):
        tighten(draw, data)
    loosened = loosen(draw, start, data) if draw(st.booleans()) else None
    try:
        return build_policy(start), build_policy(data), loosened
    except PolicyValidationError:
        assume(condition=False)
        raise


class TestTradingRiskProperties:
    """Tightening is always an operator's; loosening any trading field never is."""

    @settings(max_examples=400, deadline=None)
    @given(change=changes())
    def test_tightening_allowed_and_loosening_refused_for_an_operator(
        self, change: tuple[Any, Any, str | None]
    ) -> None:
        """Only-tightening: no path raised, operator allowed. One field loosened: its path raised, operator refused."""
        old, new, loosened = change
        raised = risk_increases(old, new)
        if loosened is None:
            assert [] == raised
            authorize_change(OPERATOR, old, new, "this change")
        else:
            assert loosened in raised
            with pytest.raises(PermissionDeniedError) as caught:
                authorize_change(OPERATOR, old, new, "this change")
            assert "admin" == caught.value.required_role

    @settings(max_examples=200, deadline=None)
    @given(change=changes())
    def test_the_reverse_of_a_tightening_change_raises_risk(self, change: tuple[Any, Any, str | None]) -> None:
        """Undoing a tightening change that changed anything is loosening: an admin's."""
        old, new, loosened = change
        assume(loosened is None and old != new)
        assert [] != risk_increases(new, old)
