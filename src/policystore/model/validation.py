"""Turn plain data into a valid :class:`Policy`, or list every field that failed.

Field ranges come from the value types; this module adds the rules that span
fields: the hard caps, the active mode, names, the built-in modes and strategies
that must stay, an active kill switch's reason, instrument symbols, and the
optional trading caps (``hard_limits.max_order_notional`` bounds every
``instruments.<KEY>.max_order_notional``, and so on: see
:data:`~policystore.model.trading.OPTIONAL_CAP_FIELDS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from numbers import Real
from typing import Any, Final

from pydantic import ValidationError

from policystore.errors import FieldError, PolicyValidationError
from policystore.model.modes import BUILTIN_MODES, LIMIT_FIELDS
from policystore.model.numbers import finite_float, short_repr
from policystore.model.overrides import override_problems, returned_document
from policystore.model.policy import (
    BUILTIN_STRATEGIES,
    MODE_NAME_PATTERN,
    STRATEGY_FIELDS,
    STRATEGY_NAME_PATTERN,
    HardLimits,
    Policy,
    policy_adapter,
)
from policystore.model.trading import OPTIONAL_CAP_FIELDS, instrument_key_problem

__all__ = ["build_policy", "build_policy_json", "cross_field_errors", "override_errors", "pydantic_errors"]

_DEFAULT_CAPS = HardLimits()
#: The longest instrument key an error's path shows as written.
_SHOWN_KEY: Final = 40


def pydantic_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Convert pydantic's errors to :class:`FieldError` with dot paths."""
    errors = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in (*((prefix,) if prefix else ()), *err["loc"]))
        kind = err["type"]
        if kind in {"unexpected_keyword_argument", "extra_forbidden"}:
            message = "is not a known field"
        elif kind == "missing":
            message = "is required"
        else:
            message = f"{err['msg'][0].lower()}{err['msg'][1:]} (got {short_repr(err['input'])})"
        errors.append(FieldError(path or "policy", message))
    return errors


def _number(value: Any) -> Real | None:
    """Return ``value`` if it is a real number (a boolean is not), unconverted.

    Python compares an int with a float exactly; converting first would raise
    OverflowError for an integer too large for a float, which is refused by the
    value types and must not stop the other checks.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return value


def _cap_errors(path: str, field: str, value: Any, caps: Mapping[str, Any]) -> list[FieldError]:
    number, cap = _number(value), _number(caps.get(field))
    if number is None or cap is None:
        return []
    shown, limit = short_repr(value), short_repr(caps[field])
    if LIMIT_FIELDS[field] > 0 and number > cap:
        return [FieldError(path, f"{shown} is above the hard limit hard_limits.{field} = {limit}")]
    if LIMIT_FIELDS[field] < 0 and number < cap:
        return [FieldError(path, f"{shown} is below the hard floor hard_limits.{field} = {limit}")]
    return []


def _usable_caps(raw: Any) -> dict[str, Any]:
    """Return the caps modes are checked against, leaving out any cap that is itself invalid.

    An invalid cap is reported by the value types; comparing every mode with it
    would only add a false failure per mode.
    """
    given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    caps = {f: given.get(f, getattr(_DEFAULT_CAPS, f)) for f in LIMIT_FIELDS}
    try:
        HardLimits(**caps)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            caps.pop(str(err["loc"][0]) if err["loc"] else "", None)
    return caps


def _optional_caps(raw: Any) -> dict[str, Real]:
    """The optional trading caps that are set and usable (a positive number); an invalid one is reported elsewhere."""
    given: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    caps: dict[str, Real] = {}
    for field in OPTIONAL_CAP_FIELDS:
        number = _number(given.get(field))
        if number is not None and (finite_float(number) or 0.0) > 0.0:
            caps[field] = number
    return caps


def _over_cap(path: str, field: str, value: Any, caps: Mapping[str, Real]) -> list[FieldError]:
    number, cap = _number(value), caps.get(field)
    if number is None or cap is None or not number > cap:
        return []
    return [FieldError(path, f"{short_repr(value)} is above the hard limit hard_limits.{field} = {short_repr(cap)}")]


def _shown_key(key: Any) -> str:
    """A key as an error's path may show it: a forged one (control characters, any length) as its short repr."""
    return key if isinstance(key, str) and key.isprintable() and len(key) <= _SHOWN_KEY else short_repr(key)


