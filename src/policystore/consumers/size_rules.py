# ruff: noqa: PLR1730, FURB136 - sized() writes min() out as comparisons, the same result without a call
"""Sizing arithmetic without I/O: the size a decision takes under its caps, and the decision's record.

The rules (see :mod:`policystore.consumers.sizing` for the whole recipe): a
risk-based base size, scaled, then held under every cap, the tightest of
which binds; each cap that bound is named in the decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, NoReturn

from policystore._records import maker
from policystore.model.controls import InstrumentRules
from policystore.model.numbers import finite_float, short_repr
from policystore.model.policy import Policy, StrategyConfig

__all__ = [
    "CAP_GROSS_EXPOSURE",
    "CAP_LEVERAGE",
    "CAP_ORDER_NOTIONAL",
    "CAP_ORDER_QUANTITY",
    "CAP_POSITION_NOTIONAL",
    "CAP_RISK",
    "CAP_SCALING",
    "CAP_SIZE",
    "INF",
    "VOLATILITY_STOP_MULTIPLE",
    "ModeLimits",
    "SizingDecision",
    "StrategyCache",
    "check_held",
    "checked_inputs",
    "diagnose",
    "holding_caps",
    "make_sizing",
    "positive",
    "size_position",
    "sized",
    "stop_from",
    "tightest",
]

CAP_RISK: Final = "max_risk_pct_per_trade"
CAP_SIZE: Final = "position_size_cap"
CAP_LEVERAGE: Final = "max_leverage"
CAP_SCALING: Final = "scaling_factor"
CAP_ORDER_NOTIONAL: Final = "max_order_notional"
CAP_ORDER_QUANTITY: Final = "max_order_quantity"
CAP_POSITION_NOTIONAL: Final = "max_position_notional"
CAP_GROSS_EXPOSURE: Final = "max_gross_exposure"
#: Without a stop distance, the stop sits this many volatilities from the price.
VOLATILITY_STOP_MULTIPLE: Final = 2.0
INF: Final = math.inf
_TOLERANCE: Final = 1e-9  # relative: a cap within this of the result counts as binding
_ABOVE: Final = 1 + _TOLERANCE
_nextafter = math.nextafter


@dataclass(frozen=True, slots=True)
class SizingDecision:
    """One sizing decision: the size, the risk it takes, and what limited it.

    Attributes:
        symbol: the instrument.
        quantity: units to trade (0 if no size fits).
        notional: ``quantity * price``.
        leverage: ``notional / equity``.
        risk_amount: money lost if the stop is hit (``quantity * stop_distance``).
        policy_version: the version of the snapshot every limit came from.
        mode: the active mode of that snapshot.
        strategy: the strategy whose config applied, or None.
        binding_caps: every cap that bound the result, by name.
        multiplier: the learned multiplier (1.0 with learning off).
        equity, price, confidence, stop_distance, volatility: the inputs;
            ``stop_distance`` is the one used (derived from volatility if none was given).
    """

    symbol: str
    quantity: float
    notional: float
    leverage: float
    risk_amount: float
    policy_version: int
    mode: str
    strategy: str | None
    binding_caps: tuple[str, ...]
    multiplier: float
    equity: float
    price: float
    confidence: float
    stop_distance: float
    volatility: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as JSON-ready data."""
        data = asdict(self)
        data["binding_caps"] = list(self.binding_caps)
        return data


#: Builds a :class:`SizingDecision` (the same arguments and result) without a call per field.
make_sizing = maker(SizingDecision)


class ModeLimits:
    """The limits of one mode (or one strategy under it) that a size is held under.

    A class with slots, not a named tuple: every decision reads each of its fields.
    """

    __slots__ = ("learn", "max_leverage", "risk_pct", "scaling", "size_cap")

    def __init__(self, risk_pct: float, max_leverage: float, scaling: float, size_cap: float, learn: bool) -> None:
        self.risk_pct = risk_pct
        self.max_leverage = max_leverage
        self.scaling = scaling
        self.size_cap = size_cap
        self.learn = learn


class StrategyCache:
    """Effective strategy configs, computed once per snapshot.

    ``Policy.strategy(name)`` builds (and validates) a config object; doing
    that per signal costs microseconds, so results are kept until the
    snapshot object changes (a new version or a new source).
    """

    __slots__ = ("_configs", "_policy")

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._configs: dict[str, StrategyConfig | None] = {}

    def get(self, policy: Policy, name: str) -> StrategyConfig | None:
        """Return strategy ``name``'s effective config under ``policy``, or None if it has no such strategy."""
        if policy is not self._policy:
            self._policy = policy
            self._configs = {}
        try:
            return self._configs[name]
        except KeyError:
            config = policy.strategy(name) if name in policy.strategies else None
            self._configs[name] = config
            return config


