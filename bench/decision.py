"""Microseconds per signal from arrival to a broker order: gate + size + paper fill.

Signals cycle over 200 symbols one second apart, so no symbol is inside the
aggressive strategy's 30 s cooldown when it comes back; each position is closed
outside the timed region so the position limit never refuses. The baseline is
the paper broker's submit alone, measured in the same run.

Run: .venv/bin/python bench/decision.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from policystore import PolicyStore
from policystore.consumers import EventDrivenExecutor, Order, PaperBroker, Reason, RLPositionSizingAgent, Signal

SYMBOLS = 200


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> None:
    store = await PolicyStore.open(f"memory://bench-{uuid.uuid4().hex}", lkg_path=None, watch=False)
    broker = PaperBroker(1_000_000, fee_bps=5, slippage_bps=2)
    executor = EventDrivenExecutor(
        policy_store=store, broker=broker, sizer=RLPositionSizingAgent(policy_store=store, seed=1)
    )
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    signals = [
        Signal(f"S{i % SYMBOLS}", "buy", 0.8, 100.0, "aggressive", t0 + timedelta(seconds=i), stop_distance=2.0)
        for i in range(n)
    ]
    clock = time.perf_counter_ns
    samples: list[float] = []
    for s in signals:
        start = clock()
        decision = await executor.handle(s)
        samples.append((clock() - start) / 1000)
        assert decision.reason is Reason.ACCEPTED, decision.detail
        broker.close_all(s.time)  # untimed: keeps the position count at zero

    base: list[float] = []
    for s in signals:
        order = Order(s.symbol, "buy", 1.0, s.price, s.time, s.strategy)
        start = clock()
        await broker.submit(order)
        base.append((clock() - start) / 1000)
        broker.close_all(s.time)
    await store.close()

    median, p99 = statistics.median(samples), _percentile(samples, 0.99)
    b_median = statistics.median(base)
    print(f"signals: {n}, all accepted")
    print(f"arrival -> broker order (gate + size + paper fill): median {median:.1f} us, p99 {p99:.1f} us")
    print(f"baseline, paper broker submit alone:               median {b_median:.1f} us")
    print(
        f"ratio median / baseline: {median / b_median:.1f}x; target median < 20 us: "
        f"{'met' if median < 20 else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
