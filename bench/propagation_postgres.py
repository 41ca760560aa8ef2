"""How fast a policy change reaches other processes on one PostgreSQL, against the raw LISTEN/NOTIFY floors.

    .venv/bin/python bench/propagation_postgres.py [--switches 1000] [--limit-changes 250] [--interval-ms 5]
                                                   [--readers 10] [--rounds 10] [--writes 300] [--writers 1,4]
                                                   [--stages]

Starts its own PostgreSQL server (tests/support/postgres_server.py: initdb, fsync and
``synchronous_commit=on``). In one run it measures:

1. the raw floor: N subscriber processes, each LISTENing on one psycopg connection, and a
   publisher that does only ``NOTIFY`` (a small payload, no table touched);
2. the durable floor: the same subscribers, each notice sent by one statement that first
   inserts a row of a store notice's size and then notifies, in one transaction, so it is
   delivered only after the commit is flushed to disk: the least any design that announces
   only durable versions can do on this server;
3. the store: N reader processes, each with a PolicyStore on the same server, while a writer
   makes ``--switches`` mode switches; the latency of a version is from just before its
   commit to the moment each reader's local snapshot held it (or a newer one). A mode
   switch is checked line by line against the version held; beside it, ``--limit-changes``
   versions that change a mode's limit, which every reader validates whole;
4. write throughput with ``synchronous_commit=on``: the store's ``update`` (without
   expected_version) against a bare loop on the same server (``BEGIN; UPDATE ... WHERE
   version = $n; INSERT`` the history row; ``NOTIFY``; ``COMMIT``, one statement per round
   trip, re-reading the version after a lost race), each with 1 and 4 writer processes.

The measured kinds take turns in ``--rounds`` blocks (raw, durable, mode switches, limit
changes, raw, ...), every message ``--interval-ms`` apart, with all processes alive
throughout: on a shared machine whose load drifts, each kind then meets the same conditions.

Goals: the store's mode switch p99 at most 2x the durable floor's p99; the store's
writes/s at least 50 % of the bare loop's.

Each kind of version is also shown by direction: one that loosens what the readers hold
is installed only after one read of the store confirms it, one that tightens at once.
``--stages`` adds the time of each stage, in the writer and in the readers (see
bench/propagation_postgres_stages.py); its probes cost a little, so the figures of a run
with it are not the headline ones.

Times are ``time.time_ns()`` on one machine, shared by all processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import psycopg

from policystore.model.changes import risk_increases
from policystore.model.policy import default_policy
from policystore.store.store import PolicyStore
from propagation_postgres_stages import PostgresReaderProbes, PostgresWriterProbes
from propagation_stages import reader_stages, report_stages
from support.postgres_server import PostgresServer

CHANNEL = "bench_floor"
FLOOR_TABLES = (
    "CREATE TABLE IF NOT EXISTS bench_rows (id bigserial PRIMARY KEY, payload text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_head (id int PRIMARY KEY, version bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_history (version bigint PRIMARY KEY, document json, entry json)",
)
# One transaction: the row is flushed to disk before the notice is delivered, as a store commit's.
DURABLE_NOTIFY = "WITH r AS (INSERT INTO bench_rows (payload) VALUES (%s) RETURNING id) SELECT pg_notify(%s, %s) FROM r"


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
        out, _ = process.communicate(timeout=600)
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(name: str, ms: list[float]) -> str:
    return f"{name:<34} p50 {_pct(ms, 0.5):10.3f} ms   p99 {_pct(ms, 0.99):10.3f} ms   max {max(ms):10.3f} ms"


def _notice_sized_payload() -> str:
    """As large as a store notice: the document and a history entry."""
    return json.dumps({"document": default_policy().document(), "entry": {"changes": [{"path": "active_mode"}] * 3}})


# -- child processes -------------------------------------------------------------


async def subscriber(conninfo: str) -> None:
    """LISTEN and record, per notice, its kind and how long after its sending it arrived."""
    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    await conn.execute(f"LISTEN {CHANNEL}")
    print("ready", flush=True)
    latencies: list[tuple[str, int]] = []
    # Until told to stop, so that no process exits while others are measured.
    async for notice in conn.notifies():
        kind, sent, _ = notice.payload.split("|", 2)
        if kind == "stop":
            break
        latencies.append((kind, time.time_ns() - int(sent)))
    await conn.close()
    print(json.dumps(latencies), flush=True)


class _TimedStore(PolicyStore):
    """Records when each version became this process's snapshot."""

    seen: dict[int, int]

    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        seen = self.__dict__.setdefault("seen", {})
        seen.setdefault(state.policy.version, time.time_ns())


