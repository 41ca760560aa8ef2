"""How fast a policy change reaches other processes on one Redis, against the raw pub/sub floor.

    .venv/bin/python bench/propagation.py [--switches 1000] [--interval-ms 5] [--readers 10] [--rounds 10]
                                          [--limit-changes 250]

Starts its own redis-server (config/redis.conf). In one run it measures:

1. the floor: raw Redis pub/sub delivery from one publisher to N subscriber processes
   reading with redis-py; beside it, the same with N processes reading with the store's
   own subscription reader (policystore.backends._redis_subscription), which costs less
   per message than redis-py's;
   and the durable floor: the redis-py subscribers, each message published by a Lua
   script that first writes a key of the notice's size, as the store's commit does, so
   it is delivered only after the append-only file is fsync'd (``appendfsync always``):
   the least any design that publishes only durable versions can do on this machine;
2. the store: N reader processes, each with a PolicyStore on the same Redis, while a
   writer makes ``--switches`` mode switches; the latency of a version is from just
   before its commit to the moment each reader's local snapshot held it (or a newer one).
   A mode switch is checked line by line against the version held; beside it,
   ``--limit-changes`` versions that change a mode's limit, which every reader
   validates whole; each also split into the versions that tighten what the readers held
   and those that loosen it, which a reader installs only after one read of the store
   confirms the notice (a forged notice must not loosen anything);
3. a 60 s TTL cache, modelled (not measured): each reader re-reads at a random phase
   every 60 s, so a change waits until that reader's next re-read;
4. write throughput with 1 and 4 writer processes (``update`` without expected_version).

The measured kinds take turns in ``--rounds`` blocks (raw, raw with the store's reader,
durable, mode switches, limit changes, raw, ...), every message ``--interval-ms``
apart, with all processes alive throughout: on a shared machine whose load drifts,
each kind then meets the same conditions.

Times are ``time.time_ns()`` on one machine, shared by all processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import redis.asyncio

from policystore.backends._redis_subscription import Endpoint, Subscription
from policystore.store.store import PolicyStore
from support.redis_server import RedisServer

TTL = 60.0
# Writes a key, then publishes: delivered after the AOF fsync, like a store commit.
DURABLE_PUBLISH = "redis.call('SET', KEYS[1], ARGV[2]); return redis.call('PUBLISH', KEYS[2], ARGV[1])"


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE)


def _await_ready(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if line != "ready":
            raise SystemExit(f"a child process failed to start (said {line!r})")


def _collect(processes: list[subprocess.Popen[bytes]]) -> list[Any]:
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=300)
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, ms: list[float]) -> str:
    return f"{name:<34} p50 {_pct(ms, 0.5):10.3f} ms   p99 {_pct(ms, 0.99):10.3f} ms   max {max(ms):10.3f} ms"


# -- child processes -------------------------------------------------------------


async def raw_subscriber(port: int, channel: str) -> None:
    client = redis.asyncio.Redis(port=port)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=5)  # the subscribe confirmation
    print("ready", flush=True)
    latencies: list[tuple[str, int]] = []
    # Until told to stop, so that no process exits while others are measured.
    while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=60)) is not None:
        kind, sent, _ = message["data"].split(b"|", 2)
        if kind == b"stop":
            break
        latencies.append((kind.decode(), time.time_ns() - int(sent)))
    await pubsub.aclose()
    await client.aclose()
    print(json.dumps(latencies), flush=True)


async def direct_subscriber(port: int, channel: str) -> None:
    """Like raw_subscriber, reading with the store's own subscription reader instead of redis-py's."""
    subscription = await Subscription.open(Endpoint("127.0.0.1", port, None, None, None), channel)
    await subscription.receive(5)  # the subscribe confirmation
    print("ready", flush=True)
    latencies: list[tuple[str, int]] = []
    while (reply := await subscription.receive(60)) is not None:
        kind, sent, _ = reply[2].split(b"|", 2)
        if kind == b"stop":
            break
        latencies.append((kind.decode(), time.time_ns() - int(sent)))
    await subscription.aclose()
    print(json.dumps(latencies), flush=True)


class _TimedStore(PolicyStore):
    """Records when each version became this process's snapshot."""

    seen: dict[int, int]

    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        seen = self.__dict__.setdefault("seen", {})
        seen.setdefault(state.policy.version, time.time_ns())


async def store_reader(url: str, last: int) -> None:
    store = await _TimedStore.open(url)
    print("ready", flush=True)
    deadline = time.monotonic() + 300
    while store.snapshot().version < last and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the local copy
        await asyncio.sleep(0.05)
    await store.close()
    print(json.dumps(store.seen), flush=True)


async def writer(url: str, count: int) -> None:
    store = await PolicyStore.open(url, watch=False, lkg_path=None)
    print("ready", flush=True)
    start = time.time_ns()
    for n in range(count):
        await store.update({"strategies.moderate.cooldown_seconds": n}, reason="throughput")
    end = time.time_ns()
    await store.close()
    print(json.dumps([start, end]), flush=True)


