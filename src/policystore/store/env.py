"""Policy values from environment variables: ``POLICYSTORE_<PATH>`` and the legacy ``RM_*`` names.

``POLICYSTORE_RISK__MAX_LEVERAGE=4`` sets ``risk.max_leverage``: the path
upper-cased with ``.`` written as ``__``. Values are parsed to the field's type
and validated; a malformed one (not a number, out of range, too large for a
float) is reported and not used, and never stops a process from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from policystore.errors import PolicyStoreError
from policystore.model.changes import apply_patch
from policystore.model.numbers import short_repr
from policystore.model.paths import flatten
from policystore.model.policy import RECORD_FIELDS, STRATEGY_FIELDS, Policy

__all__ = ["ENV_PREFIX", "LEGACY_NAMES", "EnvironmentOverlay", "env_name", "overlay_environment"]

log = logging.getLogger("policystore.env")

ENV_PREFIX: Final = "POLICYSTORE_"
#: Names older deployments used, with the path each one sets.
LEGACY_NAMES: Final = {
    "RM_MAX_LEVERAGE": "risk.max_leverage",
    "RM_RISK_PER_TRADE_PCT": "risk.max_risk_pct_per_trade",
}
_NOT_SETTABLE: Final = frozenset(RECORD_FIELDS)
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
#: More digits than any integer limit can have; the model names the bound.
_MAX_DIGITS: Final = 64


def env_name(path: str) -> str:
    """Return the environment variable that sets ``path``."""
    return ENV_PREFIX + path.upper().replace(".", "__")


@dataclass(frozen=True, slots=True)
class EnvironmentOverlay:
    """The built-in policy with the environment's values applied.

    Attributes:
        policy: the resulting policy (version 0).
        variables: readable path to the variable that set it.
        problems: variable name to why it was not used.
    """

    policy: Policy
    variables: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)


def _parse(raw: str, like: Any) -> Any:
    text = raw.strip()
    if isinstance(like, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        msg = f"{raw!r} is not a boolean (use true or false)"
        raise ValueError(msg)
    if isinstance(like, int):
        if len(text) > _MAX_DIGITS and text.lstrip("+-").isdigit():
            # int() would refuse past Python's digit limit with advice meant for programmers.
            msg = f"{short_repr(raw)} has {len(text.lstrip('+-'))} digits, too many for a limit (at most 2**53)"
            raise ValueError(msg)
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text or None


def _target(path: str, policy: Policy) -> str:
    """Map a readable path to the stored path it overrides."""
    head, _, rest = path.partition(".")
    if head in {"risk", "ai"}:
        return f"modes.{policy.active_mode}.{rest}"
    if head == "strategies" and rest.rpartition(".")[2] in STRATEGY_FIELDS:
        return path
    return path


def overlay_environment(base: Policy, environ: Mapping[str, str]) -> EnvironmentOverlay:
    """Apply the environment's policy variables to ``base``, one at a time.

    ``active_mode`` is applied first so that ``risk.*`` variables land on the
    mode they will be read from; a ``POLICYSTORE_`` name wins over its legacy
    name. A variable that fails to parse or validate is reported and skipped.

    Args:
        base: the policy to start from (the built-in defaults).
        environ: the environment, usually ``os.environ``.

    Returns:
        The overlay with every variable used and every problem found.
    """
    readable = {env_name(p): p for p in flatten(base) if p not in _NOT_SETTABLE}
    wanted: dict[str, tuple[str, str]] = {}
    for legacy, path in LEGACY_NAMES.items():
        if legacy in environ:
            wanted[path] = (legacy, environ[legacy])
    for name, path in readable.items():
        if name in environ:
            wanted[path] = (name, environ[name])
    policy, variables, problems = base, {}, {}
    current = flatten(base)
    for path in sorted(wanted, key=lambda p: p != "active_mode"):
        name, raw = wanted[path]
        try:
            value = _parse(raw, current[path])
            policy = apply_patch(policy, {_target(path, policy): value})
        except (ValueError, ArithmeticError, PolicyStoreError) as exc:
            problems[name] = f"{name}={short_repr(raw)} was not used: {exc}"
            log.error("%s", problems[name])  # noqa: TRY400 - an expected condition the message fully states; a traceback would be noise
            continue
        variables[path] = name
        variables[_target(path, policy)] = name
    return EnvironmentOverlay(policy, variables, problems)