async def store_reader(url: str, last: int, stages: bool) -> None:
    probes = PostgresReaderProbes() if stages else None
    if probes is not None:
        probes.install()
    store = await _TimedStore.open(url)
    print("ready", flush=True)
    deadline = time.monotonic() + 600
    while store.snapshot().version < last and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the local copy
        await asyncio.sleep(0.05)
    await store.close()
    print(json.dumps({"snapshot": store.seen, "stages": probes.points if probes else {}}), flush=True)


async def store_writer(url: str, count: int) -> None:
    store = await PolicyStore.open(url, watch=False, lkg_path=None)
    print("ready", flush=True)
    start = time.time_ns()
    for n in range(count):
        await store.update({"strategies.moderate.cooldown_seconds": n}, reason="throughput")
    end = time.time_ns()
    await store.close()
    print(json.dumps([start, end]), flush=True)


async def bare_writer(conninfo: str, count: int) -> None:
    """The loop a store is measured against: compare-and-set, history row and notice, nothing else."""
    conn = await psycopg.AsyncConnection.connect(conninfo)
    document = json.dumps(default_policy().document())
    entry = json.dumps({"changes": [{"path": "strategies.moderate.cooldown_seconds"}], "reason": "throughput"})
    print("ready", flush=True)
    version = (await (await conn.execute("SELECT version FROM bench_head WHERE id = 1")).fetchone() or (0,))[0]
    await conn.commit()
    start = time.time_ns()
    written = 0
    while written < count:
        async with conn.transaction():
            moved = await conn.execute(
                "UPDATE bench_head SET version = %s WHERE id = 1 AND version = %s", (version + 1, version)
            )
            if moved.rowcount == 1:
                await conn.execute(
                    "INSERT INTO bench_history (version, document, entry) VALUES (%s, %s, %s)",
                    (version + 1, document, entry),
                )
                await conn.execute("SELECT pg_notify('bench_bare', %s)", (f'{{"version": {version + 1}}}',))
        if moved.rowcount == 1:
            version, written = version + 1, written + 1
        else:  # another writer got there first: start from its version
            version = (await (await conn.execute("SELECT version FROM bench_head WHERE id = 1")).fetchone() or (0,))[0]
            await conn.commit()
    end = time.time_ns()
    await conn.close()
    print(json.dumps([start, end]), flush=True)


# -- the run ---------------------------------------------------------------------


