"""Dot paths: every readable value of a policy, flattened once per version.

The read path of the store is one dict lookup in the table :func:`flatten`
builds, so everything a path can answer is computed here, once.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any, Final

from policystore.model.controls import firm_state, instrument_rules, trading_limit
from policystore.model.modes import AI_FLAGS, LIMIT_FIELDS, MODE_FIELDS
from policystore.model.policy import RECORD_FIELDS, STRATEGY_FIELDS, HardLimits, Policy
from policystore.model.trading import DEFAULT_INSTRUMENT, INSTRUMENT_LIMIT_FIELDS, TRADING_LIMIT_FIELDS

__all__ = [
    "EFFECTIVE_STATE_PATH",
    "EMERGENCY_FIELDS",
    "HARD_LIMIT_FIELDS",
    "METADATA_PATHS",
    "OVERRIDES_PATH",
    "Clamp",
    "clamped_override",
    "flatten",
    "reflatten",
    "suggest",
]

EMERGENCY_FIELDS: Final = ("active", "reason", "activated_at", "activated_by")
HARD_LIMIT_FIELDS: Final = tuple(HardLimits.__dataclass_fields__)
METADATA_PATHS: Final = ("active_mode", *RECORD_FIELDS)
#: The read-only firm-wide state with the kill switch folded in.
EFFECTIVE_STATE_PATH: Final = "trading.effective_state"
#: The read-only list of the expiring changes in force.
OVERRIDES_PATH: Final = "overrides"


@functools.lru_cache(maxsize=1024)
def _keys(section: str, name: str, fields: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Every process flattens every version it installs; the path strings stay the same.
    return tuple((f"{section}.{name}.{field}", field) for field in fields)


_RISK_KEYS: Final = tuple((f"risk.{field}", field) for field in LIMIT_FIELDS)
_AI_KEYS: Final = tuple((f"ai.{flag}", flag) for flag in AI_FLAGS)
_EMERGENCY_KEYS: Final = tuple((f"emergency.{field}", field) for field in EMERGENCY_FIELDS)
_HARD_LIMIT_KEYS: Final = tuple((f"hard_limits.{field}", field) for field in HARD_LIMIT_FIELDS)
_TRADING_LIMIT_KEYS: Final = tuple((f"trading.{field}", field) for field in TRADING_LIMIT_FIELDS)


def flatten(policy: Policy) -> dict[str, Any]:
    """Return every readable path of ``policy`` with its value.

    ``risk.*`` and ``ai.*`` answer for the active mode, and ``strategies.*``
    answer the effective config (overrides clamped, unset fields derived).
    ``trading.*`` and ``instruments.*`` answer what is in force (see
    :mod:`policystore.model.controls`): ``trading.effective_state`` folds the kill
    switch in, an instrument's unset field answers ``instruments.default``'s (or
    the hard cap), and ``instruments.default.*`` is always listed. ``overrides``
    answers the expiring changes the policy holds (a tuple of
    :class:`~policystore.model.policy.Override`).
    """
    values: dict[str, Any] = {}
    _put_own(policy, values)
    _put_active(policy, values)
    for name, mode in policy.modes.items():
        for key, field in _keys("modes", name, MODE_FIELDS):
            values[key] = getattr(mode, field)
    emergency, caps = policy.emergency, policy.hard_limits
    for key, field in _EMERGENCY_KEYS:
        values[key] = getattr(emergency, field)
    for key, field in _HARD_LIMIT_KEYS:
        values[key] = getattr(caps, field)
    _put_trading(policy, values)
    # The expiring changes in force (immutable, shared by every reader of this table).
    values[OVERRIDES_PATH] = policy.overrides
    return values


def _put_trading(policy: Policy, values: dict[str, Any]) -> None:
    """The trading states and controls in force: firm-wide, per strategy and per instrument."""
    trading = policy.trading
    values["trading.state"] = trading.state.value
    values[EFFECTIVE_STATE_PATH] = firm_state(policy).state.value
    values["trading.allow_unlisted"] = trading.allow_unlisted
    for key, field in _TRADING_LIMIT_KEYS:
        bound = trading_limit(policy, field)
        values[key] = None if bound is None else bound.value
    for name, settings in policy.strategies.items():
        values[f"strategies.{name}.state"] = settings.state.value
    symbols = sorted(policy.instruments.keys() - {DEFAULT_INSTRUMENT})
    for symbol in (DEFAULT_INSTRUMENT, *symbols):
        rules = instrument_rules(policy, symbol)
        values[f"instruments.{symbol}.state"] = rules.state.state.value
        for key, field in _keys("instruments", symbol, INSTRUMENT_LIMIT_FIELDS):
            bound = getattr(rules, field)
            values[key] = None if bound is None else bound.value


def reflatten(
    previous_values: dict[str, Any], previous: Policy, policy: Policy, active_tables: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Return ``flatten(policy)``, made from ``previous_values = flatten(previous)``.

    Only for a ``policy`` whose modes, strategies, kill switch, hard limits,
    trading controls and instruments are those of ``previous``: it differs in its own record (version, time,
    author, reason) and perhaps the active mode, as a mode switch does. Every
    process rebuilds its table at every version; this rebuilds only what such
    a version changes.

    Args:
        previous_values: ``flatten(previous)``.
        previous: the policy before.
        policy: the policy now.
        active_tables: the paths that follow the active mode, by mode name, for
            these same modes and strategies; filled as modes are met, and to be
            dropped by the caller when any of them changes.
    """
    values = previous_values.copy()
    _put_own(policy, values)
    if policy.active_mode != previous.active_mode:
        table = active_tables.get(policy.active_mode)
        if table is None:
            table = active_tables[policy.active_mode] = {}
            _put_active(policy, table)
        values.update(table)
    return values