# -- the run ---------------------------------------------------------------------


class Run:
    """Subscriber processes for the floors and reader processes for the store, alive for the whole run."""

    def __init__(self, server: RedisServer, readers: int, writes: int) -> None:
        self.server = server
        self.channel = f"bench:{uuid.uuid4().hex}"
        self.url = server.url(namespace=f"bench{uuid.uuid4().hex[:8]}")
        self.subs = [_spawn("raw-sub", str(server.port), self.channel) for _ in range(readers)]
        self.direct_channel = f"{self.channel}:direct"
        self.direct_subs = [_spawn("direct-sub", str(server.port), self.direct_channel) for _ in range(readers)]
        self.committed: dict[int, int] = {}
        self.kinds: dict[int, str] = {}
        #: Whether each version loosened or tightened what the readers held.
        self.directions: dict[int, str] = {}
        self._writing = "switch"
        self._direction = "tighten"
        self.last = 1 + writes
        # As large as a store notice (the document and its history entry).
        self.padding = json.dumps(_notice_sized_payload())

    async def __aenter__(self) -> Self:
        self.client = redis.asyncio.Redis(port=self.server.port)
        self.durable_publish = self.client.register_script(DURABLE_PUBLISH)
        self.store = await PolicyStore.open(self.url, watch=False, lkg_path=None)
        commit = self.store.backend.commit

        async def timed_commit(document: dict[str, Any], entry: Any) -> None:
            version = int(document["version"])
            self.committed[version], self.kinds[version] = time.time_ns(), self._writing
            self.directions[version] = self._direction
            await commit(document, entry)

        self.store.backend.commit = timed_commit  # type: ignore[method-assign]
        self.readers = [_spawn("reader", self.url, str(self.last)) for _ in self.subs]
        _await_ready(self.subs + self.direct_subs + self.readers)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.store.close()
        await self.client.aclose()

    async def raw(self, count: int, interval: float, *, direct: bool = False) -> None:
        channel, kind = (self.direct_channel, "direct") if direct else (self.channel, "raw")
        for _ in range(count):
            await self.client.publish(channel, f"{kind}|{time.time_ns()}|")
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        for channel in (self.channel, self.direct_channel):
            await self.client.publish(channel, "stop|0|")

    async def durable(self, count: int, interval: float) -> None:
        keys = [f"{self.channel}:doc", self.channel]
        for _ in range(count):
            await self.durable_publish(keys=keys, args=[f"durable|{time.time_ns()}|{self.padding}", self.padding])
            await asyncio.sleep(interval)

    async def switches(self, count: int, interval: float) -> None:
        self._writing = "switch"
        for _ in range(count):
            mode = "DEFENSIVE" if self.store.snapshot().active_mode == "NORMAL" else "NORMAL"
            # To DEFENSIVE tightens; back to NORMAL loosens, a notice each reader confirms with the store first.
            self._direction = "tighten" if mode == "DEFENSIVE" else "loosen"
            await self.store.switch_mode(mode, reason="benchmark switch")
            await asyncio.sleep(interval)

    async def limit_changes(self, count: int, interval: float) -> None:
        """Change a limit of a mode: a version every reader validates whole."""
        self._writing = "limit"
        for _ in range(count):
            leverage = 2.5 if self.store.get("modes.NORMAL.max_leverage") != 2.5 else 2.0
            self._direction = "tighten" if leverage < self.store.get("modes.NORMAL.max_leverage") else "loosen"
            await self.store.update({"modes.NORMAL.max_leverage": leverage}, reason="benchmark limit change")
            await asyncio.sleep(interval)

    def results(self) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """Collect every process's figures (the readers end at the last version, the subscribers on "stop").

        The store's figures are keyed by kind ("switch", "limit") and by kind and
        direction ("switch/loosen", ...): a loosening notice is confirmed with one
        read of the store before it is installed, a tightening one is not.
        """
        floors: dict[str, list[float]] = {"raw": [], "direct": [], "durable": []}
        for result in _collect(self.subs + self.direct_subs):
            for kind, ns in result:
                floors[kind].append(ns / 1e6)
        store: dict[str, list[float]] = {
            key: [] for kind in ("switch", "limit") for key in (kind, f"{kind}/tighten", f"{kind}/loosen")
        }
        for seen in _collect(self.readers):
            held = sorted((int(v), t) for v, t in seen.items())
            for version, t0 in self.committed.items():
                # The first moment the snapshot held this version or a newer one.
                first = min(t for v, t in held if v >= version)
                kind, ms = self.kinds[version], (first - t0) / 1e6
                store[kind].append(ms)
                store[f"{kind}/{self.directions[version]}"].append(ms)
        return floors, store