def _trading_errors(data: Mapping[str, Any]) -> list[FieldError]:
    """Instrument keys, and the trading limits above their optional hard caps."""
    errors: list[FieldError] = []
    caps = _optional_caps(data.get("hard_limits"))
    trading = data.get("trading")
    if isinstance(trading, Mapping):
        for field, section in OPTIONAL_CAP_FIELDS.items():
            if section == "trading":
                errors += _over_cap(f"trading.{field}", field, trading.get(field), caps)
    instruments = data.get("instruments")
    if isinstance(instruments, Mapping):
        for key, entry in instruments.items():
            problem = instrument_key_problem(key)
            if problem is not None:
                errors.append(FieldError(f"instruments.{_shown_key(key)}", problem))
            if isinstance(entry, Mapping):
                for field, section in OPTIONAL_CAP_FIELDS.items():
                    if section == "instruments":
                        errors += _over_cap(f"instruments.{key}.{field}", field, entry.get(field), caps)
    return errors


def _mode_errors(modes: Mapping[Any, Any], active: Any, caps: Mapping[str, Any]) -> list[FieldError]:
    """Mode names, caps, the built-in modes that must stay, and the active mode."""
    errors: list[FieldError] = []
    for name, mode in modes.items():
        if not isinstance(name, str) or not MODE_NAME_PATTERN.match(name):
            errors.append(FieldError(f"modes.{name}", "mode names are upper-case letters, digits and _"))
        if isinstance(mode, Mapping):
            for field in LIMIT_FIELDS:
                errors += _cap_errors(f"modes.{name}.{field}", field, mode.get(field), caps)
    errors += [
        FieldError(f"modes.{name}", "is a built-in mode and cannot be removed")
        for name in BUILTIN_MODES
        if name not in modes
    ]
    if isinstance(active, str) and active not in modes:
        errors.append(FieldError("active_mode", f"{active!r} is not a mode of this policy ({', '.join(modes)})"))
    return errors


def _strategy_errors(strategies: Mapping[Any, Any], caps: Mapping[str, Any]) -> list[FieldError]:
    """Strategy names, override caps, and the built-in strategies that must stay."""
    errors: list[FieldError] = []
    for name, strategy in strategies.items():
        if not isinstance(name, str) or not STRATEGY_NAME_PATTERN.match(name):
            errors.append(FieldError(f"strategies.{name}", "strategy names are lower-case letters, digits and _"))
        if isinstance(strategy, Mapping):
            for field, mode_field in STRATEGY_FIELDS.items():
                if mode_field is not None:
                    errors += _cap_errors(f"strategies.{name}.{field}", mode_field, strategy.get(field), caps)
    errors += [
        FieldError(f"strategies.{name}", "is a built-in strategy and cannot be removed")
        for name in BUILTIN_STRATEGIES
        if name not in strategies
    ]
    return errors


def cross_field_errors(data: Mapping[str, Any]) -> list[FieldError]:
    """Check the rules that span fields on raw data, tolerating any malformed part.

    Malformed parts are skipped here: their type errors come from the value
    types, so that one pass reports every problem.

    Args:
        data: a policy document as plain data.

    Returns:
        Every cross-field failure found, in document order.
    """
    errors: list[FieldError] = []
    caps = _usable_caps(data.get("hard_limits"))
    modes = data.get("modes")
    if isinstance(modes, Mapping):
        errors += _mode_errors(modes, data.get("active_mode"), caps)
    strategies = data.get("strategies")
    if isinstance(strategies, Mapping):
        errors += _strategy_errors(strategies, caps)
    emergency = data.get("emergency")
    if isinstance(emergency, Mapping) and emergency.get("active") is True and not emergency.get("reason"):
        errors.append(FieldError("emergency.reason", "is required while the kill switch is on"))
    errors += _trading_errors(data)
    return errors


def _within_caps(config: Any, fields: Mapping[str, str | None], caps: HardLimits) -> bool:
    for field, cap_field in fields.items():
        value = getattr(config, field)
        if cap_field is None or value is None:
            continue
        cap = getattr(caps, cap_field)
        if (value > cap) if LIMIT_FIELDS[cap_field] > 0 else (value < cap):
            return False
    return True


_MODE_CAPS: Final = {field: field for field in LIMIT_FIELDS}


