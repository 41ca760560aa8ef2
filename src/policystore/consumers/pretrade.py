"""Pre-trade controls: the checks the executor makes of every order against the trading states and limits.

Each check takes the controls in force (:class:`~policystore.model.controls.TradingRules`,
resolved once per snapshot) and the figures of one order, and returns a
:class:`Refusal` naming the reason, the figures and the policy path that
refused, or None. No check does I/O; the executor decides the order in which
they run (see :mod:`policystore.consumers.execution`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from policystore.consumers.reasons import Reason
from policystore.model.controls import Bound, InstrumentRules, StateVerdict, TradingRules
from policystore.model.trading import TradingState

__all__ = [
    "THROTTLE_WINDOW",
    "OrderThrottle",
    "Refusal",
    "collar_check",
    "daily_loss_amount",
    "exposure_measure",
    "exposure_refusal",
    "figure",
    "halted_refusal",
    "listing_refusal",
    "percent",
    "reducing_refusal",
    "size_refusal",
    "state_refusal",
]

#: The window the order-rate throttle counts over.
THROTTLE_WINDOW: Final = timedelta(seconds=60)
#: How many orders the throttle keeps before it forgets those out of the window unasked.
_KEPT: Final = 4096


class Refusal(NamedTuple):
    """A refused order: the reason, the figures behind it in one sentence, and the path whose value refused."""

    reason: Reason
    detail: str
    control: str


def figure(value: float) -> str:
    """A money amount or quantity as a person reads it: ``12,400``, ``0.0125``."""
    return format(value, ",.10g")


def percent(fraction: float) -> str:
    """A fraction as a percentage: ``0.035`` is ``3.5%``."""
    return f"{fraction * 100:.4g}%"


def halted_refusal(verdict: StateVerdict, symbol: str) -> Refusal:
    """The refusal of any order, a close included, while the state in force is ``halted``."""
    return Refusal(Reason.HALTED, f"{verdict.path} is halted: no order in {symbol} may be sent", verdict.path)


def reducing_refusal(verdict: StateVerdict, symbol: str) -> Refusal:
    """The refusal of an order that would open a position while the state in force is ``reducing``."""
    detail = f"{verdict.path} is reducing: only an order that reduces an open position may be sent"
    return Refusal(Reason.REDUCING, f"{detail}, and this one would open a position in {symbol}", verdict.path)


def state_refusal(verdict: StateVerdict, symbol: str, *, reduces: bool) -> Refusal | None:
    """Refuse by the state in force: ``halted`` refuses any order, ``reducing`` one that does not reduce a position.

    Args:
        verdict: the strictest state that applies and the path that set it.
        symbol: the instrument, named in the detail.
        reduces: True when the order only reduces an open position.
    """
    state = verdict.state
    if state is TradingState.HALTED:
        return halted_refusal(verdict, symbol)
    if state is TradingState.REDUCING and not reduces:
        return reducing_refusal(verdict, symbol)
    return None


def listing_refusal(rules: TradingRules, instrument: InstrumentRules) -> Refusal | None:
    """Refuse an instrument without an entry of its own while ``trading.allow_unlisted`` is false."""
    if rules.allow_unlisted or instrument.listed:
        return None
    detail = f"{instrument.symbol} has no entry under instruments and trading.allow_unlisted is false"
    return Refusal(Reason.INSTRUMENT_NOT_ALLOWED, detail, "trading.allow_unlisted")


def collar_check(instrument: InstrumentRules, price: float, reference: float | None) -> tuple[Refusal | None, str]:
    """Check the price collar; return a refusal, and a note for the decision when the collar could not apply.

    Returns:
        ``(refusal or None, note)``: the note (starting ``"; "``) says the collar
        was not applied because the signal carried no reference price; it is
        empty otherwise.
    """
    collar = instrument.price_collar
    if collar is None:
        return None, ""
    if reference is None:
        shown = f"{collar.path} {percent(collar.value)}"
        return None, f"; price collar not applied: the signal has no reference price ({shown})"
    distance = abs(price - reference) / reference
    if distance > collar.value:
        detail = (
            f"price {figure(price)} is {percent(distance)} from the reference price {figure(reference)}, "
            f"beyond {collar.path} {percent(collar.value)}"
        )
        return Refusal(Reason.PRICE_COLLAR, detail, collar.path), ""
    return None, ""


def daily_loss_amount(loss_fraction: float, equity: float) -> float:
    """The day's loss in money, from the figures the drawdown breaker reads.

    The broker reports the loss as a fraction of the day's starting equity;
    that equity is ``equity / (1 - fraction)``, so the loss is
    ``fraction * equity / (1 - fraction)`` (0 when the day is up). The caller
    has checked both figures are finite and the equity positive; a fraction of
    1 or more means the equity is gone, which the drawdown check refuses first.
    """
    if loss_fraction <= 0.0:
        return 0.0
    return loss_fraction * equity / (1.0 - loss_fraction)


def exposure_refusal(limit: Bound, exposure: float | None) -> Refusal:
    """The refusal before sizing when gross exposure leaves no room under ``limit``, or cannot be measured.

    The caller has found ``exposure`` None (the broker's figure is no finite
    number) or at or above ``limit``.
    """
    if exposure is None:
        detail = f"the broker's gross exposure cannot be measured, so it counts as reaching {limit.path}"
    else:
        detail = f"gross exposure {figure(exposure)} leaves no room under {limit.path} {figure(limit.value)}"
    return Refusal(Reason.GROSS_EXPOSURE, detail, limit.path)


def size_refusal(  # noqa: PLR0917 - the figures of one order, in the order they are checked
    rules: TradingRules,
    instrument: InstrumentRules,
    quantity: float,
    price: float,
    held_notional: float,
    exposure: float,
) -> Refusal | None:
    """Check a sized order against the instrument's limits and gross exposure: the executor's last word.

    Rooms are computed as ``limit - held`` and compared with the order's
    notional, the same arithmetic the sizer sizes by, so an order it sized to
    the room is never refused for a rounding.
    """
    notional = quantity * price
    limit: Bound | None = instrument.max_order_quantity
    if limit is not None and quantity > limit.value:
        detail = f"order quantity {figure(quantity)} above {limit.path} {figure(limit.value)}"
        return Refusal(Reason.ORDER_QUANTITY, detail, limit.path)
    limit = instrument.max_order_notional
    if limit is not None and notional > limit.value:
        detail = f"order notional {figure(notional)} above {limit.path} {figure(limit.value)}"
        return Refusal(Reason.ORDER_NOTIONAL, detail, limit.path)
    limit = instrument.max_position_notional
    if limit is not None and notional > limit.value - held_notional:
        after = held_notional + notional
        detail = f"position notional {figure(after)} after the order above {limit.path} {figure(limit.value)}"
        return Refusal(Reason.POSITION_NOTIONAL, detail, limit.path)
    limit = rules.max_gross_exposure
    if limit is not None and notional > limit.value - exposure:
        detail = (
            f"gross exposure {figure(exposure)} + order {figure(notional)} = {figure(exposure + notional)} "
            f"above {limit.path} {figure(limit.value)}"
        )
        return Refusal(Reason.GROSS_EXPOSURE, detail, limit.path)
    return None


def exposure_measure(broker: Any, held: Callable[[], Iterable[str]]) -> Callable[[], Any]:
    """Return how gross exposure is measured at ``broker``: its own ``gross_exposure()``, or the positions held.

    A broker with a ``gross_exposure()`` method (the paper broker has one) answers
    for every position it holds. Any other broker is asked for the position of
    each symbol in ``held()`` (the ones this executor opened and has not seen
    closed), each counted at ``abs(quantity * mark_price)``. The caller reads
    the figure with :func:`~policystore.model.numbers.finite_float`: one that is
    no finite number is an exposure unknown.
    """
    own = getattr(broker, "gross_exposure", None)
    if callable(own):
        return own  # type: ignore[no-any-return]

    def from_positions() -> float:
        total = 0.0
        for symbol in held():
            position = broker.position(symbol)
            if position is not None:
                total += abs(position.quantity * position.mark_price)
        return total

    return from_positions


class OrderThrottle:
    """Orders one executor sent in the last 60 seconds, by the executor's clock.

    Every order sent is recorded (opens and closes, filled or rejected by the
    broker), so a limit set later counts the orders already sent. Counts are
    per executor: two executors each send up to ``max_orders_per_minute``.

    Attributes:
        sent: when each order kept was sent, oldest first; read it, :meth:`record` adds to it.
    """

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent: deque[datetime] = deque()

    def record(self, at: datetime) -> None:
        """Count one order sent at ``at``."""
        sent = self.sent
        sent.append(at)
        if len(sent) > _KEPT:  # without a limit asking, forget old orders now and then, not on every order
            self._forget(at - THROTTLE_WINDOW)

    def _forget(self, horizon: datetime) -> None:
        sent = self.sent
        while sent and sent[0] <= horizon:
            sent.popleft()

    def refusal(self, limit: Bound | None, clock: Callable[[], datetime]) -> Refusal | None:
        """Refuse when this executor sent ``limit`` orders or more in the 60 seconds before ``clock()``.

        The clock is read only when the orders kept reach the limit.
        """
        if limit is None:
            return None
        sent = self.sent
        if len(sent) < limit.value:
            return None  # fewer orders than the limit were ever kept: none to forget first
        self._forget(clock() - THROTTLE_WINDOW)
        if len(sent) < limit.value:
            return None
        detail = (
            f"this executor sent {len(sent)} orders in the last 60 s; {limit.path} is {figure(limit.value)} "
            "(counted per executor)"
        )
        return Refusal(Reason.ORDER_RATE, detail, limit.path)
