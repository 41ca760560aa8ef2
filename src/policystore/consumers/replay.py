"""Replay: run recorded signals and prices through the sizer, executor and paper broker under a risk mode.

A replay runs under one policy: a version read from a store (every mode,
strategy, hard limit and trading control in it), or the built-in policy. Each
mode runs in its own in-memory copy of that version with that mode active, the
kill switch off and the firm-wide ``trading.state`` active (see
:mod:`policystore.consumers.replay_store`), so modes never share state and
every decision records the replayed version. Every other control applies as
it would live: strategy and instrument states, instrument limits, price
collars (for signals that carry a reference price), the order-rate throttle
(by the replayed time), gross exposure and the daily loss limit. A preset the policy does not
hold may be named too, as a what-if: it is added to the copy, within the
policy's hard limits, and its result says so. Events are taken in time order,
prices before signals of the same instant: a price marks the broker (which may
close a position on its stop or target), a signal goes to the executor. When a
new UTC day starts and the kill switch was turned on by the drawdown breaker,
the replay turns it off as an admin would at the start of a new day (the daily
loss limit's trips included). At the end every open position is closed at its
last price.

CSV formats (header row required, times ISO 8601 with a zone):

* signals: ``time,symbol,side,confidence,price,strategy[,stop_distance][,volatility][,reference_price]``
* prices: ``time,symbol,price``
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

from policystore.consumers.brokers import ClosedTrade, PaperBroker
from policystore.consumers.decision_log import MemoryDecisionLog
from policystore.consumers.execution import EventDrivenExecutor, ExecutionDecision, Reason, Signal
from policystore.consumers.replay_store import ReplayBackend, builtin_policy, plan_replay
from policystore.consumers.sizing import RLPositionSizingAgent
from policystore.model.modes import BUILTIN_MODES
from policystore.model.policy import Policy
from policystore.store.store import PolicyStore

__all__ = [
    "COMPARE_MODES",
    "REFUSAL_MARKERS",
    "ModeResult",
    "PriceTick",
    "builtin_policy",
    "load_prices",
    "load_signals",
    "plot_equity",
    "replay_mode",
    "replay_modes",
    "sample_paths",
]

#: The built-in modes, which the built-in policy holds.
COMPARE_MODES: Final = tuple(BUILTIN_MODES)
_SIGNAL_COLUMNS: Final = ("time", "symbol", "side", "confidence", "price", "strategy")


@dataclass(frozen=True, slots=True)
class PriceTick:
    """One price of one symbol at one time."""

    time: datetime
    symbol: str
    price: float


@dataclass(frozen=True, slots=True)
class ModeResult:
    """What one mode did with the replayed data.

    Attributes:
        mode: the mode replayed.
        policy_version: the version of the policy replayed (1 for the built-in policy).
        preset: True when ``mode`` is a preset added to the policy for a what-if.
        signals, accepted: how many signals came, and how many opened or closed a position.
        refused: refusal reason -> count.
        trades: round trips closed.
        pnl: final equity minus starting equity.
        max_drawdown: the largest fall from a peak of the equity curve, as a fraction of the peak.
        starting_equity, final_equity: equity at start and end.
        curve: (time, equity) after every price.
        decisions: every decision, in order.
        closed: every round trip, in order.
    """

    mode: str
    policy_version: int
    preset: bool
    signals: int
    accepted: int
    refused: dict[str, int]
    trades: int
    pnl: float
    max_drawdown: float
    starting_equity: float
    final_equity: float
    curve: list[tuple[datetime, float]] = field(repr=False)
    decisions: list[ExecutionDecision] = field(repr=False)
    closed: list[ClosedTrade] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """Return the figures (no curve or decisions) as JSON-ready data."""
        return {
            "mode": self.mode,
            "policy_version": self.policy_version,
            "preset": self.preset,
            "signals": self.signals,
            "accepted": self.accepted,
            "refused": dict(self.refused),
            "trades": self.trades,
            "pnl": round(self.pnl, 2),
            "max_drawdown": round(self.max_drawdown, 4),
            "starting_equity": self.starting_equity,
            "final_equity": round(self.final_equity, 2),
        }


def _time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"time {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return parsed


def _optional(value: str | None) -> float | None:
    return float(value) if value not in {None, ""} else None


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return [(f"{path}, line {reader.line_num}", row) for row in reader]


def load_signals(path: str | Path) -> list[Signal]:
    """Read a signals CSV.

    Raises:
        ValueError: a missing column or a bad value (the message gives the file and line).
        OSError: the file cannot be read.
    """
    signals = []
    for where, row in _rows(Path(path), _SIGNAL_COLUMNS):
        try:
            signals.append(
                Signal(
                    row["symbol"],
                    row["side"],  # type: ignore[arg-type]
                    float(row["confidence"]),
                    float(row["price"]),
                    row["strategy"],
                    _time(row["time"]),
                    _optional(row.get("stop_distance")),
                    _optional(row.get("volatility")),
                    _optional(row.get("reference_price")),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return signals


def load_prices(path: str | Path) -> list[PriceTick]:
    """Read a prices CSV.

    Raises:
        ValueError: a missing column or a bad value (the message gives the file and line).
        OSError: the file cannot be read.
    """
    ticks = []
    for where, row in _rows(Path(path), ("time", "symbol", "price")):
        try:
            price = float(row["price"])
            if not 0 < price < float("inf"):
                raise ValueError(f"price must be a positive finite number (got {row['price']!r})")  # noqa: TRY301 - reported with its line below
            ticks.append(PriceTick(_time(row["time"]), row["symbol"], price))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return ticks


def sample_paths() -> tuple[Path, Path]:
    """Return the shipped sample data: (signals CSV, prices CSV)."""
    base = resources.files("policystore") / "data"
    return Path(str(base / "sample_signals.csv")), Path(str(base / "sample_prices.csv"))


def _max_drawdown(curve: list[tuple[datetime, float]]) -> float:
    peak, worst = float("-inf"), 0.0
    for _, equity in curve:
        peak = max(peak, equity)
        worst = max(worst, (peak - equity) / peak)
    return worst


async def replay_mode(
    mode: str,
    signals: list[Signal],
    prices: list[PriceTick],
    *,
    policy: Policy | None = None,
    equity: float = 1_000.0,
    fee_bps: float = 5.0,
    slippage_bps: float = 2.0,
    seed: int = 0,
    as_held: bool = False,
) -> ModeResult:
    """Replay ``signals`` and ``prices`` under ``mode`` of ``policy``, in a private in-memory copy of it.

    Args:
        mode: a mode of ``policy``, or a preset name (a what-if).
        signals: the signals, any order (sorted by time here).
        prices: the prices, any order.
        policy: the policy to replay, such as a store's snapshot; None for the built-in policy.
        equity: the paper account's starting equity.
        fee_bps: the paper broker's fee, in basis points.
        slippage_bps: the paper broker's slippage, in basis points.
        seed: seeds the sizer's learner.
        as_held: keep ``policy``'s kill switch and firm-wide state instead of
            starting with trading on (see :func:`plan_replay`).

    Returns:
        The mode's figures, curve and decisions.

    Raises:
        ValueError: an unknown mode.
        PolicyValidationError: a preset that breaks one of the policy's hard limits.
    """
    plan = plan_replay(policy if policy is not None else builtin_policy(), mode, as_held=as_held)
    store = PolicyStore(ReplayBackend(plan.document), lkg_path=None, watch=False)
    try:
        await store.initialize()
        broker = PaperBroker(equity, fee_bps=fee_bps, slippage_bps=slippage_bps)
        log = MemoryDecisionLog()
        now: list[datetime] = [signals[0].time if signals else datetime.now().astimezone()]
        executor = EventDrivenExecutor(
            policy_store=store,
            broker=broker,
            sizer=RLPositionSizingAgent(policy_store=store, seed=seed),
            decision_log=log,
            clock=lambda: now[0],
        )
        events: list[tuple[datetime, int, PriceTick | Signal]] = [(t.time, 0, t) for t in prices]
        events += [(s.time, 1, s) for s in signals]
        events.sort(key=lambda e: (e[0], e[1]))
        curve: list[tuple[datetime, float]] = [(events[0][0], broker.equity)] if events else []
        day = events[0][0].date() if events else None
        for time, _, item in events:
            now[0] = time
            if time.date() != day:
                day = time.date()
                emergency = store.snapshot().emergency
                if emergency.active and emergency.activated_by == "executor":
                    await store.set_emergency_mode(False, updated_by="replay", reason="replay: a new trading day")
            if isinstance(item, PriceTick):
                broker.mark(item.symbol, item.price, time)
                curve.append((time, broker.equity))
            else:
                await executor.handle(item)
        if events:
            broker.close_all(events[-1][0])
            curve.append((events[-1][0], broker.equity))
        decisions = log.decisions
        refused = Counter(d.reason.value for d in decisions if not d.accepted)
        return ModeResult(
            mode=mode,
            policy_version=plan.version,
            preset=plan.preset,
            signals=len(decisions),
            accepted=sum(d.accepted for d in decisions),
            refused=dict(sorted(refused.items())),
            trades=len(broker.closed),
            pnl=broker.equity - equity,
            max_drawdown=_max_drawdown(curve),
            starting_equity=equity,
            final_equity=broker.equity,
            curve=curve,
            decisions=decisions,
            closed=list(broker.closed),
        )
    finally:
        await store.close()


async def replay_modes(
    modes: list[str], signals: list[Signal], prices: list[PriceTick], **options: Any
) -> list[ModeResult]:
    """Replay the same data under each mode in turn (see :func:`replay_mode`)."""
    return [await replay_mode(mode, signals, prices, **options) for mode in modes]


#: The marker each refusal is drawn with on a mode's curve; a reason not listed is drawn as a dot.
REFUSAL_MARKERS: Final[dict[Reason, str]] = {
    Reason.DAILY_DRAWDOWN: "v",
    Reason.DAILY_LOSS: "d",
    Reason.KILL_SWITCH: "x",
    Reason.HALTED: "s",
    Reason.REDUCING: "D",
    Reason.INSTRUMENT_NOT_ALLOWED: "P",
    Reason.ORDER_NOTIONAL: "^",
    Reason.ORDER_QUANTITY: "<",
    Reason.POSITION_NOTIONAL: ">",
    Reason.GROSS_EXPOSURE: "h",
    Reason.PRICE_COLLAR: "*",
    Reason.ORDER_RATE: "p",
    Reason.LOW_CONFIDENCE: "1",
    Reason.COOLDOWN: "2",
    Reason.MAX_POSITIONS: "3",
    Reason.ZERO_SIZE: "4",
    Reason.POSITION_OPEN: "+",
    Reason.UNKNOWN_STRATEGY: "|",
    Reason.BROKER_REJECTED: "X",
}
#: The breakers' trips are drawn large: from each, the kill switch refuses the rest of the day.
_TRIPS: Final = frozenset({Reason.DAILY_DRAWDOWN, Reason.DAILY_LOSS})


def _refusal_points(
    result: ModeResult, times: list[datetime], values: list[float]
) -> dict[Reason, tuple[list[datetime], list[float]]]:
    """Each refusal reason of ``result`` with the points of its curve where it happened."""
    points: dict[Reason, tuple[list[datetime], list[float]]] = {}
    at = 0
    for decision in result.decisions:  # in time order, as the curve is
        if decision.accepted:
            continue
        while at + 1 < len(times) and times[at + 1] <= decision.signal.time:
            at += 1
        xs, ys = points.setdefault(decision.reason, ([], []))
        xs.append(times[at])
        ys.append(values[at])
    return points


def plot_equity(results: list[ModeResult], path: str | Path) -> None:
    """Draw one equity curve per mode into a PNG file, each refusal marked on it by reason (matplotlib, Agg).

    Each refusal is a small marker of its reason's shape (:data:`REFUSAL_MARKERS`)
    in its mode's colour, where it happened on the curve; the breakers' trips
    (``daily_drawdown``, ``daily_loss``) are drawn large. The legend names
    each reason that occurs.

    Raises:
        ImportError: matplotlib is not installed (``pip install policystore[plot]``).
    """
    try:
        import matplotlib as mpl  # optional and slow to import: only when plotting

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'policystore[plot]'") from exc
    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=110)
    seen: set[Reason] = set()
    for result in results:
        times = [t for t, _ in result.curve]
        values = [v for _, v in result.curve]
        label = (
            f"{result.mode}: PnL {result.pnl:+.2f}, max DD {result.max_drawdown:.1%}, "
            f"{result.accepted}/{result.signals} accepted"
        )
        (line,) = ax.plot(times, values, label=label, linewidth=1.6)  # type: ignore[arg-type]  # datetimes plot
        if not times:
            continue
        for reason, (xs, ys) in _refusal_points(result, times, values).items():
            trip = reason in _TRIPS
            ax.plot(
                xs,  # type: ignore[arg-type]  # datetimes plot
                ys,
                marker=REFUSAL_MARKERS.get(reason, "."),
                markersize=11 if trip else 5,
                color=line.get_color(),
                markeredgecolor="black" if trip else line.get_color(),
                alpha=1.0 if trip else 0.7,
                linestyle="none",
            )
            seen.add(reason)
    for reason in [r for r in Reason if r in seen]:  # the legend in the order of the checks
        trip = reason in _TRIPS
        ax.plot(
            [],
            [],
            marker=REFUSAL_MARKERS.get(reason, "."),
            color="grey",
            markeredgecolor="black" if trip else "grey",
            markersize=9 if trip else 6,
            linestyle="none",
            label=f"{reason.value}: kill switch on for the rest of the day" if trip else f"refused: {reason.value}",
        )
    if results:
        ax.axhline(results[0].starting_equity, color="grey", linewidth=0.8, linestyle="--", label="starting equity")
    ax.set_title("Replay: equity by risk mode (same signals and prices), refusals marked by reason")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("equity")
    ax.grid(visible=True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)
