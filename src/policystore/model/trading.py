"""Trading states and pre-trade controls: the value types of ``trading`` and ``instruments.<SYMBOL>``.

Three states, strictest last: ``active`` (orders allowed within the limits),
``reducing`` (only orders that reduce an open position), ``halted`` (no order
at all). They apply firm-wide (``trading.state``), per strategy
(``strategies.<name>.state``) and per instrument (``instruments.<SYMBOL>.state``,
falling back to ``instruments.default.state``); the strictest that applies to
a signal wins, and the kill switch makes the firm-wide state at least
``reducing``.

Every limit here is optional: ``None`` means "no limit of its own". An
instrument's unset field falls back to ``instruments.default``'s, and where
neither sets one, the matching optional hard cap (``hard_limits.<field>``)
applies, if there is one (see :mod:`policystore.model.controls`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from pydantic import Field
from pydantic.dataclasses import dataclass

from policystore.model.modes import FROZEN_CONFIG, Count, Number

__all__ = [
    "DEFAULT_INSTRUMENT",
    "INSTRUMENT_FIELDS",
    "INSTRUMENT_LIMIT_FIELDS",
    "OPTIONAL_CAP_FIELDS",
    "SYMBOL_PATTERN",
    "TRADING_FIELDS",
    "TRADING_LIMIT_FIELDS",
    "InstrumentLimits",
    "TradingControls",
    "TradingState",
    "instrument_key_problem",
]

#: What an instrument's symbol may be: upper-case letters, digits and ``. _ : / -``,
#: starting with a letter or digit, at most 32 characters (``BTC``, ``BTC-PERP``,
#: ``BTC/USD``, ``BRK.B``, ``ES:H25``). Lower-case never appears, so ``default`` and
#: the field names can never be mistaken for a symbol in a dot path. Matched whole
#: (``fullmatch``): a trailing newline is no part of a symbol.
SYMBOL_PATTERN: Final = re.compile(r"[A-Z0-9][A-Z0-9._:/-]{0,31}")
#: The reserved key of the limits every instrument without its own value falls back to.
DEFAULT_INSTRUMENT: Final = "default"


class TradingState(StrEnum):
    """Whether orders may be sent, strictest last: ``active`` < ``reducing`` < ``halted``."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"

    @property
    def rank(self) -> int:
        """Position in the order active (0) < reducing (1) < halted (2)."""
        return _RANK[self]


_RANK: Final = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class TradingControls:
    """The firm-wide trading section: the state set by a person, and firm-wide limits.

    Attributes:
        state: the firm-wide state (the kill switch makes it at least ``reducing`` in effect).
        allow_unlisted: False: only instruments with an entry of their own may be traded.
        max_orders_per_minute: most orders one executor sends in any 60 seconds, or None.
        max_daily_loss: the day's loss, in account currency, that stops trading, or None.
        max_gross_exposure: largest sum of the notionals of all open positions after an order, or None.
    """

    state: TradingState = TradingState.ACTIVE
    allow_unlisted: bool = True
    max_orders_per_minute: Count | None = Field(default=None, ge=1)
    max_daily_loss: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_gross_exposure: Number | None = Field(default=None, gt=0, allow_inf_nan=False)


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class InstrumentLimits:
    """One instrument's own limits (or ``instruments.default``'s); None: not set here.

    Attributes:
        state: the instrument's state.
        max_order_notional: largest notional (quantity x price) of one order, in account currency.
        max_order_quantity: largest quantity of one order.
        max_position_notional: largest notional held in the instrument after an order.
        price_collar: an order whose price is further than this fraction from the
            reference price (``abs(price - reference) / reference``) is refused.
    """

    state: TradingState | None = None
    max_order_notional: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_order_quantity: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_position_notional: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    price_collar: Number | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)

    def is_empty(self) -> bool:
        """True when no field is set: such an entry says nothing and is not kept."""
        return all(getattr(self, name) is None for name in INSTRUMENT_FIELDS)


#: Every field of ``trading``.
TRADING_FIELDS: Final[tuple[str, ...]] = tuple(TradingControls.__dataclass_fields__)
#: The optional limits of ``trading``: a higher value (or None) takes more risk.
TRADING_LIMIT_FIELDS: Final = ("max_orders_per_minute", "max_daily_loss", "max_gross_exposure")
#: Every field of an instrument entry.
INSTRUMENT_FIELDS: Final[tuple[str, ...]] = tuple(InstrumentLimits.__dataclass_fields__)
#: The optional limits of an instrument entry: a higher value (or None) takes more risk.
INSTRUMENT_LIMIT_FIELDS: Final = ("max_order_notional", "max_order_quantity", "max_position_notional", "price_collar")
#: The optional hard caps, each with the section whose field of the same name it bounds.
#: None is no cap; a cap also applies where no limit of that name is set.
OPTIONAL_CAP_FIELDS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        "max_order_notional": "instruments",
        "max_position_notional": "instruments",
        "max_gross_exposure": "trading",
        "max_daily_loss": "trading",
        "max_orders_per_minute": "trading",
    }
)


def instrument_key_problem(key: object) -> str | None:
    """Say why ``key`` cannot name an instrument entry, or None when it can."""
    if key == DEFAULT_INSTRUMENT or (isinstance(key, str) and SYMBOL_PATTERN.fullmatch(key)):
        return None
    return (
        "symbols are 1 to 32 upper-case letters, digits and . _ : / -, starting with a letter or digit "
        f"(pattern ^{SYMBOL_PATTERN.pattern}$); 'default' names the limits of every other instrument"
    )
