"""A strategy's execution config: as stored (overrides that may only tighten), and in effect under a mode."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from pydantic import Field
from pydantic.dataclasses import dataclass

from policystore.model.modes import FROZEN_CONFIG, LIMIT_FIELDS, Count, Number, RiskModeConfig
from policystore.model.trading import TradingState

__all__ = ["STRATEGY_FIELDS", "StrategyConfig", "StrategySettings"]


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class StrategySettings:
    """A strategy's stored execution config: a cooldown, optional overrides and its trading state.

    An override may only tighten the active mode: the effective value is the
    stricter of the two (see :class:`StrategyConfig`). ``None`` means "use the
    active mode's value". ``state`` is the strategy's own trading state
    (``active`` unless set); the strictest of it, the firm's and the
    instrument's applies to each of its signals.
    """

    cooldown_seconds: Number = Field(ge=0, allow_inf_nan=False, description="Seconds between two trades of one symbol.")
    min_confidence: Number | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    max_leverage: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_risk_pct_per_trade: Number | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    max_positions: Count | None = Field(default=None, ge=1)
    scaling_factor: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    state: TradingState = TradingState.ACTIVE


#: Effective strategy fields, each with the mode field it derives from.
STRATEGY_FIELDS: Final[dict[str, str | None]] = {
    "cooldown_seconds": None,
    "min_confidence": "global_min_confidence",
    "max_leverage": "max_leverage",
    "max_risk_pct_per_trade": "max_risk_pct_per_trade",
    "max_positions": "max_positions",
    "scaling_factor": "scaling_factor",
}


@dataclasses.dataclass(frozen=True, slots=True)
class StrategyConfig:
    """A strategy's effective config under one mode: every field filled in.

    A plain dataclass, not a validated one: it is derived from values already
    validated, once per strategy in every process at every version.
    """

    name: str
    cooldown_seconds: float
    min_confidence: float
    max_leverage: float
    max_risk_pct_per_trade: float
    max_positions: int
    scaling_factor: float

    @classmethod
    def derive(cls, name: str, settings: StrategySettings, mode: RiskModeConfig) -> StrategyConfig:
        """Fill a strategy's unset fields from ``mode`` and clamp overrides to it.

        Args:
            name: the strategy's name.
            settings: the stored config.
            mode: the active mode's config.

        Returns:
            The effective config: an override can only make the mode stricter.
        """
        values: list[Any] = [name, settings.cooldown_seconds]
        for field, mode_field, capped in _DERIVED_FIELDS:
            base = getattr(mode, mode_field)
            override = getattr(settings, field)
            if override is None:
                values.append(base)
            else:
                values.append(min(override, base) if capped else max(override, base))
        # Positional: every process derives every strategy at every version (see _DERIVED_FIELDS).
        return cls(*values)


#: The derived fields in StrategyConfig's order after name and cooldown, each with the
#: mode field it comes from and whether that field is a cap (True) or a floor (False).
_DERIVED_FIELDS: Final = tuple(
    (field, mode_field, LIMIT_FIELDS[mode_field] > 0) for field, mode_field in STRATEGY_FIELDS.items() if mode_field
)
_ORDER: Final = ("name", "cooldown_seconds", *(field for field, _, _ in _DERIVED_FIELDS))
if tuple(f.name for f in dataclasses.fields(StrategyConfig)) != _ORDER:
    raise RuntimeError("StrategyConfig's fields must follow STRATEGY_FIELDS")