def positive(name: str, value: float) -> float:
    """Return ``value`` as a float when it is a positive finite number.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    number = finite_float(value)  # None for a bool, a string, NaN, or an int too large for a float
    if number is not None and number > 0.0:
        return number
    raise ValueError(f"{name} must be a positive finite number (got {short_repr(value)})")


def diagnose(equity: float, price: float, confidence: float) -> NoReturn:
    """Say which of a decision's inputs is unusable.

    Raises:
        ValueError: naming the first input that is not usable.
    """
    positive("equity", equity)
    positive("price", price)
    raise ValueError(f"confidence must be a number in [0, 1] (got {short_repr(confidence)})")


def checked_inputs(equity: float, price: float, confidence: float) -> tuple[float, float, float]:
    """Return a decision's equity, price and confidence as floats, or say which one is unusable.

    Raises:
        ValueError: naming the first input that is not usable.
    """
    try:
        valid = 0.0 < equity < INF and 0.0 < price < INF and 0.0 <= confidence <= 1.0
        if valid and not isinstance(confidence, bool):
            # An int passes the comparisons exactly however large; as a float it must be finite
            # (10**400 raises OverflowError here, not deep in the arithmetic).
            return float(equity), float(price), float(confidence)
    except (TypeError, OverflowError):
        pass
    diagnose(equity, price, confidence)


def stop_from(price: float, stop_distance: float | None, volatility: float | None) -> tuple[float, float | None]:
    """Return the stop distance a decision uses, and its volatility checked.

    The stop distance given, else ``2 * volatility * price``.

    Raises:
        ValueError: a stop distance or volatility that is not a positive finite number, a stop
            that works out as none, or neither given.
    """
    if stop_distance is not None:
        stop = positive("stop_distance", stop_distance)
        if volatility is not None:
            volatility = positive("volatility", volatility)
        return stop, volatility
    if volatility is not None:
        volatility = positive("volatility", volatility)
        stop = VOLATILITY_STOP_MULTIPLE * volatility * price
        # Finite inputs can still overflow to inf (risk_amount would be 0 x inf = NaN) or
        # underflow to 0 (a stop at the entry price).
        if not 0.0 < stop < INF:
            raise ValueError(
                f"volatility {volatility!r} at price {price!r} gives a stop distance of {stop!r}, "
                "not a positive finite number"
            )
        return stop, volatility
    raise ValueError("stop_distance or volatility is required: neither was given, so no stop can be set")


def size_position(
    equity: float,
    price: float,
    stop_distance: float,
    *,
    risk_pct: float,
    max_leverage: float,
    scaling: float,
    size_cap: float,
    multiplier: float = 1.0,
    notional_caps: Sequence[tuple[str, float]] = (),
    quantity_cap: float = INF,
) -> tuple[float, tuple[str, ...]]:
    """Return the quantity that obeys every cap, and the caps that bound it (pure arithmetic).

    Args:
        equity: account equity, > 0.
        price: the entry price, > 0.
        stop_distance: price distance to the stop per unit, > 0.
        risk_pct: the fraction of equity one trade may risk.
        max_leverage: the most notional per unit of equity.
        scaling: the policy's scaling factor.
        size_cap: the largest notional of one position.
        multiplier: the learned multiplier, applied last (values above 1 count as 1).
        notional_caps: more caps on the order's notional, each with its name
            (an instrument's ``max_order_notional``, the room left under a
            position or exposure limit).
        quantity_cap: the largest quantity (an instrument's ``max_order_quantity``).

    Returns:
        ``(quantity, binding_caps)``; the caps named are those that bound the
        size before the multiplier. A NaN anywhere, or a negative multiplier,
        gives ``(0.0, ())``; a notional cap at or below zero (no room left)
        gives ``(0.0, names of those caps)``. The quantity is never negative and,
        after rounding, ``quantity * stop_distance <= equity * risk_pct``,
        ``quantity * price <= min(size_cap, equity * max_leverage, *notional_caps)``
        and ``quantity <= quantity_cap`` hold exactly.
    """
    return sized(
        equity,
        price,
        stop_distance,
        risk_pct,
        max_leverage,
        scaling,
        size_cap,
        multiplier,
        notional_caps,
        quantity_cap,
        tightest(notional_caps),
        INF,
    )


def tightest(notional_caps: Sequence[tuple[str, float]]) -> float:
    """The tightest of ``notional_caps`` (inf: none); the first that is not above zero (NaN included) as it is.

    Each ``min(a, b, ...)`` is written out as comparisons, as in :func:`sized`.
    """
    notional_cap = INF
    for _, cap in notional_caps:
        if not cap > 0.0:
            return cap
        if cap < notional_cap:
            notional_cap = cap
    return notional_cap


def sized(  # noqa: C901, PLR0912, PLR0917 - size_position's arithmetic, its arguments in order, one test per cap
    equity: float,
    price: float,
    stop_distance: float,
    risk_pct: float,
    max_leverage: float,
    scaling: float,
    size_cap: float,
    multiplier: float,
    notional_caps: Sequence[tuple[str, float]],
    quantity_cap: float,
    notional_cap: float,
    gross_room: float,
) -> tuple[float, tuple[str, ...]]:
    """:func:`size_position` with every argument positional: the sizer's own call, once per decision.

    ``notional_cap`` is :func:`tightest` of ``notional_caps`` and ``gross_room``: a caller
    that keeps its caps' tightest passes it, the others work it out. ``gross_room`` is one
    more notional cap, named ``max_gross_exposure`` after the others (inf: none): the
    sizer's room under the exposure limit, which changes with every decision, passed
    without a tuple of its own. Each ``min(a, b, ...)`` of the rules is
    written out as ``a``, then each next value that compares below it: exactly what
    ``min`` does (a NaN that is not first is passed over, ties keep the first) without a
    call to it.
    """
    risk_budget = equity * risk_pct
    q_risk = risk_budget / stop_distance
    desired = q_risk * scaling
    q_size = size_cap / price
    q_leverage = equity * max_leverage / price
    capped = desired  # min(desired, q_risk, q_size, q_leverage)
    if q_risk < capped:
        capped = q_risk
    if q_size < capped:
        capped = q_size
    if q_leverage < capped:
        capped = q_leverage
    if not notional_cap > 0.0:  # no room left (a NaN cap counts as none)
        names = tuple(name for name, cap in notional_caps if not cap > 0.0)
        return 0.0, names if gross_room > 0.0 else (*names, CAP_GROSS_EXPOSURE)
    quantity_cap_q = INF
    if notional_cap < INF or quantity_cap < INF:
        quantity_cap_q = notional_cap / price  # min(notional_cap / price, quantity_cap)
        if quantity_cap < quantity_cap_q:
            quantity_cap_q = quantity_cap
        if quantity_cap_q < capped:
            capped = quantity_cap_q
    # Comparisons pass a NaN over, which would silently drop that cap; q_risk's NaN shows in
    # desired, so checking the others is enough. A NaN is the one value unequal to itself, and
    # fails every comparison: these tests are math.isfinite and math.isnan without their calls.
    if not 0.0 <= capped < INF or (total := q_size + q_leverage + quantity_cap_q) != total or not multiplier >= 0:
        return 0.0, ()
    limit = capped * _ABOVE
    # Mostly one cap binds: a tuple grown by concatenation costs less than a list made into one.
    binding: tuple[str, ...] = ()
    if scaling < 1 and desired <= limit:
        binding += (CAP_SCALING,)
    if q_risk <= limit:
        binding += (CAP_RISK,)
    if q_size <= limit:
        binding += (CAP_SIZE,)
    if q_leverage <= limit:
        binding += (CAP_LEVERAGE,)
    if quantity_cap_q <= limit:
        for name, cap in notional_caps:
            if cap / price <= limit:
                binding += (name,)
        if gross_room / price <= limit:
            binding += (CAP_GROSS_EXPOSURE,)
        if quantity_cap <= limit:
            binding += (CAP_ORDER_QUANTITY,)
    quantity = capped * (1.0 if multiplier > 1.0 else multiplier)  # capped * min(multiplier, 1.0)
    notional_limit = size_cap  # min(size_cap, equity * max_leverage, notional_cap)
    if (leverage_limit := equity * max_leverage) < notional_limit:
        notional_limit = leverage_limit
    if notional_cap < notional_limit:
        notional_limit = notional_cap
    # Division and multiplication each round; step down until the products obey the caps exactly.
    while quantity > 0 and (
        quantity * stop_distance > risk_budget or quantity * price > notional_limit or quantity > quantity_cap
    ):
        quantity = _nextafter(quantity, 0.0)
    return quantity, binding


def check_held(position_notional: float, gross_exposure: float) -> None:
    """Refuse a held notional or exposure that is not a finite number >= 0.

    Raises:
        ValueError: naming the figure.
    """
    for label, value in (("position_notional", position_notional), ("gross_exposure", gross_exposure)):
        try:
            usable = not isinstance(value, bool) and 0.0 <= float(value) < INF
        except (TypeError, ValueError, OverflowError):
            usable = False
        if not usable:
            raise ValueError(f"{label} must be a finite number >= 0 (got {short_repr(value)})")


def holding_caps(instrument: InstrumentRules, position_notional: float) -> tuple[tuple[str, float], ...]:
    """The instrument's notional caps for an order where ``position_notional`` (> 0) is held already.

    The order notional limit as it is, and the room left under the position notional limit.
    """
    order, position = instrument.max_order_notional, instrument.max_position_notional
    caps: tuple[tuple[str, float], ...] = () if order is None else ((CAP_ORDER_NOTIONAL, order.value),)
    if position is None:
        return caps
    return (*caps, (CAP_POSITION_NOTIONAL, position.value - position_notional))