def _put_own(policy: Policy, values: dict[str, Any]) -> None:
    for key in METADATA_PATHS:
        values[key] = getattr(policy, key)


def _put_active(policy: Policy, values: dict[str, Any]) -> None:
    """The paths that follow the active mode: ``risk.*``, ``ai.*`` and the effective strategies."""
    risk = policy.risk
    for key, field in _RISK_KEYS:
        values[key] = getattr(risk, field)
    for key, flag in _AI_KEYS:
        values[key] = getattr(risk, flag)
    for name in policy.strategies:
        effective = policy.strategy(name)
        for key, field in _keys("strategies", name, tuple(STRATEGY_FIELDS)):
            values[key] = getattr(effective, field)


def suggest(path: str, candidates: list[str] | tuple[str, ...], limit: int = 3) -> list[str]:
    """Return up to ``limit`` valid paths closest to ``path``, closest first."""
    found = difflib.get_close_matches(path, candidates, n=limit, cutoff=0.6)
    if not found:
        # A right leaf under a wrong prefix ("risk.max_levrage", "NORMAL.max_leverage")
        # is often closest by its last part.
        leaf = path.rsplit(".", 1)[-1]
        leaves = {c.rsplit(".", 1)[-1]: c for c in sorted(candidates, key=len)}
        found = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=limit, cutoff=0.6)]
    return found


@dataclass(frozen=True, slots=True)
class Clamp:
    """A stored strategy override the active mode overrules, being stricter.

    Attributes:
        override: the stored value.
        mode_path: the path whose value applies instead (``modes.<NAME>.<field>``).
        mode_value: that value.
        detail: the fact in a sentence.
    """

    override: Any
    mode_path: str
    mode_value: Any
    detail: str


def clamped_override(policy: Policy, path: str) -> Clamp | None:
    """Tell whether ``strategies.<name>.<field>`` is a stored override looser than the active mode.

    Such an override is kept as written (it binds once a looser mode is
    active), but the mode's value applies now.

    Returns:
        The clamp, or None when ``path`` is no strategy field, has no override,
        or its override is at least as strict as the mode.
    """
    head, _, rest = path.partition(".")
    name, _, field = rest.partition(".")
    mode_field = STRATEGY_FIELDS.get(field) if head == "strategies" else None
    settings = policy.strategies.get(name) if mode_field is not None else None
    if mode_field is None or settings is None:
        return None
    override = getattr(settings, field)
    mode_value = getattr(policy.risk, mode_field)
    if override is None or not (override > mode_value if LIMIT_FIELDS[mode_field] > 0 else override < mode_value):
        return None
    mode = policy.active_mode
    detail = f"stored override {override!r} is looser than mode {mode}'s {mode_field} {mode_value!r}"
    detail += "; the mode's value applies"
    return Clamp(override, f"modes.{mode}.{mode_field}", mode_value, detail)