class Run:
    """Subscriber processes for the floors and reader processes for the store, alive for the whole run."""

    def __init__(self, server: PostgresServer, readers: int, writes: int, *, stages: bool) -> None:
        self.server = server
        self.stages = stages
        self.url = server.url(namespace=f"bench{uuid.uuid4().hex[:8]}")
        self.subs = [_spawn("sub", server.conninfo()) for _ in range(readers)]
        self.committed: dict[int, int] = {}
        self.kinds: dict[int, str] = {}
        #: Whether each version loosened or tightened what the readers held, by the store's own rule.
        self.directions: dict[int, str] = {}
        self._rule: dict[tuple[Any, ...], str] = {}
        self.probes: PostgresWriterProbes | None = None
        self._writing = "switch"
        self.last = 1 + writes
        self.padding = _notice_sized_payload()

    async def __aenter__(self) -> Self:
        self.conn = await psycopg.AsyncConnection.connect(self.server.conninfo(), autocommit=True)
        self.store = await PolicyStore.open(self.url, watch=False, lkg_path=None)
        commit = self.store.backend.commit

        async def timed_commit(document: dict[str, Any], entry: Any) -> None:
            version = int(document["version"])
            self.committed[version], self.kinds[version] = time.time_ns(), self._writing
            await commit(document, entry)

        self.store.backend.commit = timed_commit  # type: ignore[method-assign]
        if self.stages:
            self.probes = PostgresWriterProbes()
            self.probes.install(self.store.backend)
        flag = "stages" if self.stages else "-"
        self.readers = [_spawn("reader", self.url, str(self.last), flag) for _ in self.subs]
        _await_ready(self.subs + self.readers)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.store.close()
        await self.conn.close()

    async def raw(self, count: int, interval: float) -> None:
        for _ in range(count):
            await self.conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"raw|{time.time_ns()}|"))
            await asyncio.sleep(interval)

    async def durable(self, count: int, interval: float) -> None:
        for _ in range(count):
            payload = f"durable|{time.time_ns()}|{self.padding}"
            await self.conn.execute(DURABLE_NOTIFY, (self.padding, CHANNEL, payload))
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        await self.conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "stop|0|"))

    async def switches(self, count: int, interval: float) -> None:
        self._writing = "switch"
        for _ in range(count):
            mode = "DEFENSIVE" if self.store.snapshot().active_mode == "NORMAL" else "NORMAL"
            await self._timed(self.store.switch_mode(mode, reason="benchmark switch"))
            await asyncio.sleep(interval)

    async def limit_changes(self, count: int, interval: float) -> None:
        """Change a limit of a mode: a version every reader validates whole."""
        self._writing = "limit"
        for _ in range(count):
            # Both above DEFENSIVE's 3.0, as in bench/propagation.py, so that a switch to DEFENSIVE still tightens.
            leverage = 4.5 if self.store.get("modes.NORMAL.max_leverage") != 4.5 else 4.0
            change = {"modes.NORMAL.max_leverage": leverage}
            await self._timed(self.store.update(change, reason="benchmark limit change"))
            await asyncio.sleep(interval)

    async def _timed(self, write: Any) -> None:
        before = self.store.snapshot()
        if self.probes is not None:
            self.probes.start()
        after = await write
        if self.probes is not None:
            self.probes.done()
        key = tuple((p.active_mode, p.modes["NORMAL"].max_leverage) for p in (before, after))
        if key not in self._rule:
            self._rule[key] = "loosen" if risk_increases(before, after) else "tighten"
        self.directions[after.version] = self._rule[key]

    def written(self) -> dict[int, str]:
        """Each version's kind and direction ("switch/loosen")."""
        return {version: f"{kind}/{self.directions[version]}" for version, kind in self.kinds.items()}

    def results(self) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, list[float]]]]:
        """Collect every process's figures (the readers end at the last version, the subscribers on "stop").

        Returns:
            The floors', the store's by kind (and by kind and direction), and the reader stages.
        """
        floors: dict[str, list[float]] = {"raw": [], "durable": []}
        for result in _collect(self.subs):
            for kind, ns in result:
                floors[kind].append(ns / 1e6)
        store: dict[str, list[float]] = {}
        stages: dict[str, dict[str, list[float]]] = {}
        written = self.written()
        for result in _collect(self.readers):
            held = sorted((int(v), t) for v, t in result["snapshot"].items())
            for version, t0 in self.committed.items():
                # The first moment the snapshot held this version or a newer one.
                first = min(t for v, t in held if v >= version)
                store.setdefault(self.kinds[version], []).append((first - t0) / 1e6)
                store.setdefault(written[version], []).append((first - t0) / 1e6)
            points = {int(version): marks for version, marks in result["stages"].items()}
            for name, by_kind in reader_stages(points, self.committed, written).items():
                for kind, values in by_kind.items():
                    stages.setdefault(name, {}).setdefault(kind, []).extend(values)
        return floors, store, stages


async def measure_propagation(
    server: PostgresServer, args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, list[float]]], Run]:
    """Measure the floors and the store in alternating blocks, so that a busy neighbour slows each alike."""
    switches, limits, interval, rounds = args.switches, args.limit_changes, args.interval_ms / 1000, args.rounds
    async with Run(server, args.readers, switches + limits, stages=args.stages) as run:
        for block, limit_block in zip(_blocks(switches, rounds), _blocks(limits, rounds), strict=False):
            await run.raw(block, interval)
            await run.durable(block, interval)
            await run.switches(block, interval)
            await run.limit_changes(limit_block, interval)
        await run.stop()
    return (*run.results(), run)


