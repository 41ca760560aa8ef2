"""How long until the fleet confirms a kill switch, beside how long the switch takes to reach each member.

    .venv/bin/python bench/fleet.py [--members 10] [--writes 200] [--interval-ms 10]

Starts its own redis-server (config/redis.conf, as bench/propagation.py does) and
``--members`` member processes, each a PolicyStore that follows the store (so a
member of its fleet) and records when each version became its snapshot. A
writer then turns the kill switch on and off ``--writes`` times; after each write
it calls ``wait_for_fleet(version)``, as ``--wait`` and ``"wait"`` do. Measured
in the same run, from just before each commit:

- confirmation: until ``wait_for_fleet`` returned complete (every member applied
  the version and reported it, and the writer read the reports);
- propagation: until each member's snapshot held the version (each member a
  sample), and the slowest member of each write (what a confirmation waits for).

The goal: p99 of confirmation within 2x the p99 of propagation. Times are
``time.time_ns()`` on one machine, shared by all processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from policystore.store.store import PolicyStore
from support.redis_server import RedisServer


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, ms: list[float]) -> str:
    return (
        f"{name:<44} p50 {_pct(ms, 0.5):8.3f} ms   p99 {_pct(ms, 0.99):8.3f} ms   "
        f"max {max(ms):8.3f} ms   mean {statistics.fmean(ms):8.3f} ms"
    )


class _TimedStore(PolicyStore):
    """Records when each version became this process's snapshot."""

    seen: dict[int, int]

    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        seen = self.__dict__.setdefault("seen", {})
        seen.setdefault(state.policy.version, time.time_ns())


async def member(url: str, name: str, last: int) -> None:
    """A member: follow the store until it holds version ``last`` and its input ends; leave; print what it saw when."""
    store = await _TimedStore.open(url, name=name, lkg_path=None)
    print("ready", flush=True)
    deadline = time.monotonic() + 600
    while store.snapshot().version < last and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the local copy
        await asyncio.sleep(0.05)
    # Still a member until the writer is done waiting: the last write's wait must find it.
    await asyncio.to_thread(sys.stdin.read)
    await store.close()
    print(json.dumps(store.seen), flush=True)


def _spawn_members(url: str, count: int, last: int) -> list[subprocess.Popen[str]]:
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "member", url, f"member-{n}", str(last)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("a member process failed to start")
    return processes


async def measure(server: RedisServer, args: argparse.Namespace) -> dict[str, list[float]]:
    url = server.url(namespace=f"fleet{uuid.uuid4().hex[:8]}")
    writer = await PolicyStore.open(url, watch=False, lkg_path=None)
    committed: dict[int, int] = {}
    commit = writer.backend.commit

    async def timed_commit(document: dict[str, Any], entry: Any) -> None:
        committed[int(document["version"])] = time.time_ns()
        await commit(document, entry)

    writer.backend.commit = timed_commit  # type: ignore[method-assign]
    processes = _spawn_members(url, args.members, 1 + args.writes)
    # Every member reports before open() returns, so each is listed once it said "ready".
    assert len(await writer.fleet()) == args.members

    confirm: dict[str, list[float]] = {"on": [], "off": []}
    incomplete: list[str] = []
    for n in range(args.writes):
        active = n % 2 == 0
        policy = await writer.set_emergency_mode(active, reason="fleet benchmark", updated_by="bench")
        ack = await writer.wait_for_fleet(policy.version, timeout=10)
        done = time.time_ns()
        if not ack.complete or len(ack.acked) != args.members:
            incomplete.append(
                f"v{policy.version}: {len(ack.acked)} acked, {len(ack.missing)} missing, {len(ack.lost)} lost"
            )
        confirm["on" if active else "off"].append((done - committed[policy.version]) / 1e6)
        await asyncio.sleep(args.interval_ms / 1000)
    await writer.close()

    propagation: list[float] = []
    slowest: dict[int, float] = {}
    for process in processes:
        out, _ = process.communicate("", timeout=120)
        seen = sorted((int(v), t) for v, t in json.loads(out.strip().splitlines()[-1]).items())
        for version, t0 in committed.items():
            first = min(t for v, t in seen if v >= version)
            ms = (first - t0) / 1e6
            propagation.append(ms)
            slowest[version] = max(slowest.get(version, 0.0), ms)
    if incomplete:
        print(f"WARNING: {len(incomplete)} waits ended incomplete or without every member: {'; '.join(incomplete)}")
    return {
        "confirm": confirm["on"] + confirm["off"],
        "confirm/on": confirm["on"],
        "confirm/off": confirm["off"],
        "propagation": propagation,
        "slowest": list(slowest.values()),
    }


async def run(args: argparse.Namespace) -> None:
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{args.members} member processes on one Redis; {args.writes} kill-switch writes (on, off, ...), "
        f"each followed by wait_for_fleet, {args.interval_ms} ms apart\n"
    )
    with RedisServer() as server:
        figures = await measure(server, args)
    print(_row("propagation: commit -> each member's snapshot", figures["propagation"]))
    print(_row("  the slowest member of each write", figures["slowest"]))
    print(_row("confirmation: commit -> wait_for_fleet done", figures["confirm"]))
    print(_row("  kill switch on (tightens)", figures["confirm/on"]))
    print(_row("  kill switch off (loosens: confirmed by a read)", figures["confirm/off"]))
    ratio = _pct(figures["confirm"], 0.99) / _pct(figures["propagation"], 0.99)
    slowest = _pct(figures["confirm"], 0.99) / _pct(figures["slowest"], 0.99)
    print(f"\nconfirmation p99 / propagation p99 = {ratio:.2f}x (goal <= 2x)")
    print(f"confirmation p99 / slowest member's propagation p99 = {slowest:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        _, url, name, last = args.role
        asyncio.run(member(url, name, int(last)))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
