"""Brokers: the ``Broker`` protocol an executor sends orders to, and a paper broker that simulates fills.

The paper broker fills at the order's price moved against the trader by the
slippage, charges a fee on every fill's notional, holds one position per
symbol, and closes it on its stop, its target, an opposite order, or
:meth:`PaperBroker.close_all`. Its day starts at the first event of each UTC
date; the day's loss is measured against the equity at that moment.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Literal, Protocol

from policystore._records import maker

__all__ = ["Broker", "ClosedTrade", "Fill", "Order", "PaperBroker", "Position", "Side"]

log = logging.getLogger("policystore.consumers")

Side = Literal["buy", "sell"]
CloseReason = Literal["stop", "target", "opposite_signal", "end"]


@dataclass(frozen=True, slots=True)
class Order:
    """An order to open a position, or with ``reduce_only`` to close the one held.

    Attributes:
        symbol, side, quantity, price: what to trade, at the reference price.
        time: when the order was made (UTC).
        strategy: the strategy it belongs to.
        stop_price, target_price: exit levels of the position it opens, if any.
        policy_version: the policy version the order was decided under.
        reduce_only: close the held position instead of opening one.
    """

    symbol: str
    side: Side
    quantity: float
    price: float
    time: datetime
    strategy: str
    stop_price: float | None = None
    target_price: float | None = None
    policy_version: int = 0
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: what was bought or sold, at what price and fee.

    Attributes:
        action: ``"open"`` or ``"close"``.
        reason: why a close happened (``stop``, ``target``, ``opposite_signal``, ``end``); ``"signal"`` for opens.
        realized_pnl: for a close, the trade's PnL net of both fees; 0 for an open.
    """

    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    time: datetime
    action: Literal["open", "close"]
    reason: str
    realized_pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class Position:
    """An open position, as the broker sees it now."""

    symbol: str
    side: Side
    quantity: float
    entry_price: float
    entry_fee: float
    opened_at: datetime
    strategy: str
    stop_price: float | None
    target_price: float | None
    mark_price: float


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip: the position's entry and exit, and its PnL net of both fees."""

    symbol: str
    side: Side
    quantity: float
    entry_price: float
    exit_price: float
    opened_at: datetime
    closed_at: datetime
    strategy: str
    reason: str
    pnl: float


# The records the paper broker makes on every fill, built without a call per field.
_fill, _position, _closed_trade = maker(Fill), maker(Position), maker(ClosedTrade)


class Broker(Protocol):
    """What an executor needs from a broker. Account state is read locally; only orders are awaited.

    A broker may also offer ``gross_exposure() -> float``, the sum of the
    notionals of every open position (the paper broker does): an executor
    measures ``trading.max_gross_exposure`` by it, and otherwise by the
    positions it opened itself.
    """

    @property
    def equity(self) -> float:
        """The account's equity now: what positions are sized against."""

    async def submit(self, order: Order) -> Fill:
        """Execute ``order`` and return its fill."""

    def position(self, symbol: str) -> Position | None:
        """Return the open position in ``symbol``, if any."""

    def open_position_count(self) -> int:
        """Return how many positions are open."""

    def daily_loss_fraction(self) -> float:
        """Return the day's loss as a fraction of the day's starting equity (0 when up).

        NaN when the loss cannot be measured; an executor treats any non-finite
        figure as the limit reached.
        """

    def on_close(self, callback: Callable[[ClosedTrade], None]) -> None:
        """Call ``callback`` with every round trip the broker closes."""


class _Open:
    """A position while it is open (mutable inside the broker only)."""

    __slots__ = (
        "entry_fee",
        "entry_price",
        "mark",
        "opened_at",
        "quantity",
        "side",
        "sign",
        "stop",
        "strategy",
        "symbol",
        "target",
    )

    def __init__(self, order: Order, price: float, fee: float) -> None:
        self.symbol = order.symbol
        self.side: Side = order.side
        self.sign = 1.0 if order.side == "buy" else -1.0
        self.quantity = order.quantity
        self.entry_price = price
        self.entry_fee = fee
        self.opened_at = order.time
        self.strategy = order.strategy
        self.stop = order.stop_price
        self.target = order.target_price
        self.mark = order.price


