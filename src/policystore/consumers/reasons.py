"""Why the executor accepted or refused a signal: one enum member per outcome, as the decision log records it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Reason"]


class Reason(StrEnum):
    """Why a signal was accepted or refused (see :mod:`policystore.consumers.execution` for the order of checks)."""

    ACCEPTED = "accepted"
    CLOSED = "closed"
    HALTED = "halted"
    KILL_SWITCH = "kill_switch"
    VERSION_REFUSED = "version_refused"
    STORE_REWOUND = "store_rewound"
    STORE_UNAVAILABLE = "store_unavailable"
    DAILY_DRAWDOWN = "daily_drawdown"
    DAILY_LOSS = "daily_loss"
    REDUCING = "reducing"
    INSTRUMENT_NOT_ALLOWED = "instrument_not_allowed"
    UNKNOWN_STRATEGY = "unknown_strategy"
    POSITION_OPEN = "position_open"
    LOW_CONFIDENCE = "low_confidence"
    COOLDOWN = "cooldown"
    MAX_POSITIONS = "max_positions"
    ORDER_RATE = "order_rate"
    PRICE_COLLAR = "price_collar"
    GROSS_EXPOSURE = "gross_exposure"
    ZERO_SIZE = "zero_size"
    ORDER_QUANTITY = "order_quantity"
    ORDER_NOTIONAL = "order_notional"
    POSITION_NOTIONAL = "position_notional"
    BROKER_REJECTED = "broker_rejected"

    def __str__(self) -> str:
        return self.value
