"""Risk modes: the limits and AI-module flags a trading system runs under.

A mode is a frozen :class:`RiskModeConfig`. Three modes are built in and a new
store starts with them; three presets are ready for users to add.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from policystore.model.numbers import MAX_SAFE_INTEGER, exact_float

__all__ = [
    "AI_FLAGS",
    "BUILTIN_MODES",
    "FROZEN_CONFIG",
    "LIMIT_FIELDS",
    "MODE_FIELDS",
    "PRESETS",
    "Count",
    "Number",
    "RiskMode",
    "RiskModeConfig",
]


class RiskMode(StrEnum):
    """The built-in risk modes. Every API that takes a mode also takes its name."""

    NORMAL = "NORMAL"
    AGGRESSIVE_SMALL_ACCOUNT = "AGGRESSIVE_SMALL_ACCOUNT"
    DEFENSIVE = "DEFENSIVE"


#: Shared by every value type of the model: frozen, unknown fields refused.
FROZEN_CONFIG: Final = ConfigDict(extra="forbid")


def _refuse_bool(value: Any) -> Any:
    # Lax validation would read True as 1.0: a leverage of "True" is a mistake, not a number.
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "input should be a number, not a boolean")
    return value


def _float_input(value: Any) -> Any:
    value = _refuse_bool(value)
    # An integer a float cannot hold exactly (10**400 overflows, 2**53 + 1 rounds) is not the
    # limit that was written; pydantic would round the second one silently.
    if isinstance(value, int) and not exact_float(value):
        raise PydanticCustomError("float_unrepresentable", "input should be a number a float can hold exactly")
    return value


def _safe_integer(value: int) -> int:
    # Every back end and JSON reader (a Lua script, a browser) holds integers up to 2**53 exactly.
    if abs(value) > MAX_SAFE_INTEGER:
        raise PydanticCustomError("integer_too_large", "input should be an integer no larger than 2**53")
    return value


#: A float limit: booleans, and integers a float cannot hold exactly, are refused.
Number = Annotated[float, BeforeValidator(_float_input)]
#: An integer limit: booleans, and integers beyond 2**53, are refused.
Count = Annotated[int, BeforeValidator(_refuse_bool), AfterValidator(_safe_integer)]


# A slotted dataclass, not a BaseModel: BaseModel's __getattr__ hook makes every
# attribute read about three times slower, and reads are the hot path.
@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class RiskModeConfig:
    """The limits and AI-module flags of one risk mode.

    Fractions are fractions: ``max_risk_pct_per_trade=0.015`` means 1.5 % of
    equity. Ranges are checked here; the hard caps of the policy are checked
    when the mode is part of a policy.
    """

    max_leverage: Number = Field(gt=0, allow_inf_nan=False, description="Highest leverage a position may use.")
    max_risk_pct_per_trade: Number = Field(
        gt=0, le=1, allow_inf_nan=False, description="Fraction of equity one trade may put at risk."
    )
    max_daily_drawdown: Number = Field(
        gt=0, le=1, allow_inf_nan=False, description="Fraction of equity the day may lose before trading halts."
    )
    max_positions: Count = Field(ge=1, description="Most positions open at once.")
    global_min_confidence: Number = Field(
        ge=0, le=1, allow_inf_nan=False, description="Lowest signal confidence that may open a trade."
    )
    scaling_factor: Number = Field(gt=0, allow_inf_nan=False, description="Multiplier applied to every position size.")
    position_size_cap: Number = Field(gt=0, allow_inf_nan=False, description="Largest notional of one position.")
    enable_rl: bool = True
    enable_meta_strategy: bool = True
    enable_pal: bool = True
    enable_pba: bool = True
    enable_clm: bool = True
    enable_retraining: bool = True
    enable_dynamic_tpsl: bool = True


#: Fields that limit risk, with the direction that makes them looser:
#: ``+1`` means a higher value takes more risk, ``-1`` a lower one.
LIMIT_FIELDS: Final[MappingProxyType[str, int]] = MappingProxyType(
    {
        "max_leverage": +1,
        "max_risk_pct_per_trade": +1,
        "max_daily_drawdown": +1,
        "max_positions": +1,
        "global_min_confidence": -1,
        "scaling_factor": +1,
        "position_size_cap": +1,
    }
)

AI_FLAGS: Final[tuple[str, ...]] = (
    "enable_rl",
    "enable_meta_strategy",
    "enable_pal",
    "enable_pba",
    "enable_clm",
    "enable_retraining",
    "enable_dynamic_tpsl",
)

MODE_FIELDS: Final[tuple[str, ...]] = (*LIMIT_FIELDS, *AI_FLAGS)

BUILTIN_MODES: Final[MappingProxyType[str, RiskModeConfig]] = MappingProxyType(
    {
        RiskMode.NORMAL.value: RiskModeConfig(
            max_leverage=5.0,
            max_risk_pct_per_trade=0.015,
            max_daily_drawdown=0.05,
            max_positions=30,
            global_min_confidence=0.50,
            scaling_factor=1.0,
            position_size_cap=1000,
        ),
        RiskMode.AGGRESSIVE_SMALL_ACCOUNT.value: RiskModeConfig(
            max_leverage=7.0,
            max_risk_pct_per_trade=0.03,
            max_daily_drawdown=0.06,
            max_positions=15,
            global_min_confidence=0.45,
            scaling_factor=1.5,
            position_size_cap=300,
        ),
        RiskMode.DEFENSIVE.value: RiskModeConfig(
            max_leverage=3.0,
            max_risk_pct_per_trade=0.0075,
            max_daily_drawdown=0.03,
            max_positions=10,
            global_min_confidence=0.60,
            scaling_factor=0.7,
            position_size_cap=500,
            enable_clm=False,
            enable_retraining=False,
        ),
    }
)

_BULL_MARKET = RiskModeConfig(
    max_leverage=6.0,
    max_risk_pct_per_trade=0.02,
    max_daily_drawdown=0.05,
    max_positions=25,
    global_min_confidence=0.50,
    scaling_factor=1.2,
    position_size_cap=1000,
)
_BULL_MARKET_DOC = """\
BULL_MARKET: a trending, orderly market where trend-following pays. A little more
leverage (6x) and risk per trade (2 %) and a 1.2 scaling than NORMAL, because
trends let stops sit further from noise; the daily drawdown stays at NORMAL's 5 %
and fewer positions (25) keep exposure concentrated in the trend."""

_BEAR_MARKET = RiskModeConfig(
    max_leverage=3.0,
    max_risk_pct_per_trade=0.01,
    max_daily_drawdown=0.04,
    max_positions=15,
    global_min_confidence=0.55,
    scaling_factor=0.8,
    position_size_cap=700,
)
_BEAR_MARKET_DOC = """\
BEAR_MARKET: falling prices, sharp rallies that squeeze shorts. Leverage 3x and
1 % risk per trade, between DEFENSIVE and NORMAL: there is still edge, but gap
risk is higher; the day stops at 4 % down and signals need 0.55 confidence.
Continuous learning stays on so models adapt to the new regime."""

_HIGH_VOLATILITY = RiskModeConfig(
    max_leverage=2.0,
    max_risk_pct_per_trade=0.005,
    max_daily_drawdown=0.03,
    max_positions=8,
    global_min_confidence=0.65,
    scaling_factor=0.5,
    position_size_cap=400,
    enable_retraining=False,
)
_HIGH_VOLATILITY_DOC = """\
HIGH_VOLATILITY: wide, fast swings where stops slip. The tightest preset: 2x
leverage, 0.5 % risk per trade, half size, at most 8 positions and 0.65
confidence; retraining is off because models trained on a volatility spike learn
noise that does not last."""

#: Ready modes a user can add (``policystore presets``), with why each value was chosen.
PRESETS: Final[MappingProxyType[str, tuple[RiskModeConfig, str]]] = MappingProxyType(
    {
        "BULL_MARKET": (_BULL_MARKET, _BULL_MARKET_DOC),
        "BEAR_MARKET": (_BEAR_MARKET, _BEAR_MARKET_DOC),
        "HIGH_VOLATILITY": (_HIGH_VOLATILITY, _HIGH_VOLATILITY_DOC),
    }
)
