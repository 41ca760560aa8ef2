"""Dot paths: every readable value of a policy, flattened once per version.

The read path of the store is one dict lookup in the table :func:`flatten`
builds, so everything a path can answer is computed here, once.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Final

from policystore.model.modes import AI_FLAGS, LIMIT_FIELDS, MODE_FIELDS
from policystore.model.policy import STRATEGY_FIELDS, HardLimits, Policy

__all__ = [
    "EMERGENCY_FIELDS",
    "HARD_LIMIT_FIELDS",
    "METADATA_PATHS",
    "flatten",
    "suggest",
]

EMERGENCY_FIELDS: Final = ("active", "reason", "activated_at", "activated_by")
HARD_LIMIT_FIELDS: Final = tuple(HardLimits.__dataclass_fields__)
METADATA_PATHS: Final = ("active_mode", "version", "updated_at", "updated_by", "reason")


@functools.lru_cache(maxsize=1024)
def _keys(section: str, name: str, fields: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Every process flattens every version it installs; the path strings stay the same.
    return tuple((f"{section}.{name}.{field}", field) for field in fields)


def flatten(policy: Policy) -> dict[str, Any]:
    """Return every readable path of ``policy`` with its value.

    ``risk.*`` and ``ai.*`` answer for the active mode, and ``strategies.*``
    answer the effective config (overrides clamped, unset fields derived).
    """
    values: dict[str, Any] = {
        "active_mode": policy.active_mode,
        "version": policy.version,
        "updated_at": policy.updated_at,
        "updated_by": policy.updated_by,
        "reason": policy.reason,
    }
    risk = policy.risk
    for field in LIMIT_FIELDS:
        values[f"risk.{field}"] = getattr(risk, field)
    for flag in AI_FLAGS:
        values[f"ai.{flag}"] = getattr(risk, flag)
    for name, mode in policy.modes.items():
        for key, field in _keys("modes", name, MODE_FIELDS):
            values[key] = getattr(mode, field)
    for name in policy.strategies:
        effective = policy.strategy(name)
        for key, field in _keys("strategies", name, tuple(STRATEGY_FIELDS)):
            values[key] = getattr(effective, field)
    for field in EMERGENCY_FIELDS:
        values[f"emergency.{field}"] = getattr(policy.emergency, field)
    for field in HARD_LIMIT_FIELDS:
        values[f"hard_limits.{field}"] = getattr(policy.hard_limits, field)
    return values


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
