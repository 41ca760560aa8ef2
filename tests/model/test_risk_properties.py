"""'Does this raise risk?' over random pairs of policies, checked against a plain reading of the rule.

The rule: a change raises risk when any limit is looser in the new policy, as
stored (a mode's field, a hard cap, a strategy's override or cooldown) or as it
takes effect (a strategy under every mode both policies have, and the active
mode's limits), or when it adds a mode or a strategy, or turns the kill switch
off. An operator may never make such a change.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from policystore import Actor, PermissionDeniedError, PolicyValidationError, Role
from policystore.model.changes import risk_increases
from policystore.model.modes import AI_FLAGS, LIMIT_FIELDS
from policystore.model.paths import flatten
from policystore.model.policy import STRATEGY_FIELDS, Policy, StrategyConfig
from policystore.model.roles import authorize_change
from policystore.model.validation import build_policy

OPERATOR = Actor("otto", Role.OPERATOR)
MODE_NAMES = ("NORMAL", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE")
STRATEGY_NAMES = ("conservative", "moderate", "aggressive", "defensive")

#: A few values per field, all inside the default hard caps, so that equal and unequal both come up often.
MODE_VALUES: dict[str, list[Any]] = {
    "max_leverage": [1.5, 3.0, 5.0, 7.0],
    "max_risk_pct_per_trade": [0.005, 0.015, 0.03],
    "max_daily_drawdown": [0.03, 0.05, 0.06],
    "max_positions": [5, 10, 30],
    "global_min_confidence": [0.45, 0.5, 0.6],
    "scaling_factor": [0.5, 1.0, 1.5],
    "position_size_cap": [300.0, 1000.0],
}
OVERRIDE_VALUES: dict[str, list[Any]] = {
    "cooldown_seconds": [30.0, 120.0, 600.0],
    "min_confidence": [None, 0.5, 0.55, 0.7],
    "max_leverage": [None, 2.0, 3.0, 8.0],
    "max_risk_pct_per_trade": [None, 0.005, 0.02],
    "max_positions": [None, 5, 40],
    "scaling_factor": [None, 0.5, 1.2],
}
HARD_VALUES: dict[str, list[Any]] = {
    "max_leverage": [10.0, 12.0],
    "max_risk_pct_per_trade": [0.05, 0.08],
    "max_daily_drawdown": [0.1, 0.2],
    "max_positions": [100, 120],
    "global_min_confidence": [0.3, 0.2],
    "scaling_factor": [2.0, 3.0],
    "position_size_cap": [10_000.0, 20_000.0],
}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid policy document: the built-in names, perhaps one custom mode and one custom strategy."""
    modes = list(MODE_NAMES) + (["CUSTOM"] if draw(st.booleans()) else [])
    strategies = list(STRATEGY_NAMES) + (["scalper"] if draw(st.booleans()) else [])
    active = draw(st.booleans())
    return {
        "active_mode": draw(st.sampled_from(modes)),
        "modes": {
            name: {
                **{f: draw(st.sampled_from(v)) for f, v in MODE_VALUES.items()},
                **{flag: draw(st.booleans()) for flag in AI_FLAGS},
            }
            for name in modes
        },
        "strategies": {name: {f: draw(st.sampled_from(v)) for f, v in OVERRIDE_VALUES.items()} for name in strategies},
        "emergency": {"active": active, "reason": "halt" if active else None},
        "hard_limits": {f: draw(st.sampled_from(v)) for f, v in HARD_VALUES.items()},
    }


@st.composite
def policy_pairs(draw: st.DrawFn) -> tuple[Policy, Policy]:
    """A random policy and another: either unrelated, or the first with one to three fields changed."""
    old = draw(documents())
    if draw(st.integers(0, 3)) == 0:
        new = draw(documents())
    else:
        new = copy.deepcopy(old)
        for _ in range(draw(st.integers(1, 3))):
            mutate(draw, new)
    try:
        return build_policy(old), build_policy(new)
    except PolicyValidationError:
        reject()  # a change that makes no valid policy (removing the active mode)