def _consistent(policy: Policy) -> bool:
    """Tell quickly, on the typed policy, that every cross-field rule holds.

    Every version a process installs is validated, so this runs once per
    version in every process: attribute reads here cost a third of walking the
    raw data. False only means "look closer": :func:`cross_field_errors` then
    decides and names each failure.
    """
    caps = policy.hard_limits
    modes, strategies = policy.modes, policy.strategies
    return (
        policy.active_mode in modes
        and all(name in modes for name in BUILTIN_MODES)
        and all(name in strategies for name in BUILTIN_STRATEGIES)
        and all(MODE_NAME_PATTERN.match(name) and _within_caps(m, _MODE_CAPS, caps) for name, m in modes.items())
        and all(
            STRATEGY_NAME_PATTERN.match(name) and _within_caps(s, STRATEGY_FIELDS, caps)
            for name, s in strategies.items()
        )
        and not (policy.emergency.active and not policy.emergency.reason)
        and _trading_consistent(policy)
        # Expiring changes are checked in full (override_errors): few documents hold any.
        and not policy.overrides
    )


def _trading_consistent(policy: Policy) -> bool:
    """Instrument keys are symbols or ``default``, and no trading limit is above its optional cap."""
    instruments = policy.instruments
    if any(instrument_key_problem(key) is not None for key in instruments):
        return False
    caps = policy.hard_limits
    for field, section in OPTIONAL_CAP_FIELDS.items():
        cap = getattr(caps, field)
        if cap is None:
            continue
        entries = (policy.trading,) if section == "trading" else tuple(instruments.values())
        if any((value := getattr(entry, field)) is not None and value > cap for entry in entries):
            return False
    return True


def override_errors(policy: Policy) -> list[FieldError]:
    """Check the expiring changes of an otherwise valid policy, and that each return leads to a valid one.

    The changes end in the order of their ends; after each end the policy must
    pass every rule, so no process is ever left with an invalid policy when a
    change ends (a limit set on top of a cap raised for a while is refused when
    written, not found invalid when the cap returns).

    Returns:
        Every problem found; a return's problems name the change and its end.
    """
    if not policy.overrides:
        return []
    document = policy.document()
    errors = override_problems(document, policy.overrides)
    if errors:
        return errors
    ordered = sorted(policy.overrides, key=lambda change: (change.until, change.version))
    for count, last in enumerate(ordered, start=1):
        if count < len(ordered) and ordered[count].until == last.until:
            continue  # changes that end together return together
        returned = returned_document(document, ordered[:count])
        returned.pop("overrides", None)  # the later ends are checked in their turn
        try:
            build_policy(returned)
        except PolicyValidationError as exc:
            when = f"once the expiring change of version {last.version} ends at {last.until.isoformat()}"
            return [FieldError(e.path, f"{e.message} {when}") for e in exc.errors]
    return []


def build_policy_json(text: bytes | str) -> Policy:
    """Validate a policy document given as JSON text, parsing and validating in one step.

    Every process validates every version it installs; validating the text
    directly costs about half of parsing it to Python data first. Refusals
    are the same as :func:`build_policy`'s.

    Raises:
        PolicyValidationError: the text is not JSON, or a field failed; every failure is listed.
    """
    try:
        policy = policy_adapter.validate_json(text)
    except ValidationError:
        policy = None
    if policy is not None and _consistent(policy):
        return policy
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PolicyValidationError([FieldError("policy", f"is not valid JSON ({exc})")]) from exc
    return build_policy(data)


def build_policy(data: Mapping[str, Any]) -> Policy:
    """Validate ``data`` and return the policy it describes.

    Args:
        data: a policy document, as :meth:`Policy.document` returns.

    Returns:
        The frozen policy.

    Raises:
        PolicyValidationError: one or more fields failed; every failure is listed.
    """
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise PolicyValidationError([FieldError("policy", f"must be a mapping of fields to values, not {kind}")])
    errors: list[FieldError] = []
    policy: Policy | None = None
    try:
        policy = policy_adapter.validate_python(dict(data))
    except ValidationError as exc:
        errors = pydantic_errors(exc)
    if policy is not None and _consistent(policy):
        return policy
    seen = {e.path for e in errors}
    # Check the typed values when there are some: pydantic reads "50" as 50.0, and the
    # raw-data check passes over anything that is not already a number.
    checked = data if policy is None else policy.document()
    errors += [e for e in cross_field_errors(checked) if e.path not in seen]
    if policy is not None and not errors:
        errors = override_errors(policy)
    if errors or policy is None:
        raise PolicyValidationError(errors or [FieldError("policy", "is not a valid policy document")])
    return policy
