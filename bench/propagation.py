"""How fast a policy change reaches other processes on one Redis, against the raw pub/sub floor.

    .venv/bin/python bench/propagation.py [--switches 1000] [--interval-ms 5] [--readers 10] [--rounds 10]
                                          [--limit-changes 250] [--stages]

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
3. programs that react to changes: N more reader processes on a namespace of their
   own, each following ``store.watch()`` in a task and with a ``subscribe`` callback,
   noting when each version's event reached each (its latency, like the snapshot's, is
   counted from just before the commit), and checking that the snapshot
   (``store.get("version")``) already holds the event's version when the event is seen;
   the same mode switches and limit changes, and the ratio of each to the durable floor
   (goal: at most 1.25x at p50 and at p99);
4. a 60 s TTL cache, modelled (not measured): each reader re-reads at a random phase
   every 60 s, so a change waits until that reader's next re-read;
5. write throughput with 1 and 4 writer processes (``update`` without expected_version).

The measured kinds take turns in ``--rounds`` blocks (raw, raw with the store's reader,
durable, mode switches, limit changes, the same for the processes that react, raw, ...),
every message ``--interval-ms`` apart, with all processes alive throughout: on a shared
machine whose load drifts, each kind then meets the same conditions. Each store message
wakes N processes, as each floor's does.

``--stages`` adds the time of each stage on the way to ``watch()``, in the writer and in
the processes that react (see bench/propagation_stages.py); its probes cost a little, so
the figures of a run with it are not the headline ones.

Times are ``time.time_ns()`` on one machine, shared by all processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from policystore.model.changes import risk_increases
from policystore.store.store import PolicyStore
from propagation_report import Results, pct, report_ratios, report_store, row
from propagation_stages import ReaderProbes, WriterProbes, reader_stages, report_stages
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


async def reacting_reader(url: str, last: int, stages: bool) -> None:
    """A program that reacts to changes: a ``watch()`` task and a ``subscribe`` callback, both timed.

    Each notes when it first heard of a version and whether the snapshot held that
    version (or a newer one) by then.
    """
    probes = ReaderProbes() if stages else None
    if probes is not None:
        probes.install()
    store = await _TimedStore.open(url)
    heard: dict[str, dict[int, int]] = {"watch": {}, "subscribe": {}}
    behind = {"watch": 0, "subscribe": 0}

    def note(way: str, version: int) -> None:
        heard[way].setdefault(version, time.time_ns())
        if probes is not None:
            probes.seen(way, version)
        if store.get("version") < version:
            behind[way] += 1

    store.subscribe(lambda event: note("subscribe", event.version))

    async def follow() -> None:
        async for event in store.watch():
            note("watch", event.version)
            if event.version >= last:
                return

    watching = asyncio.create_task(follow())
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(watching, 300)
    await store.close()
    result = {"snapshot": store.seen, **heard, "behind": behind, "stages": probes.points if probes else {}}
    print(json.dumps(result), flush=True)


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


class Target:
    """One namespace: the store that writes to it, its reader processes, and the time each version was committed."""

    def __init__(self, url: str, readers: list[subprocess.Popen[bytes]]) -> None:
        self.url = url
        self.readers = readers
        #: When each version's commit began, and when the write that made it was called.
        self.committed: dict[int, int] = {}
        self.called: dict[int, int] = {}
        self.kinds: dict[int, str] = {}
        #: Whether each version loosened or tightened what the readers held, by the store's own rule.
        self.directions: dict[int, str] = {}
        self._rule: dict[tuple[Any, ...], str] = {}
        self.probes: WriterProbes | None = None

    async def open(self, *, stages: bool) -> None:
        self.store = await PolicyStore.open(self.url, watch=False, lkg_path=None)
        commit = self.store.backend.commit

        async def timed_commit(document: dict[str, Any], entry: Any) -> None:
            self.committed[int(document["version"])] = time.time_ns()
            await commit(document, entry)

        self.store.backend.commit = timed_commit  # type: ignore[method-assign]
        if stages:
            self.probes = WriterProbes()
            self.probes.install(self.store.backend)

    async def switches(self, count: int, interval: float) -> None:
        for _ in range(count):
            # To DEFENSIVE tightens; back to NORMAL loosens, a notice each reader confirms with the store first.
            mode = "DEFENSIVE" if self.store.snapshot().active_mode == "NORMAL" else "NORMAL"
            await self._timed("switch", self.store.switch_mode(mode, reason="benchmark switch"))
            await asyncio.sleep(interval)

    async def limit_changes(self, count: int, interval: float) -> None:
        """Change a limit of a mode: a version every reader validates whole."""
        for _ in range(count):
            # Both above DEFENSIVE's 3.0, so that a switch to DEFENSIVE still tightens.
            leverage = 4.5 if self.store.get("modes.NORMAL.max_leverage") != 4.5 else 4.0
            await self._timed("limit", self.store.update({"modes.NORMAL.max_leverage": leverage}, reason="benchmark"))
            await asyncio.sleep(interval)

    async def _timed(self, kind: str, write: Any) -> None:
        before, called = self.store.snapshot(), time.time_ns()
        if self.probes is not None:
            self.probes.start()
        after = await write
        if self.probes is not None:
            self.probes.done()
        self.called[after.version], self.kinds[after.version] = called, kind
        self.directions[after.version] = self._direction(before, after)

    def _direction(self, before: Any, after: Any) -> str:
        """ "loosen" when the store's rule finds that ``after`` raises risk over ``before``; judged once per pair."""
        key = tuple((p.active_mode, p.modes["NORMAL"].max_leverage) for p in (before, after))
        if key not in self._rule:
            self._rule[key] = "loosen" if risk_increases(before, after) else "tighten"
        return self._rule[key]

    def written(self) -> dict[int, str]:
        """Each version's kind and direction ("switch/loosen")."""
        return {version: f"{kind}/{self.directions[version]}" for version, kind in self.kinds.items()}

    def latencies(self, seen: dict[str, int], into: dict[str, list[float]], *, from_call: bool = False) -> None:
        """Add the latency of every version, from just before its commit to the first moment ``seen`` held it.

        With ``from_call``, from the moment the write that made it was called instead.
        """
        held = sorted((int(v), t) for v, t in seen.items())
        for version, t0 in (self.called if from_call else self.committed).items():
            # The first moment this version or a newer one was held (heard of).
            first = min((t for v, t in held if v >= version), default=None)
            if first is None:
                continue  # never heard: counted apart
            kind, ms = self.kinds[version], (first - t0) / 1e6
            into[kind].append(ms)
            into[f"{kind}/{self.directions[version]}"].append(ms)