def mutate(draw: st.DrawFn, data: dict[str, Any]) -> None:
    """Change one thing in a document: a field, the active mode, the kill switch, a custom mode or strategy."""
    kind = draw(st.sampled_from(["mode", "strategy", "strategy", "hard", "active", "emergency", "custom"]))
    if kind == "mode":
        mode = data["modes"][draw(st.sampled_from(sorted(data["modes"])))]
        field = draw(st.sampled_from(sorted(MODE_VALUES)))
        mode[field] = draw(st.sampled_from(MODE_VALUES[field]))
    elif kind == "strategy":
        strategy = data["strategies"][draw(st.sampled_from(sorted(data["strategies"])))]
        field = draw(st.sampled_from(sorted(OVERRIDE_VALUES)))
        strategy[field] = draw(st.sampled_from(OVERRIDE_VALUES[field]))
    elif kind == "hard":
        field = draw(st.sampled_from(sorted(HARD_VALUES)))
        data["hard_limits"][field] = draw(st.sampled_from(HARD_VALUES[field]))
    elif kind == "active":
        data["active_mode"] = draw(st.sampled_from(sorted(data["modes"])))
    elif kind == "emergency":
        active = not data["emergency"]["active"]
        data["emergency"] = {"active": active, "reason": "halt" if active else None}
    else:
        extra = draw(documents())
        for section, name in (("modes", "CUSTOM"), ("strategies", "scalper")):
            if name in data[section]:
                del data[section][name]
            elif name in extra[section]:
                data[section][name] = extra[section][name]


def _looser(mode_field: str, old: Any, new: Any) -> bool:
    """Looser, with None standing for "no limit of its own" (the loosest there is)."""
    loose = math.inf if LIMIT_FIELDS[mode_field] > 0 else -math.inf
    before, after = (loose if old is None else old), (loose if new is None else new)
    return after > before if LIMIT_FIELDS[mode_field] > 0 else after < before


def loosened(old: Policy, new: Policy) -> list[str]:
    """Every limit looser in ``new``, read directly from the rule; named as risk_increases names them."""
    found = {f"modes.{m}" for m in new.modes.keys() - old.modes.keys()}
    found |= {f"strategies.{s}" for s in new.strategies.keys() - old.strategies.keys()}
    pairs = [(f"modes.{m}", old.modes[m], new.modes[m]) for m in old.modes.keys() & new.modes.keys()]
    pairs += [("hard_limits", old.hard_limits, new.hard_limits), ("risk", old.risk, new.risk)]
    for prefix, before, after in pairs:
        found |= {f"{prefix}.{f}" for f in LIMIT_FIELDS if _looser(f, getattr(before, f), getattr(after, f))}
    for name in old.strategies.keys() & new.strategies.keys():
        found |= strategy_loosened(name, old, new)
    if old.emergency.active and not new.emergency.active:
        found.add("emergency.active")
    return sorted(found)


def strategy_loosened(name: str, old: Policy, new: Policy) -> set[str]:
    """A strategy's paths looser in ``new``: stored, effective under the active mode, and under every common mode."""
    stored_old, stored_new = old.strategies[name], new.strategies[name]
    found = set()
    if stored_new.cooldown_seconds < stored_old.cooldown_seconds:
        found.add(f"strategies.{name}.cooldown_seconds")
    effective = [(flatten(old), flatten(new))]  # the active mode of each
    effective += [
        (flatten_strategy(name, old, mode), flatten_strategy(name, new, mode))
        for mode in old.modes.keys() & new.modes.keys()
    ]
    for field, mode_field in STRATEGY_FIELDS.items():
        path = f"strategies.{name}.{field}"
        if mode_field is not None and (
            _looser(mode_field, getattr(stored_old, field), getattr(stored_new, field))
            or any(_looser(mode_field, a[path], b[path]) for a, b in effective)
        ):
            found.add(path)
    return found


def flatten_strategy(name: str, policy: Policy, mode: str) -> dict[str, Any]:
    """A strategy's effective values under ``mode`` of ``policy``, by path."""
    config = StrategyConfig.derive(name, policy.strategies[name], policy.modes[mode])
    return {f"strategies.{name}.{field}": getattr(config, field) for field in STRATEGY_FIELDS}


class TestRiskIncreasesProperties:
    """risk_increases agrees with the rule on random pairs, and an operator can never loosen."""

    @settings(max_examples=250, deadline=None)
    @given(pair=policy_pairs())
    def test_any_looser_limit_is_reported_and_only_then(self, pair: tuple[Policy, Policy]) -> None:
        """A looser stored or effective limit, under any mode, is always reported; nothing else is."""
        old, new = pair
        assert loosened(old, new) == risk_increases(old, new)

    @settings(max_examples=250, deadline=None)
    @given(pair=policy_pairs())
    def test_operator_never_allowed_a_looser_limit(self, pair: tuple[Policy, Policy]) -> None:
        """Whenever any limit is looser, an operator's write is refused; otherwise it is allowed."""
        old, new = pair
        if loosened(old, new):
            with pytest.raises(PermissionDeniedError) as caught:
                authorize_change(OPERATOR, old, new, "this change")
            assert "admin" == caught.value.required_role
        else:
            authorize_change(OPERATOR, old, new, "this change")
