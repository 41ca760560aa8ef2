"""HTTP and WebSocket benchmark: ``policystore serve`` under wrk, against a floor, and the change stream.

One read, ``GET /v1/values/risk.max_leverage`` with a viewer token, under wrk
(``-t 1 -c 32`` by default, the same settings for both), against two servers run
alike (uvicorn, one worker, the event loop uvicorn picks, access log on):

* ``store``: ``policystore serve`` on a SQLite store, as deployed;
* ``floor``: a FastAPI app doing only the floor of the same work: the bearer
  token checked against its SHA-256 digest with ``hmac.compare_digest``, one
  value from a dict, the same response shape.

They are measured in alternating rounds in one run (the order swapped every
round), so that a machine that slows down part-way through slows both alike;
each round's ratios compare two runs a few seconds apart. Goal: the store serves
at least 0.9x the floor's requests per second, with a p99 latency at most 1.5x
the floor's. Then the change-to-client latency for 50 WebSocket clients.

    .venv/bin/python bench/http.py [--seconds 5] [--rounds 3] [--connections 32] [--clients 50] [--writes 20]

wrk comes from Debian's packages (scripts/install-system-deps.sh installs it).
"""
# ruff: noqa: E402 - the path fix below must run before the imports it protects

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: drop its folder from the path so "import http" finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
import websockets
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from policystore import PolicyStore
from policystore.server.tokens import TokenStore

PATH = "/v1/values/risk.max_leverage"
#: Prints one JSON line when wrk is done: its figures, with latencies in microseconds.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_floor(port: int, digest: str) -> None:
    """Serve the floor on ``port``: the least work that answers the store's read, run as uvicorn runs apps."""
    values = {"risk.max_leverage": 5.0}
    app = FastAPI()

    @app.get("/v1/values/{path}")
    async def value(path: str, request: Request) -> Any:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = hashlib.sha256(token.encode()).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, digest):
            return JSONResponse({"error": "AuthenticationError", "detail": "the token is unknown"}, status_code=401)
        return {
            "path": path,
            "value": values[path],
            "source": "store",
            "version": 1,
            "stale": False,
            "detail": "read from the live store",
        }

    # The settings `policystore serve` gives uvicorn, and uvicorn's own choice of event loop.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, server_header=False, proxy_headers=False)
    uvicorn.Server(config).run()


async def _tokens(url: str) -> dict[str, str]:
    store = await PolicyStore.open(url, watch=False)
    try:
        tokens = TokenStore(store.backend)
        return {role: await tokens.create(f"bench-{role}", role) for role in ("viewer", "admin")}
    finally:
        await store.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Server:
    """A server under test: its name in the report, its address and its process."""

    name: str
    base: str
    pid: int


@dataclass(frozen=True)
class Round:
    """One wrk run against one server."""

    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: CPU time the server process used per request answered (0 where /proc cannot tell).
    cpu_us: float


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) the process ``pid`` has used so far, from /proc; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(server: Server, token: str, args: argparse.Namespace, script: Path, *, seconds: int) -> Round:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",  # wrk leaves slower requests out of its latencies and counts them as errors
        "-s",
        str(script),
        "-H",
        f"Authorization: Bearer {token}",
        f"{server.base}{PATH}",
    ]
    cpu = _cpu_seconds(server.pid)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = _cpu_seconds(server.pid) - cpu
    figures = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    return Round(
        server.name,
        figures["requests"] / (figures["duration_us"] / 1e6),
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        figures["errors"] + figures["non_2xx"],
        cpu / max(figures["requests"], 1) * 1e6,
    )


def _wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if process.poll() is not None:
            msg = f"the server at {base} exited with {process.returncode} before answering"
            raise RuntimeError(msg)
        try:
            httpx.get(f"{base}/healthz", timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    msg = f"the server at {base} did not answer within 20 s"
    raise RuntimeError(msg)


def _under_wrk(servers: list[Server], token: str, args: argparse.Namespace, folder: str) -> list[Round]:
    script = Path(folder) / "report.lua"
    script.write_text(WRK_REPORT)
    for server in servers:
        _wrk(server, token, args, script, seconds=1)  # warm up
    # Alternate which goes first, so neither always runs just after the other.
    order = [server for i in range(args.rounds) for server in (servers if i % 2 == 0 else servers[::-1])]
    return [_wrk(server, token, args, script, seconds=args.seconds) for server in order]


async def _stream_latency(ws_base: str, base: str, tokens: dict[str, str], clients: int, writes: int) -> list[float]:
    lags: list[float] = []
    connections = []
    for _ in range(clients):
        ws = await websockets.connect(f"{ws_base}/v1/stream", max_size=None)
        await ws.send(json.dumps({"token": tokens["viewer"]}))
        json.loads(await ws.recv())  # the snapshot
        connections.append(ws)

    async def listen(ws: websockets.ClientConnection) -> None:
        seen = 0
        while seen < writes:
            message = json.loads(await ws.recv())
            if message["type"] == "policy.updated":
                lags.append((datetime.now(UTC) - datetime.fromisoformat(message["at"])).total_seconds())
                seen += 1

    listeners = [asyncio.create_task(listen(ws)) for ws in connections]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
        for i in range(writes):
            leverage = 4.0 if i % 2 else 4.5
            response = await http.patch(
                "/v1/policy", json={"changes": {"modes.NORMAL.max_leverage": leverage}, "reason": "bench"}
            )
            response.raise_for_status()
            await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*listeners), 30)
    for ws in connections:
        await ws.close()
    return lags