def _notice_sized_payload() -> dict[str, Any]:
    from policystore.model.policy import default_policy

    return {"document": default_policy().document(), "entry": {"changes": [{"path": "active_mode"}] * 3}}


async def measure_propagation(
    server: RedisServer, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[int, int]]:
    """Measure the floors and the store in alternating blocks, so that a busy neighbour slows each alike."""
    switches, limits, interval, rounds = args.switches, args.limit_changes, args.interval_ms / 1000, args.rounds
    async with Run(server, args.readers, switches + limits) as run:
        for block, limit_block in zip(_blocks(switches, rounds), _blocks(limits, rounds), strict=False):
            await run.raw(block, interval)
            await run.raw(block, interval, direct=True)
            await run.durable(block, interval)
            await run.switches(block, interval)
            await run.limit_changes(limit_block, interval)
        await run.stop()
    floors, store = run.results()
    return floors, store, run.committed


def _blocks(total: int, rounds: int) -> list[int]:
    size, extra = divmod(total, rounds)
    return [size + (1 if n < extra else 0) for n in range(rounds)]


def ttl_model(committed: dict[int, int], readers: int) -> list[float]:
    # Many simulated readers, so the figure reflects the cache design, not the luck of a few phases.
    rng = random.Random(7)
    phases = [rng.uniform(0, TTL) for _ in range(max(readers, 1000))]
    return [((phase - t / 1e9) % TTL) * 1000 for phase in phases for t in committed.values()]


async def measure_writes(server: RedisServer, processes: int, count: int) -> float:
    url = server.url(namespace=f"bench{uuid.uuid4().hex[:8]}")
    seed = await PolicyStore.open(url, watch=False, lkg_path=None)
    await seed.close()
    procs = [_spawn("writer", url, str(count)) for _ in range(processes)]
    _await_ready(procs)
    spans = _collect(procs)
    return processes * count / ((max(e for _, e in spans) - min(s for s, _ in spans)) / 1e9)


async def run(args: argparse.Namespace) -> None:
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{args.readers} reader processes, {args.switches} mode switches and {args.limit_changes} limit changes, "
        f"one every {args.interval_ms} ms, in {args.rounds} blocks alternating with the floors' messages\n"
    )
    with RedisServer() as server:
        floors, stores, committed = await measure_propagation(server, args)
        floor, direct, durable = floors["raw"], floors["direct"], floors["durable"]
        store = stores["switch"]
        ttl = ttl_model(committed, args.readers)
        print(_row("raw Redis pub/sub (floor)", floor))
        print(_row("raw pub/sub, the store's reader", direct))
        print(_row("durable publish (durable floor)", durable))
        print(_row("PolicyStore commit -> snapshot", store))
        for direction in ("tighten", "loosen"):
            if stores[f"switch/{direction}"]:
                print(_row(f"  mode switches that {direction}", stores[f"switch/{direction}"]))
        if stores["limit"]:
            print(_row("  the same, limit changes", stores["limit"]))
        for direction in ("tighten", "loosen"):
            if stores[f"limit/{direction}"]:
                print(_row(f"  limit changes that {direction}", stores[f"limit/{direction}"]))
        print(_row("60 s TTL cache (modelled)", ttl))
        p99 = _pct(store, 0.99)
        print(f"\nmode switch p99 / durable floor p99 = {p99 / _pct(durable, 0.99):.2f}x")
        print(f"mode switch p99 / floor p99 = {p99 / _pct(floor, 0.99):.2f}x (target <= 2x)")
        print(
            f"mode switch p99 / floor p99 with the store's reader = {p99 / _pct(direct, 0.99):.2f}x "
            f"(a stricter floor; the durable floor alone is {_pct(durable, 0.99) / _pct(direct, 0.99):.2f}x of it)"
        )
        print(f"mode switch mean {statistics.fmean(store):.3f} ms vs TTL mean {statistics.fmean(ttl) / 1000:.1f} s")
        print("TTL figures are computed from a model (uniform re-read phase), not measured.\n")
        for n in (1, 4):
            rate = await measure_writes(server, n, args.writes)
            print(
                f"writes/s with {n} writer process{'es' if n > 1 else ''}: {rate:8.0f}  "
                f"({n * args.writes} writes, appendfsync always)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10, help="blocks each kind of message is measured in")
    parser.add_argument("--limit-changes", type=int, default=250, help="versions that change a mode's limit")
    parser.add_argument("--writes", type=int, default=300, help="writes per writer process")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        if role == "raw-sub":
            asyncio.run(raw_subscriber(int(rest[0]), rest[1]))
        elif role == "direct-sub":
            asyncio.run(direct_subscriber(int(rest[0]), rest[1]))
        elif role == "reader":
            asyncio.run(store_reader(rest[0], int(rest[1])))
        elif role == "writer":
            asyncio.run(writer(rest[0], int(rest[1])))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