class Run:
    """Subscriber processes for the floors and reader processes for the store, alive for the whole run."""

    def __init__(self, server: RedisServer, readers: int, writes: int, *, stages: bool) -> None:
        self.server = server
        self.stages = stages
        self.channel = f"bench:{uuid.uuid4().hex}"
        self.subs = [_spawn("raw-sub", str(server.port), self.channel) for _ in range(readers)]
        self.direct_channel = f"{self.channel}:direct"
        self.direct_subs = [_spawn("direct-sub", str(server.port), self.direct_channel) for _ in range(readers)]
        last = str(1 + writes)
        url = server.url(namespace=f"bench{uuid.uuid4().hex[:8]}")
        self.plain = Target(url, [_spawn("reader", url, last) for _ in range(readers)])
        url = server.url(namespace=f"bench{uuid.uuid4().hex[:8]}")
        flag = "stages" if stages else "-"
        self.reacting = Target(url, [_spawn("reacting", url, last, flag) for _ in range(readers)])
        # As large as a store notice (the document and its history entry).
        self.padding = json.dumps(_notice_sized_payload())

    async def __aenter__(self) -> Self:
        self.client = redis.asyncio.Redis(port=self.server.port)
        self.durable_publish = self.client.register_script(DURABLE_PUBLISH)
        await self.plain.open(stages=False)
        await self.reacting.open(stages=self.stages)
        _await_ready(self.subs + self.direct_subs + self.plain.readers + self.reacting.readers)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.plain.store.close()
        await self.reacting.store.close()
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

    def results(self) -> Results:
        """Collect every process's figures (the readers end at the last version, the subscribers on "stop").

        The store's figures are keyed by kind ("switch", "limit") and by kind and
        direction ("switch/loosen", ...): a loosening notice is confirmed with one
        read of the store before it is installed, a tightening one is not.
        """
        results = Results()
        for result in _collect(self.subs + self.direct_subs):
            for kind, ns in result:
                results.floors[kind].append(ns / 1e6)
        for seen in _collect(self.plain.readers):
            self.plain.latencies(seen, results.store["snapshot"])
        for result in _collect(self.reacting.readers):
            for way in ("snapshot", "watch", "subscribe"):
                self.reacting.latencies(result[way], results.reacting[way])
                results.heard[way] += len(result[way])
            self.reacting.latencies(result["watch"], results.reacting["called"], from_call=True)
            for way, count in result["behind"].items():
                results.behind[way] += count
            points = {int(version): marks for version, marks in result["stages"].items()}
            for name, by_kind in reader_stages(points, self.reacting.committed, self.reacting.written()).items():
                for kind, values in by_kind.items():
                    results.reader_stages.setdefault(name, {}).setdefault(kind, []).extend(values)
        if self.reacting.probes is not None:
            results.writer_stages = self.reacting.probes.stages(self.reacting.written())
        results.committed = self.plain.committed
        return results