def _report(rounds: list[Round], args: argparse.Namespace) -> None:
    print(
        f"GET {PATH} under wrk: {args.threads} thread, {args.connections} connections, "
        f"{args.rounds} rounds of {args.seconds} s per server, alternating"
    )
    print("  round  server  requests/s   p50 ms   p99 ms  errors  server CPU us/request")
    for i, run in enumerate(rounds):
        print(
            f"  {i // 2 + 1:5d}  {run.server:6s}  {run.rps:10,.0f}  {run.p50_ms:7.2f}  {run.p99_ms:7.2f}"
            f"  {run.errors:6d}  {run.cpu_us:8.0f}"
        )
    by = {name: [r for r in rounds if r.server == name] for name in ("floor", "store")}
    for name, runs in by.items():
        print(
            f"  {name}: requests/s {statistics.median(r.rps for r in runs):,.0f} (median), "
            f"p99 {min(r.p99_ms for r in runs):.1f}-{max(r.p99_ms for r in runs):.1f} ms, "
            f"CPU {statistics.median(r.cpu_us for r in runs):.0f} us per request (median)"
        )
    rps_ratios = [s.rps / f.rps for f, s in zip(by["floor"], by["store"], strict=True)]
    p99_ratios = [s.p99_ms / f.p99_ms for f, s in zip(by["floor"], by["store"], strict=True)]
    shown = ", ".join(f"{r:.2f}" for r in rps_ratios)
    print(f"  store/floor requests/s: {statistics.median(rps_ratios):.2f} median of rounds ({shown}); goal >= 0.90")
    shown = ", ".join(f"{r:.2f}" for r in p99_ratios)
    print(f"  store/floor p99:        {statistics.median(p99_ratios):.2f} median of rounds ({shown}); goal <= 1.50")
    errors = sum(r.errors for r in rounds)
    print(f"  errors (failed or non-2xx requests): {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="seconds per round per server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--clients", type=int, default=50, help="WebSocket clients")
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "DIGEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        _serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run scripts/install-system-deps.sh (or apt-get install wrk).")

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/policy.db"
        tokens = asyncio.run(_tokens(url))
        ports = {"store": _free_port(), "floor": _free_port()}
        env = {**os.environ, "XDG_CACHE_HOME": folder}
        digest = hashlib.sha256(tokens["viewer"].encode()).hexdigest()
        commands = {
            "store": [
                sys.executable,
                "-m",
                "policystore.cli.main",
                "--store",
                url,
                "serve",
                "--port",
                str(ports["store"]),
            ],
            "floor": [sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(ports["floor"]), digest],
        }
        processes = {
            name: subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, command in commands.items()
        }
        try:
            servers = [
                Server(name, f"http://127.0.0.1:{ports[name]}", processes[name].pid) for name in ("floor", "store")
            ]
            for server in servers:
                _wait_until_up(server.base, processes[server.name])
            load = os.getloadavg()  # other work on the machine skews both servers' figures
            rounds = _under_wrk(servers, tokens["viewer"], args, folder)
            base, ws_base = f"http://127.0.0.1:{ports['store']}", f"ws://127.0.0.1:{ports['store']}"
            lags = asyncio.run(_stream_latency(ws_base, base, tokens, args.clients, args.writes))
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(10)

    _report(rounds, args)
    print(f"  load average before and after: {load[0]:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"WS /v1/stream: {args.clients} clients, {args.writes} writes, change (commit time) to client")
    print(
        f"  p50 {statistics.median(lags) * 1000:6.2f} ms   p99 {_pct(lags, 0.99) * 1000:6.2f} ms   samples {len(lags)}"
    )


if __name__ == "__main__":
    main()
