"""Microseconds per signal from arrival to a broker order: gate + size + paper fill, without and with every control.

Two cases, measured in the same run, interleaved in rounds so that a machine
that slows down part-way through slows both alike:

* ``none``: the built-in policy, no trading control set (today's case);
* ``every control``: states at all three scopes (the firm active, a strategy
  halted and one reducing, an instrument halted, the default active), every
  instrument of the signals listed (``trading.allow_unlisted`` false) with
  its own order notional limit, the default entry's order notional, quantity
  and position limits and a 5 % price collar (every signal carries a reference
  price), the order-rate throttle, gross exposure, the daily loss limit and
  the optional hard caps. Every limit is set wide enough that every signal is
  accepted, so both cases do the same work besides the checks.

Signals cycle over 200 symbols one second apart, so no symbol is inside the
aggressive strategy's 30 s cooldown when it comes back; each position is
closed outside the timed region so the position limit never refuses. The
baseline is the paper broker's submit alone, measured in the same run.

Run: .venv/bin/python bench/decision.py [N]   (N signals per case, default 20,000)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from policystore import PolicyStore
from policystore.consumers import EventDrivenExecutor, Order, PaperBroker, Reason, RLPositionSizingAgent, Signal

SYMBOLS = 200
ROUNDS = 10
#: Targets: the every-control case's median and p99, and its median over the none case's.
MEDIAN_TARGET, P99_TARGET, RATIO_TARGET = 15.0, 40.0, 1.25


def _controls() -> dict[str, Any]:
    """Every trading control, set so that the benchmark's signals all pass."""
    listed = {f"instruments.S{i}.max_order_notional": 400_000.0 for i in range(SYMBOLS)}
    return {
        "trading.state": "active",
        "strategies.conservative.state": "halted",
        "strategies.defensive.state": "reducing",
        "instruments.HALTED.state": "halted",
        "instruments.default.state": "active",
        "instruments.default.max_order_notional": 500_000.0,
        "instruments.default.max_order_quantity": 1_000_000.0,
        "instruments.default.max_position_notional": 500_000.0,
        "instruments.default.price_collar": 0.05,
        "trading.allow_unlisted": False,
        "trading.max_orders_per_minute": 10**9,
        "trading.max_daily_loss": 1_000_000.0,
        "trading.max_gross_exposure": 1e9,
        "hard_limits.max_order_notional": 1_000_000.0,
        "hard_limits.max_position_notional": 1_000_000.0,
        "hard_limits.max_gross_exposure": 1e10,
        "hard_limits.max_daily_loss": 2_000_000.0,
        "hard_limits.max_orders_per_minute": 10**10,
        **listed,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Case:
    """One store, broker and executor, timed signal by signal."""

    def __init__(self, name: str, store: PolicyStore) -> None:
        self.name = name
        self.store = store
        self.broker = PaperBroker(1_000_000, fee_bps=5, slippage_bps=2)
        self.executor = EventDrivenExecutor(
            policy_store=store, broker=self.broker, sizer=RLPositionSizingAgent(policy_store=store, seed=1)
        )
        self.samples: list[float] = []

    async def run(self, signals: list[Signal]) -> None:
        clock = time.perf_counter_ns
        for s in signals:
            start = clock()
            decision = await self.executor.handle(s)
            self.samples.append((clock() - start) / 1000)
            assert decision.reason is Reason.ACCEPTED, f"{self.name}: {decision.reason}: {decision.detail}"
            self.broker.close_all(s.time)  # untimed: keeps the position count at zero

    def figures(self) -> tuple[float, float]:
        return statistics.median(self.samples), _percentile(self.samples, 0.99)


async def main(n: int) -> None:
    none_store = await PolicyStore.open(f"memory://bench-{uuid.uuid4().hex}", lkg_path=None, watch=False)
    every_store = await PolicyStore.open(f"memory://bench-{uuid.uuid4().hex}", lkg_path=None, watch=False)
    await every_store.update(_controls(), updated_by="bench", reason="every trading control")
    none, every = Case("none", none_store), Case("every control", every_store)
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    signals = [
        Signal(
            f"S{i % SYMBOLS}",
            "buy",
            0.8,
            100.0,
            "aggressive",
            t0 + timedelta(seconds=i),
            stop_distance=2.0,
            reference_price=100.1,
        )
        for i in range(n)
    ]
    chunk = max(1, n // ROUNDS)
    for start in range(0, n, chunk):
        await none.run(signals[start : start + chunk])
        await every.run(signals[start : start + chunk])

    base: list[float] = []
    broker = PaperBroker(1_000_000, fee_bps=5, slippage_bps=2)
    clock = time.perf_counter_ns
    for s in signals:
        order = Order(s.symbol, "buy", 1.0, s.price, s.time, s.strategy)
        start_ns = clock()
        await broker.submit(order)
        base.append((clock() - start_ns) / 1000)
        broker.close_all(s.time)
    await none_store.close()
    await every_store.close()

    (n_median, n_p99), (e_median, e_p99) = none.figures(), every.figures()
    ratio = e_median / n_median

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"signals: {n} per case, all accepted; {ROUNDS} interleaved rounds")
    print(f"no control set (none):     median {n_median:.1f} us, p99 {n_p99:.1f} us")
    print(f"every control set:         median {e_median:.1f} us, p99 {e_p99:.1f} us")
    print(f"ratio every / none:        median {ratio:.2f}x, p99 {e_p99 / n_p99:.2f}x")
    print(f"baseline, paper broker submit alone: median {statistics.median(base):.1f} us")
    print(
        f"targets (every control): median < {MEDIAN_TARGET:g} us {verdict(e_median < MEDIAN_TARGET)}; "
        f"median <= {RATIO_TARGET}x none {verdict(ratio <= RATIO_TARGET)}; "
        f"p99 < {P99_TARGET:g} us {verdict(e_p99 < P99_TARGET)}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
