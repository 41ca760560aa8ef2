"""The server under load: 200 readers, 10 writers and stream clients at once, against a real server.

Bounded, not timed: the load runs for a few seconds, and what is asserted is
what must hold at any speed: no request fails, every write is in history, no
reader sees the version go back, and every stream client ends at the last
version having seen each version in order.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import websockets
from live_server import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

READERS = 200
WRITERS = 10
STREAM_CLIENTS = 20
#: Seconds of load; how much gets done in them depends on the machine, and nothing asserted does.
LOAD_SECONDS = 3.0
#: The written field: each write sets a value no other write sets, so each one makes a version.
WRITTEN = "modes.NORMAL.position_size_cap"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
    yield server
    server.stop()


@dataclass
class Tally:
    """What the clients saw."""

    reads: int = 0
    errors: list[str] = field(default_factory=list)
    #: version -> reason of each write the server acknowledged.
    written: dict[int, str] = field(default_factory=dict)


class RawReader:
    """One keep-alive HTTP/1.1 connection asking for one value again and again.

    Plain asyncio streams rather than httpx: httpx's connection pool does work
    in proportion to its connections on every request, which at 200 makes the
    clients, not the server, what the test measures.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def connect(cls, live: LiveServer, path: str) -> RawReader:
        host, _, port = live.base.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        token = live.tokens["viewer"]
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        return cls(reader, writer, request)

    async def get(self) -> tuple[int, bytes]:
        """Send the request; return the status and body of its answer."""
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def _read(client: RawReader, deadline: float, tally: Tally) -> None:
    seen = 0
    while time.monotonic() < deadline:
        try:
            status, body = await client.get()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.errors.append(f"read failed: {exc!r}")
            return  # the connection is no longer usable
        if status != 200:
            tally.errors.append(f"read answered {status}: {body!r}")
            continue
        version = json.loads(body)["version"]
        if version < seen:
            tally.errors.append(f"a reader saw version {version} after version {seen}")
        seen = version
        tally.reads += 1


async def _write(http: httpx.AsyncClient, writer: int, deadline: float, tally: Tally) -> None:
    count = 0
    while time.monotonic() < deadline:
        reason = f"load test: writer {writer}, write {count}"
        value = 500.0 + writer + count / 1000  # no two writes set the same value
        try:
            response = await http.patch("/v1/policy", json={"changes": {WRITTEN: value}, "reason": reason})
        except httpx.HTTPError as exc:
            tally.errors.append(f"write failed: {exc!r}")
            continue
        if response.status_code != 200:
            tally.errors.append(f"write answered {response.status_code}: {response.text}")
            continue
        tally.written[response.json()["version"]] = reason
        count += 1


@dataclass
class StreamClient:
    """One stream connection and the versions it was sent, in order."""

    connection: websockets.ClientConnection
    snapshot: int
    versions: list[int] = field(default_factory=list)
    closed: str = ""

    @property
    def at(self) -> int:
        return self.versions[-1] if self.versions else self.snapshot

    async def follow(self) -> None:
        try:
            async for text in self.connection:
                message = json.loads(text)
                if message["type"] == "policy.updated":
                    self.versions.append(message["version"])
        except websockets.ConnectionClosedError as exc:
            self.closed = f"closed with {exc.code}: {exc.reason}"


async def _connect(live: LiveServer) -> StreamClient:
    connection = await websockets.connect(f"{live.ws_base}/v1/stream", max_size=None)
    await connection.send(json.dumps({"token": live.tokens["viewer"]}))
    snapshot = json.loads(await connection.recv())
    assert "snapshot" == snapshot["type"]
    return StreamClient(connection, snapshot["version"])


async def _history(http: httpx.AsyncClient) -> dict[int, tuple[str, str]]:
    """Every history entry: version -> (author, reason), read a page at a time."""
    entries: dict[int, tuple[str, str]] = {}
    before: int | None = None
    while True:
        params = {"limit": 1000} | ({"before": before} if before is not None else {})
        page = (await http.get("/v1/history", params=params)).json()["entries"]
        if not page:
            return entries
        entries.update({entry["version"]: (entry["by"], entry["reason"]) for entry in page})
        before = page[-1]["version"]


async def _wait_until_at(clients: list[StreamClient], version: int) -> None:
    """Wait (up to a bound far above any delivery time) until every client has been sent ``version``."""
    for _ in range(600):
        if all(client.at >= version or client.closed for client in clients):
            return
        await asyncio.sleep(0.05)


async def test_readers_writers_and_stream_clients_at_once_see_no_error_and_lose_no_write(live):
    """200 readers and 10 writers for a few seconds, 20 stream clients connected: nothing fails or is lost."""
    tally = Tally()
    clients = [await _connect(live) for _ in range(STREAM_CLIENTS)]
    followers = [asyncio.create_task(client.follow()) for client in clients]
    readers = [await RawReader.connect(live, "/v1/values/risk.max_leverage") for _ in range(READERS)]
    async with httpx.AsyncClient(base_url=live.base, headers=live.headers("admin"), timeout=60) as http:
        deadline = time.monotonic() + LOAD_SECONDS
        await asyncio.gather(
            *(_read(reader, deadline, tally) for reader in readers),
            *(_write(http, writer, deadline, tally) for writer in range(WRITERS)),
        )
        last = (await http.get("/v1/policy")).json()["version"]
        history = await _history(http)
    for reader in readers:
        await reader.close()
    await _wait_until_at(clients, last)
    for client in clients:
        await client.connection.close()
    await asyncio.gather(*followers)

    assert [] == tally.errors
    assert tally.reads > 0
    assert len(tally.written) >= WRITERS  # each writer had at least its first write acknowledged
    assert last == max(tally.written)
    missing = {v: reason for v, reason in tally.written.items() if history.get(v) != ("ada-admin", reason)}
    assert {} == missing
    for client in clients:
        assert "" == client.closed
        assert last == client.at
        # Each version once, in order, from the one after its snapshot: none was lost or repeated.
        assert list(range(client.snapshot + 1, last + 1)) == client.versions
