"""Read-path benchmark: the cost of one policy read, against baselines measured in the same run.

Run on demand::

    .venv/bin/python bench/read_path.py [--number N] [--repeat R] [--latency-trials T] [--no-expiring]

Prints ns per read for ``store.get(path)`` and for a field of a snapshot already
held (with an expiring change in force, unless ``--no-expiring``), next to a
plain dict lookup, a one-line ``dict.get`` method and the design this replaced
(an ``async get_value`` that rebuilt the path table on every call), with the
ratios the targets are stated in. Then measures how long a
change committed by another OS process takes to reach this process's snapshot
(SQLite ``PRAGMA data_version`` watch).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from pathlib import Path
from typing import Any

from policystore import Policy, PolicyStore
from policystore.model.paths import flatten

PATH = "risk.max_leverage"


class OneLine:
    """The baseline for store.get: one method, one dict.get."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def get(self, path: str, default: Any = None) -> Any:
        return self._values.get(path, default)


class Rebuilding:
    """The replaced design: an async read that rebuilds the path table on every call."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    async def get_value(self, path: str, default: Any = None) -> Any:
        return flatten(self._policy).get(path, default)


def best_ns(stmt: str, env: dict[str, Any], number: int, repeat: int) -> float:
    """Best (min) ns per execution of ``stmt`` over ``repeat`` runs of ``number``."""
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e9


def best_async_ns(make: Any, loop: asyncio.AbstractEventLoop, number: int, repeat: int) -> float:
    """Best ns per await of ``make()``, awaited ``number`` times in one coroutine."""

    async def run() -> None:
        for _ in range(number):
            await make()

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        loop.run_until_complete(run())
        times.append(time.perf_counter() - start)
    return min(times) / number * 1e9


_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from policystore import PolicyStore

    async def main(url):
        store = await PolicyStore.open(url, watch=False, lkg_path=None)
        print("ready", flush=True)
        for line in sys.stdin:
            await store.update({"modes.NORMAL.max_positions": int(line)}, reason="latency bench")
            print(time.monotonic(), flush=True)
        await store.close()

    asyncio.run(main(sys.argv[1]))
    """
)


async def cross_process_latency(url: str, trials: int) -> list[float]:
    """Milliseconds from another process's commit to this process's snapshot showing it."""
    store = await PolicyStore.open(url, lkg_path=None)
    # Started once, before any timing: the blocking start does not touch the figures.
    writer = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", _WRITER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "ready"
        latencies = []
        for trial in range(trials):
            value = 2 + trial % 50
            writer.stdin.write(f"{value}\n")
            writer.stdin.flush()
            # Polling the snapshot is what a reader does; it is what is being timed.
            while store.get("modes.NORMAL.max_positions") != value:  # noqa: ASYNC110
                await asyncio.sleep(0.0005)
            seen = time.monotonic()
            committed = float(await asyncio.to_thread(writer.stdout.readline))
            latencies.append((seen - committed) * 1000)
        return latencies
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
        await store.close()


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200_000, help="reads per timing run")
    parser.add_argument("--repeat", type=int, default=15, help="timing runs; the best is kept")
    parser.add_argument("--latency-trials", type=int, default=30, help="cross-process changes to time")
    parser.add_argument(
        "--no-expiring", action="store_true", help="measure without an expiring change in force (one is, by default)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'policy.db'}"
        loop = asyncio.new_event_loop()
        store = loop.run_until_complete(PolicyStore.open(url, watch=False))
        if not args.no_expiring:
            # The targets hold with an expiring change in force (its end is timed on the loop, not checked by get).
            change = store.update(
                {"modes.NORMAL.max_leverage": 6.0}, reason="bench: an expiring change in force", expires_in=3600
            )
            loop.run_until_complete(change)
        snap = store.snapshot()
        table = flatten(snap)
        env = {"store": store, "snap": snap, "d": table, "one": OneLine(table), "path": PATH}
        n, r = args.number, args.repeat
        rows = {
            "d[path] (plain dict lookup)": best_ns("d[path]", env, n, r),
            "one.get(path) (one-line method)": best_ns("one.get(path)", env, n, r),
            "store.get(path)": best_ns("store.get(path)", env, n, r),
            "snap.risk.max_leverage (held snapshot)": best_ns("snap.risk.max_leverage", env, n, r),
            "await store.get_value(path)": best_async_ns(lambda: store.get_value(PATH), loop, n // 4, r),
        }
        old = Rebuilding(snap)
        rows["await get_value (rebuild per call, old)"] = best_async_ns(
            lambda: old.get_value(PATH), loop, max(n // 200, 100), max(r // 3, 3)
        )
        loop.run_until_complete(store.close())
        loop.close()
        latencies = asyncio.run(cross_process_latency(url, args.latency_trials))

    dict_ns, method_ns = rows["d[path] (plain dict lookup)"], rows["one.get(path) (one-line method)"]
    print(f"python {sys.version.split()[0]}; best of {r} runs x {n} reads; path {PATH!r}")
    print(f"expiring change in force: {'no' if args.no_expiring else 'yes (modes.NORMAL.max_leverage for 1 h)'}")
    print(f"{'read':42} {'ns/read':>10} {'/ d[path]':>10} {'/ one-line':>11}")
    for name, ns in rows.items():
        print(f"{name:42} {ns:10.1f} {ns / dict_ns:10.2f} {ns / method_ns:11.2f}")
    get_ratio = rows["store.get(path)"] / method_ns
    snap_ratio = rows["snap.risk.max_leverage (held snapshot)"] / dict_ns
    print()
    get_verdict = "met" if get_ratio <= 1.3 else "MISSED"
    snap_verdict = "met" if snap_ratio <= 1.0 else "MISSED"
    print(f"store.get / one-line method = {get_ratio:.2f}  (target <= 1.30: {get_verdict})")
    print(f"snapshot field / d[path]    = {snap_ratio:.2f}  (target <= 1.00: {snap_verdict})")
    print()
    lat = sorted(latencies)
    print(
        f"cross-process change seen after (ms, {len(lat)} changes): min {lat[0]:.1f}  "
        f"median {statistics.median(lat):.1f}  p90 {lat[int(0.9 * (len(lat) - 1))]:.1f}  max {lat[-1]:.1f}  "
        f"(target < 100 ms: {'met' if lat[-1] < 100 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
