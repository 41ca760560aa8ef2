"""HTTP and WebSocket benchmark: one uvicorn worker serving a SQLite store, load from this process.

Prints requests per second and latency percentiles for GET /v1/values/risk.max_leverage
(against a baseline of a request refused at authentication, measured in the same run), and
the change-to-client latency for 50 WebSocket clients.

    .venv/bin/python bench/http.py [--seconds 3] [--threads 4] [--clients 50] [--writes 20]
"""
# ruff: noqa: E402 - the path fix below must run before the imports it protects

from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: drop its folder from the path so "import http" finds the standard library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime

import httpx
import websockets

from policystore import PolicyStore
from policystore.server.tokens import TokenStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(url: str, port: int) -> None:
    from policystore.cli.server_commands import serve_store

    asyncio.run(serve_store(url, "127.0.0.1", port, log_level="warning"))


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


def _load(base: str, path: str, headers: dict[str, str], seconds: float, threads: int) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    deadline = time.perf_counter() + seconds

    def worker(out: list[float]) -> None:
        with httpx.Client(base_url=base, headers=headers) as client:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                client.get(path)
                out.append(time.perf_counter() - started)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(out,)) for out in latencies]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    merged = [x for out in latencies for x in out]
    return len(merged) / elapsed, merged


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve[0], int(args.serve[1]))
        return

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/policy.db"
        tokens = asyncio.run(_tokens(url))
        port = _free_port()
        base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        env = {**os.environ, "XDG_CACHE_HOME": folder}
        server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", url, str(port)], env=env)
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            auth = {"Authorization": f"Bearer {tokens['viewer']}"}
            path = "/v1/values/risk.max_leverage"
            _load(base, path, auth, 0.5, args.threads)  # warm up
            base_rps, base_lat = _load(base, path, {"Authorization": "Bearer ps_wrong"}, args.seconds, args.threads)
            rps, lat = _load(base, path, auth, args.seconds, args.threads)
            lags = asyncio.run(_stream_latency(ws_base, base, tokens, args.clients, args.writes))
        finally:
            server.terminate()
            server.wait(10)

    print(f"GET {path}: one uvicorn worker, {args.threads} keep-alive client threads, {args.seconds:.0f} s")
    print(
        f"  requests/s {rps:8.0f}   p50 {statistics.median(lat) * 1000:6.2f} ms   p99 {_pct(lat, 0.99) * 1000:6.2f} ms"
    )
    print(
        f"  baseline (refused at authentication): requests/s {base_rps:8.0f}   "
        f"p99 {_pct(base_lat, 0.99) * 1000:6.2f} ms"
    )
    print(f"  ratio authenticated read / baseline: {rps / base_rps:.2f}")
    print(f"WS /v1/stream: {args.clients} clients, {args.writes} writes, change (commit time) to client")
    print(
        f"  p50 {statistics.median(lags) * 1000:6.2f} ms   p99 {_pct(lags, 0.99) * 1000:6.2f} ms   samples {len(lags)}"
    )


if __name__ == "__main__":
    main()
