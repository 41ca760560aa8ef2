"""``policystore serve`` as a real subprocess: binding its port, and the limits it starts uvicorn with.

And ``serve_store`` in this process, where what the garbage collector sees while it serves can be asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from policystore.cli.server_commands import bind_socket, serve_store

COMMAND = [sys.executable, "-m", "policystore.cli.main"]
#: RFC 6455 close code for a message larger than the receiver accepts.
CLOSE_TOO_BIG = 1009


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


@dataclass
class Served:
    """A running ``policystore serve`` and a viewer token for it."""

    base: str
    ws_base: str
    token: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``policystore serve --port 0`` on a fresh SQLite store, stopped after the test."""
    url = f"sqlite:///{tmp_path}/policy.db"
    env = _environment(tmp_path)
    subprocess.run(
        [*COMMAND, "--store", url, "init"], capture_output=True, env=env, cwd=tmp_path, timeout=60, check=True
    )
    created = subprocess.run(
        [*COMMAND, "--store", url, "token", "create", "--role", "viewer", "--name", "vera"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*COMMAND, "--store", url, "serve", "--host", "127.0.0.1", "--port", "0", "--heartbeat", "1"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
        )
    try:
        base = _wait_until_serving(process, log)
        yield Served(base, base.replace("http://", "ws://"), created.stdout.strip())
    finally:
        process.terminate()
        process.wait(20)


def _wait_until_serving(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/", log.read_text())
        if found:
            try:
                if httpx.get(f"{found.group(1)}/healthz", timeout=2).status_code == 200:
                    return found.group(1)
            except httpx.TransportError:
                pass  # printed before uvicorn has started listening
        time.sleep(0.1)
    pytest.fail(f"policystore serve did not start within 30 s:\n{log.read_text()}")


class TestServePort:
    def test_port_in_use_exits_2_with_one_sentence_naming_host_and_port(self, tmp_path: Path) -> None:
        """A busy port is a usage error that names host:port, without a traceback or uvicorn's log lines."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            result = subprocess.run(
                [
                    *COMMAND,
                    "--store",
                    f"sqlite:///{tmp_path}/policy.db",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                capture_output=True,
                text=True,
                env=_environment(tmp_path),
                cwd=tmp_path,
                timeout=60,
                check=False,
            )

        assert 2 == result.returncode, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert [f"Error: Cannot listen on 127.0.0.1:{port}: address already in use."] == errors
        assert "Traceback" not in result.stderr
        assert "Serving" not in result.stderr  # nothing claimed to be served
        assert not (tmp_path / "policy.db").exists()  # refused before the store was opened

    def test_port_zero_reports_the_port_actually_bound(self, served: Served) -> None:
        """--port 0 picks a free port and the start-up line names it (the fixture connects to it)."""
        assert 200 == httpx.get(f"{served.base}/healthz", timeout=10).status_code


class TestServeStreamLimits:
    def test_stream_message_over_64_kib_is_closed_with_1009(self, served: Served) -> None:
        """A client message over the 64 KiB limit closes the connection with 'message too big'."""
        with connect(f"{served.ws_base}/v1/stream", max_size=None) as ws:
            ws.send(json.dumps({"token": served.token, "padding": "x" * (65 * 1024)}))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)

        assert closed.value.rcvd is not None
        assert CLOSE_TOO_BIG == closed.value.rcvd.code

    def test_stream_message_under_the_limit_signs_in(self, served: Served) -> None:
        """A token message with room to spare under the limit signs in as before."""
        with connect(f"{served.ws_base}/v1/stream") as ws:
            ws.send(json.dumps({"token": served.token, "padding": "x" * (60 * 1024)}))
            snapshot = json.loads(ws.recv(timeout=10))

        assert ("snapshot", "vera") == (snapshot["type"], snapshot["viewer"])


class TestServeHeap:
    async def test_the_heap_at_start_is_left_out_of_full_collections_while_serving_and_given_back_after(
        self, tmp_path: Path
    ) -> None:
        """While serve_store serves, what it started with is frozen (full collections skip it); after, nothing is."""
        sock = bind_socket("127.0.0.1", 0)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        serving = asyncio.create_task(serve_store(f"sqlite:///{tmp_path}/policy.db", "127.0.0.1", 0, sock=sock))
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                for _ in range(200):
                    with contextlib.suppress(httpx.TransportError):
                        if 200 == (await http.get("/healthz")).status_code:
                            break
                    await asyncio.sleep(0.05)
            frozen = gc.get_freeze_count()
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving

        assert frozen > 10_000
        assert 0 == gc.get_freeze_count()
