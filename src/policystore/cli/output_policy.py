"""The policy as it stands, on the command line: ``show``'s screen, the strategies, ``explain``'s lines, a preset.

Pure, like :mod:`policystore.cli.output`: each function turns what a command
fetched into text and never reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policystore.cli.output import key_values, table, value_text
from policystore.model.controls import firm_state
from policystore.model.modes import MODE_FIELDS, RiskModeConfig
from policystore.model.paths import clamped_override
from policystore.model.policy import STRATEGY_FIELDS, Override, Policy
from policystore.store.sources import Explanation

__all__ = ["render_explanation", "render_preset", "render_show", "render_strategies"]


def render_show(policy: Policy, *, source: str, stale: bool) -> str:
    """Return the ``show`` screen: metadata, kill switch, every mode's values side by side, and the strategies.

    Args:
        policy: the policy to show.
        source: the layer of the fallback chain that answered.
        stale: True when the live store could not be reached.

    Returns:
        The text; the active mode's column is marked with ``*``.
    """
    emergency = policy.emergency
    switch = "OFF"
    if emergency.active:
        switch = f"ON since {value_text(emergency.activated_at)} by {emergency.activated_by}: {emergency.reason}"
    head = [
        ("active mode", policy.active_mode),
        ("kill switch", switch),
        ("trading", _firm_state_text(policy)),
        ("version", policy.version),
        ("updated", f"{value_text(policy.updated_at)} by {policy.updated_by}"),
        ("reason", policy.reason or "-"),
        ("source", source + (" (STALE: the live store cannot be reached)" if stale else "")),
    ]
    head += [(f"expires (v{change.version})", _expiring(change)) for change in policy.overrides]
    names = sorted(policy.modes, key=lambda n: (n != policy.active_mode, n))
    headers = ["field", *(f"{n}*" if n == policy.active_mode else n for n in names)]
    rows = [[field, *(getattr(policy.modes[n], field) for n in names)] for field in MODE_FIELDS]
    modes = table(headers, rows) + "\n\n* active mode"
    return key_values(head) + "\n\n" + modes + "\n\n" + render_strategies(policy)


def render_strategies(policy: Policy) -> str:
    """Return every strategy's effective config under the active mode, each stored override beside it.

    A cell is the value in force; ``(own)`` marks a stored override that is that
    value, ``(own X, clamped)`` one the active mode overrules, which a note
    under the table explains (as ``explain`` words it).

    Args:
        policy: the policy to show.

    Returns:
        The table and its notes, or a sentence when there is no strategy.
    """
    if not policy.strategies:
        return "No strategies."
    fields = [field for field, mode_field in STRATEGY_FIELDS.items() if mode_field is not None]
    rows, notes = [], []
    for name, settings in policy.strategies.items():
        effective = policy.strategy(name)
        cells = [name, settings.state.value, value_text(settings.cooldown_seconds)]
        for field in fields:
            own, value = getattr(settings, field), getattr(effective, field)
            if (clamp := clamped_override(policy, f"strategies.{name}.{field}")) is not None:
                cells.append(f"{value_text(value)} (own {value_text(own)}, clamped)")
                notes.append(f"note: strategies.{name}.{field}: {clamp.detail}.")
            else:
                cells.append(value_text(value) + (" (own)" if own is not None else ""))
        rows.append(cells)
    legend = (
        f"Values in force under {policy.active_mode}; (own): the strategy's stored override, "
        "unmarked: the active mode's value."
    )
    return "\n".join([table(["strategy", "state", "cooldown_seconds", *fields], rows), "", legend, *notes])


def _firm_state_text(policy: Policy) -> str:
    """The firm-wide trading state as set, and in force when the kill switch raises it."""
    state, in_force = policy.trading.state.value, firm_state(policy).state.value
    return state if in_force == state else f"{state} (in force: {in_force}, the kill switch is on)"


def _expiring(change: Override) -> str:
    """One expiring change on a line: what it set, until when, what it returns to, who and why."""
    values = ", ".join(
        f"{path} {value_text(value)} (returns to {value_text(change.replaced[path])})"
        for path, value in change.values.items()
    )
    return f"{values} until {value_text(change.until)} by {change.by}: {change.reason}"


def render_explanation(explanation: Explanation, extra: Sequence[tuple[str, Any]] = ()) -> str:
    """Return an explanation as aligned ``key  value`` lines.

    Args:
        explanation: what :meth:`PolicyStore.explain` returned.
        extra: more ``(key, value)`` lines after the explanation's own (a trading
            path's ``set by`` and ``in force``).

    Returns:
        The text.
    """
    return key_values(
        [
            ("path", explanation.path),
            ("value", explanation.value),
            ("source", explanation.source.value),
            ("version", explanation.version),
            ("stale", explanation.stale),
            ("detail", explanation.detail or "-"),
            *extra,
            *([("expires", explanation.expires_at)] if explanation.expires_at is not None else []),
        ]
    )


def render_preset(config: RiskModeConfig, why: str) -> str:
    """Return one preset: why its values were chosen (which starts with its name), then the values.

    Args:
        config: its mode config.
        why: the reasoning behind the values.

    Returns:
        The text.
    """
    values = key_values([(f"  {field}", getattr(config, field)) for field in MODE_FIELDS])
    return f"{why}\n{values}"