class PaperBroker:
    """A simulated broker for replays, tests and dry runs.

    Args:
        equity: starting equity.
        fee_bps: fee per fill, in basis points of the fill's notional.
        slippage_bps: how far fills move against the trader, in basis points of the price.

    Raises:
        ValueError: equity not positive, or a negative fee or slippage.
    """

    def __init__(self, equity: float = 10_000.0, *, fee_bps: float = 5.0, slippage_bps: float = 2.0) -> None:
        if not equity > 0:
            raise ValueError(f"equity must be positive (got {equity!r})")
        if not fee_bps >= 0 or not slippage_bps >= 0:
            raise ValueError(f"fee_bps and slippage_bps must be >= 0 (got {fee_bps!r}, {slippage_bps!r})")
        self.starting_equity = float(equity)
        self._fee = fee_bps / 10_000
        self._slip = slippage_bps / 10_000
        self._positions: dict[str, _Open] = {}
        self._realized = 0.0  # closed trades' PnL minus every fee paid, opens included
        self._day: date | None = None
        self._day_start = self._day_end = datetime.min.replace(tzinfo=UTC)
        self.day_start_equity = float(equity)
        self.fills: list[Fill] = []
        self.closed: list[ClosedTrade] = []
        self._listeners: list[Callable[[ClosedTrade], None]] = []

    # -- account -----------------------------------------------------------

    @property
    def realized_pnl(self) -> float:
        """PnL of closed trades, net of every fee paid so far."""
        return self._realized

    @property
    def unrealized_pnl(self) -> float:
        """PnL of open positions at their last marks."""
        if not self._positions:  # an executor asks before every order, mostly with nothing open
            return 0.0
        return sum(p.sign * (p.mark - p.entry_price) * p.quantity for p in self._positions.values())

    @property
    def equity(self) -> float:
        """Starting equity plus realised and unrealised PnL."""
        if not self._positions:  # an executor asks before every order, mostly with nothing open
            return self.starting_equity + self._realized
        return self.starting_equity + self._realized + self.unrealized_pnl

    def position(self, symbol: str) -> Position | None:
        """Return the open position in ``symbol``, if any."""
        p = self._positions.get(symbol)
        if p is None:
            return None
        return _position(
            p.symbol, p.side, p.quantity, p.entry_price, p.entry_fee, p.opened_at, p.strategy, p.stop, p.target, p.mark
        )

    def positions(self) -> list[Position]:
        """Return every open position, by symbol."""
        return [pos for s in sorted(self._positions) if (pos := self.position(s)) is not None]

    def open_position_count(self) -> int:
        """Return how many positions are open."""
        return len(self._positions)

    def gross_exposure(self) -> float:
        """Return the sum of the notionals of every open position at its last mark (``abs(quantity * mark)``).

        An executor measures ``trading.max_gross_exposure`` by this when a broker has it.
        """
        if not self._positions:
            return 0.0
        return sum((abs(p.quantity * p.mark) for p in self._positions.values()), 0.0)

    def daily_loss_fraction(self) -> float:
        """Return the day's loss as a fraction of the day's starting equity (0 when up).

        NaN when it cannot be measured: a non-finite equity, or a day that started
        with no positive equity.
        """
        start = self.day_start_equity
        if not start > 0:
            return math.nan  # no base to measure against; also avoids dividing by zero
        # The equity property's figure, without its call: an executor asks before every order.
        equity = self.starting_equity + self._realized
        if self._positions:
            equity += self.unrealized_pnl
        loss = (start - equity) / start
        # Not max(0.0, loss): max() drops a NaN that is not its first argument, reporting a
        # broken account as "no loss" and letting the drawdown breaker pass it.
        return 0.0 if loss < 0 else loss

    def on_close(self, callback: Callable[[ClosedTrade], None]) -> None:
        """Call ``callback`` with every round trip closed from now on."""
        self._listeners.append(callback)

    def _roll_day(self, time: datetime) -> None:
        # Two comparisons on the hot path; the date is only worked out when a day may have turned.
        if self._day_start <= time < self._day_end:
            return
        today = time.date()
        if today != self._day:
            self._day = today
            self.day_start_equity = self.equity
        self._day_start = datetime.combine(today, dt_time(), tzinfo=time.tzinfo)
        self._day_end = self._day_start + timedelta(days=1)

    # -- orders and prices -------------------------------------------------

    async def submit(self, order: Order) -> Fill:
        """Execute ``order`` at its price moved by the slippage; an opposite order closes the held position.

        Returns:
            The fill.

        Raises:
            ValueError: a quantity or price that is not positive and finite, a second
                position in one symbol, or ``reduce_only`` with nothing to reduce.
        """
        # An infinite price or quantity would turn the account's equity into inf or NaN.
        if not 0 < order.quantity < math.inf or not 0 < order.price < math.inf:
            raise ValueError(
                f"order quantity and price must be positive finite numbers (got {order.quantity}, {order.price})"
            )
        time = order.time
        if not self._day_start <= time < self._day_end:  # checked here first: every order asks
            self._roll_day(time)
        held = self._positions.get(order.symbol)
        if held is not None and held.side != order.side:
            return self._close(held, order.price, order.time, "opposite_signal")
        if order.reduce_only:
            raise ValueError(f"reduce-only order for {order.symbol}: no opposite position is open")
        if held is not None:
            raise ValueError(f"a {held.side} position in {order.symbol} is already open")
        sign = 1.0 if order.side == "buy" else -1.0
        price = order.price * (1 + sign * self._slip)
        fee = price * order.quantity * self._fee
        self._positions[order.symbol] = _Open(order, price, fee)
        self._realized -= fee
        fill = _fill(order.symbol, order.side, order.quantity, price, fee, order.time, "open", "signal")
        self.fills.append(fill)
        return fill

    def mark(self, symbol: str, price: float, time: datetime) -> Fill | None:
        """Record a new price for ``symbol``; close its position if the stop or target is reached.

        A stop or target is filled at the marked price (a gap past the stop
        fills worse than the stop), moved by the slippage.

        Returns:
            The closing fill, if the mark closed the position.

        Raises:
            ValueError: a price that is not positive and finite.
        """
        if not 0 < price < math.inf:
            raise ValueError(f"price must be a positive finite number (got {price!r})")
        self._roll_day(time)
        p = self._positions.get(symbol)
        if p is None:
            return None
        p.mark = price
        if p.stop is not None and p.sign * (price - p.stop) <= 0:
            return self._close(p, price, time, "stop")
        if p.target is not None and p.sign * (price - p.target) >= 0:
            return self._close(p, price, time, "target")
        return None

    def close_all(self, time: datetime) -> list[Fill]:
        """Close every open position at its last mark (reason ``end``)."""
        return [self._close(p, p.mark, time, "end") for p in list(self._positions.values())]

    def _close(self, p: _Open, price: float, time: datetime, reason: CloseReason) -> Fill:
        exit_price = price * (1 - p.sign * self._slip)
        fee = exit_price * p.quantity * self._fee
        gross = p.sign * (exit_price - p.entry_price) * p.quantity
        pnl = gross - p.entry_fee - fee
        self._realized += gross - fee  # the entry fee was charged at the open
        del self._positions[p.symbol]
        side: Side = "sell" if p.side == "buy" else "buy"
        fill = _fill(p.symbol, side, p.quantity, exit_price, fee, time, "close", reason, pnl)
        self.fills.append(fill)
        trade = _closed_trade(
            p.symbol, p.side, p.quantity, p.entry_price, exit_price, p.opened_at, time, p.strategy, reason, pnl
        )
        self.closed.append(trade)
        for listener in list(self._listeners):
            try:
                listener(trade)
            except Exception:
                log.exception("A close listener failed on %s", p.symbol)
        return fill