def _blocks(total: int, rounds: int) -> list[int]:
    size, extra = divmod(total, rounds)
    return [size + (1 if n < extra else 0) for n in range(rounds)]


async def measure_writes(server: PostgresServer, kind: str, processes: int, count: int) -> float:
    """Writes per second of ``processes`` writer processes of ``kind`` (``store`` or ``bare``), together."""
    if kind == "store":
        target = server.url(namespace=f"bench{uuid.uuid4().hex[:8]}")
        seed = await PolicyStore.open(target, watch=False, lkg_path=None)
        await seed.close()
    else:
        target = server.conninfo()
        server.execute("TRUNCATE bench_history")
        server.execute("INSERT INTO bench_head VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET version = 0")
    procs = [_spawn(f"{kind}-writer", target, str(count)) for _ in range(processes)]
    _await_ready(procs)
    spans = _collect(procs)
    return processes * count / ((max(e for _, e in spans) - min(s for s, _ in spans)) / 1e9)


async def run(args: argparse.Namespace) -> None:
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"{args.readers} reader processes, {args.switches} mode switches and {args.limit_changes} limit changes, "
        f"one every {args.interval_ms} ms, in {args.rounds} blocks alternating with the floors' notices\n"
    )
    with PostgresServer() as server:
        for statement in FLOOR_TABLES:
            server.execute(statement)
        print(server.execute("SHOW synchronous_commit")[0][0], "= synchronous_commit,", end=" ")
        print(server.execute("SHOW fsync")[0][0], "= fsync\n")
        floors, stores, stages, measured = await measure_propagation(server, args)
        raw, durable, store = floors["raw"], floors["durable"], stores["switch"]
        print(_row("raw LISTEN/NOTIFY (floor)", raw))
        print(_row("durable notify (durable floor)", durable))
        print(_row("PolicyStore commit -> snapshot", store))
        if stores.get("limit"):
            print(_row("  the same, limit changes", stores["limit"]))
        for kind in ("switch/tighten", "switch/loosen", "limit/tighten", "limit/loosen"):
            if stores.get(kind):
                print(_row(f"  {kind} ({len(stores[kind]) // args.readers})", stores[kind]))
        p99 = _pct(store, 0.99)
        print(f"\nmode switch p99 / durable floor p99 = {p99 / _pct(durable, 0.99):.2f}x (target <= 2x)")
        if stores.get("limit"):
            print(f"limit change p99 / durable floor p99 = {_pct(stores['limit'], 0.99) / _pct(durable, 0.99):.2f}x")
        print(f"mode switch p99 / raw floor p99 = {p99 / _pct(raw, 0.99):.2f}x (a stricter floor, not durable)\n")
        if args.stages and measured.probes is not None:
            report_stages(measured.probes.stages(measured.written()), stages)
            print()
        for n in args.writers:
            store_rate = await measure_writes(server, "store", n, args.writes)
            bare_rate = await measure_writes(server, "bare", n, args.writes)
            plural = "es" if n > 1 else ""
            print(
                f"writes/s with {n} writer process{plural}: store {store_rate:8.0f}, bare loop {bare_rate:8.0f}, "
                f"store / bare = {store_rate / bare_rate:.0%} (target >= 50 %; {n * args.writes} writes each)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", type=int, default=1000)
    parser.add_argument("--limit-changes", type=int, default=250, help="versions that change a mode's limit")
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10, help="blocks each kind of message is measured in")
    parser.add_argument("--writes", type=int, default=300, help="writes per writer process")
    parser.add_argument(
        "--writers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 4], help="e.g. 1,4"
    )
    parser.add_argument("--stages", action="store_true", help="time each stage, in the writer and the readers (probes)")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        if role == "sub":
            asyncio.run(subscriber(rest[0]))
        elif role == "reader":
            asyncio.run(store_reader(rest[0], int(rest[1]), rest[2] == "stages"))
        elif role == "store-writer":
            asyncio.run(store_writer(rest[0], int(rest[1])))
        elif role == "bare-writer":
            asyncio.run(bare_writer(rest[0], int(rest[1])))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
