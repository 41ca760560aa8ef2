"""The trading states and controls on the command line: ``show``'s trading section and ``explain``'s extra lines.

Pure, like :mod:`policystore.cli.output`: every figure comes from
:func:`policystore.model.trading_view.in_force`, so the command line shows what
the API and the dashboard show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from policystore.cli.output import table, value_text
from policystore.model.policy import Policy
from policystore.model.trading import INSTRUMENT_LIMIT_FIELDS, TRADING_LIMIT_FIELDS
from policystore.model.trading_view import in_force

__all__ = ["fact_lines", "in_force_text", "number_text", "render_trading"]

#: What each firm-wide limit counts, after its figure.
_FIRM_UNITS: Final = {
    "max_orders_per_minute": "orders per minute, per executor",
    "max_daily_loss": "account currency",
    "max_gross_exposure": "account currency",
}
#: The heading of the instrument limits table, with the units of its figures.
_LIMITS_HEADING: Final = (
    "Instrument limits (notional and position in account currency; collar as a fraction of the reference price)"
)


def number_text(value: float) -> str:
    """Return a limit as people read it: ``10,000``, ``0.5``, ``12,345.678`` (every digit kept)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,}"


def _limit_text(field: str, bound: Mapping[str, Any] | None, key: str) -> str:
    if bound is None:
        return "-"
    value = bound["value"]
    notes = [f"{value * 100:g}%"] if field == "price_collar" else []
    source = str(bound["set_by"])
    if source.startswith("hard_limits."):
        notes.append("hard cap")
    elif key != "default" and source.startswith("instruments.default."):
        notes.append("default")
    text = str(value) if field == "price_collar" else number_text(value)
    return f"{text} ({', '.join(notes)})" if notes else text


def in_force_text(verdict: Mapping[str, str]) -> str:
    """Return a state in force as ``halted, decided by trading.state (firm)``."""
    return f"{verdict['state']}, decided by {verdict['set_by']} ({verdict['scope']})"


def _decided(verdict: Mapping[str, str]) -> str:
    return f"{verdict['set_by']} ({verdict['scope']})"


def render_trading(policy: Policy) -> str:
    """Return ``show``'s trading section: states per scope, the instrument limits, the firm-wide controls.

    Args:
        policy: the policy to show.

    Returns:
        Three blocks of text: each scope's own state with the state in force and
        the path that decided it; each instrument's limits in force (``default``
        first) marked where they come from the default or a hard cap; the
        firm-wide controls with their units.
    """
    view = in_force(policy)
    firm = view["trading"]["effective_state"]
    rows = [["firm", "-", policy.trading.state.value, firm["state"], _decided(firm)]]
    for name in sorted(policy.strategies):
        verdict = view["trading"]["strategies"][name]
        own = policy.strategies[name].state.value
        rows.append(["strategy", name, own, verdict["state"], _decided(verdict)])
    for key, entry in view["instruments"].items():
        stored = policy.instruments.get(key)
        own = "-" if stored is None or stored.state is None else stored.state.value
        verdict = entry["in_force"]
        rows.append(["instrument", key, own, verdict["state"], _decided(verdict)])
    states = table(["scope", "name", "own state", "in force", "decided by"], rows)
    limits = table(
        ["instrument", *INSTRUMENT_LIMIT_FIELDS],
        [
            [key, *(_limit_text(f, entry[f], key) for f in INSTRUMENT_LIMIT_FIELDS)]
            for key, entry in view["instruments"].items()
        ],
    )
    controls: list[list[str]] = [["allow_unlisted", value_text(policy.trading.allow_unlisted)]]
    for field in TRADING_LIMIT_FIELDS:
        bound = view["trading"][field]
        if bound is None:
            controls.append([field, "none"])
            continue
        cap = " (hard cap)" if str(bound["set_by"]).startswith("hard_limits.") else ""
        controls.append([field, f"{number_text(bound['value'])} {_FIRM_UNITS[field]}{cap}"])
    return "\n\n".join(
        [
            "Trading states (strictest applies: active < reducing < halted)\n" + states,
            f"{_LIMITS_HEADING}\n{limits}",
            "Firm-wide controls\n" + table(["control", "in force"], controls),
        ]
    )


def fact_lines(path: str, facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the facts of :func:`~policystore.model.trading_view.path_facts` as ``explain``'s extra lines."""
    lines: list[tuple[str, str]] = []
    if "set_by" in facts:
        lines.append(("set by", facts["set_by"] or "nothing: no limit applies"))
    verdict = facts.get("in_force")
    if verdict is not None:
        text = in_force_text(verdict)
        if path.startswith("instruments."):
            text += "; for one strategy's orders, its own state decides when it is stricter"
        elif path.startswith("strategies."):
            text += "; an instrument's own state decides when it is stricter"
        lines.append(("in force", text))
    return lines