def _notice_sized_payload() -> dict[str, Any]:
    from policystore.model.policy import default_policy

    return {"document": default_policy().document(), "entry": {"changes": [{"path": "active_mode"}] * 3}}


async def measure_propagation(server: RedisServer, args: argparse.Namespace) -> Results:
    """Measure the floors and the store in alternating blocks, so that a busy neighbour slows each alike."""
    switches, limits, interval, rounds = args.switches, args.limit_changes, args.interval_ms / 1000, args.rounds
    async with Run(server, args.readers, switches + limits, stages=args.stages) as run:
        for block, limit_block in zip(_blocks(switches, rounds), _blocks(limits, rounds), strict=False):
            await run.raw(block, interval)
            await run.raw(block, interval, direct=True)
            await run.durable(block, interval)
            for target in (run.plain, run.reacting):
                await target.switches(block, interval)
                await target.limit_changes(limit_block, interval)
        await run.stop()
    return run.results()


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
        f"one every {args.interval_ms} ms, in {args.rounds} blocks alternating with the floors' messages; "
        f"as many again for {args.readers} processes that react\n"
    )
    with RedisServer() as server:
        results = await measure_propagation(server, args)
        floor, direct, durable = results.floors["raw"], results.floors["direct"], results.floors["durable"]
        store = results.store["snapshot"]["switch"]
        ttl = ttl_model(results.committed, args.readers)
        print(row("raw Redis pub/sub (floor)", floor))
        print(row("raw pub/sub, the store's reader", direct))
        print(row("durable publish (durable floor)", durable))
        report_store(results)
        print(row("60 s TTL cache (modelled)", ttl))
        report_ratios(results)
        p99 = pct(store, 0.99)
        print(f"\nmode switch p99 / durable floor p99 = {p99 / pct(durable, 0.99):.2f}x")
        print(f"mode switch p99 / floor p99 = {p99 / pct(floor, 0.99):.2f}x (target <= 2x)")
        print(
            f"mode switch p99 / floor p99 with the store's reader = {p99 / pct(direct, 0.99):.2f}x "
            f"(a stricter floor; the durable floor alone is {pct(durable, 0.99) / pct(direct, 0.99):.2f}x of it)"
        )
        print(f"mode switch mean {statistics.fmean(store):.3f} ms vs TTL mean {statistics.fmean(ttl) / 1000:.1f} s")
        print("TTL figures are computed from a model (uniform re-read phase), not measured.")
        if args.stages:
            report_stages(results.writer_stages, results.reader_stages)
        print()
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
    parser.add_argument("--stages", action="store_true", help="time each stage on the way to watch() (probes)")
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
        elif role == "reacting":
            asyncio.run(reacting_reader(rest[0], int(rest[1]), rest[2] == "stages"))
        elif role == "writer":
            asyncio.run(writer(rest[0], int(rest[1])))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
