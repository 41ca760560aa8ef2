"""``policystore serve`` writes its log lines from a thread: a reader of them that falls behind stalls no request.

And when the output is blocked long enough for the kept lines to pile up, the
ones beyond the backlog are counted, and the count is logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from policystore import PolicyStore
from policystore.server import TokenStore
from policystore.server.logs import BACKLOG, logs_written_in_background
from support.ports import free_port

pytestmark = [pytest.mark.timeout(180)]

COMMAND = [sys.executable, "-m", "policystore.cli.main"]
#: Reads to make: their access log lines (about 80 bytes each) fill a pipe (64 KiB on Linux) twice over.
READS = 1600


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


async def _viewer_token(url: str) -> str:
    """Create the store at ``url`` and a viewer token for it."""
    store = await PolicyStore.open(url, watch=False)
    try:
        return await TokenStore(store.backend).create("vera", "viewer")
    finally:
        await store.close()


def _wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "policystore serve exited"
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    pytest.fail("policystore serve did not answer within 60 s")


def _read_many(port: int, token: str, count: int) -> list[int]:
    """Read one value ``count`` times on one keep-alive connection (a plain socket: cheap for the client)."""
    request = (
        f"GET /v1/values/risk.max_leverage HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, sock.makefile("rb") as answers:
        for _ in range(count):
            sock.sendall(request)
            status = int(answers.readline().split()[1])
            length = 0
            while (line := answers.readline()) not in {b"\r\n", b""}:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answers.read(length)
            statuses.append(status)
    return statuses


@pytest.mark.slow
def test_reads_are_answered_while_nobody_reads_the_servers_output(tmp_path):
    """With stdout and stderr pipes that are not read, the server still answers thousands of reads.

    Each read logs a line; once the pipe is full, a server writing them from
    its event loop would block there, and stop answering, after a few hundred.
    Every line is written once the pipe is read again.
    """
    url = f"sqlite:///{tmp_path}/policy.db"
    token = asyncio.run(_viewer_token(url))
    port = free_port()
    server = subprocess.Popen(
        [*COMMAND, "--store", url, "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(tmp_path),
        cwd=tmp_path,
    )
    try:
        _wait_until_up(port, server)
        statuses = _read_many(port, token, READS)
    finally:
        server.terminate()
        output, errors = server.communicate(timeout=60)

    assert [200] * READS == statuses
    logged = [line for line in output.decode().splitlines() if "GET /v1/values/risk.max_leverage" in line]
    assert READS == len(logged)
    assert "Finished server process" in errors.decode()  # uvicorn's last line, logged as it stops


def _read_all(fd: int, into: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        into.append(pipe.read())


def test_records_beyond_the_backlog_are_dropped_counted_and_the_count_logged():
    """With the output blocked, each record is written, in order, or counted in a warning saying how many."""
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    logger = logging.getLogger(f"policystore.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler(stream))
    # Beyond what the pipe, the batch the writer holds and the backlog can take.
    total = 3 * BACKLOG
    output: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(read_end, output))
    try:
        with logs_written_in_background([logger.name]):
            for i in range(total):
                logger.info("record %d %s", i, "x" * 100)
            reader.start()  # nothing read the pipe until now
    finally:
        stream.close()
        reader.join(60)

    lines = output[0].decode().splitlines()
    notices = [line for line in lines if "log records were dropped" in line]
    written = [int(line.split()[1]) for line in lines if line.startswith("record ")]
    # Each stretch of drops is counted once, when the writer next gets through: the backlog may
    # fill, drain into the pipe and fill again before the pipe is read, so there may be more than one.
    assert notices
    dropped = sum(int(notice.split()[0]) for notice in notices)
    assert all(int(notice.split()[0]) > 0 for notice in notices)
    assert total == len(written) + dropped
    assert sorted(written) == written
