"""WS /v1/stream against a real server: authentication, snapshot, then every change in version order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from policystore.server.stream import CLOSE_AUTH, _Client


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", heartbeat=0.2).start()
    yield server
    server.stop()


def _receive(ws, kind: str | None = None) -> dict:
    """Return the next message, skipping heartbeats unless asked for."""
    while True:
        message = json.loads(ws.recv(timeout=10))
        if kind is None and message["type"] != "heartbeat":
            return message
        if message["type"] == kind:
            return message


class TestStreamAuthentication:
    def test_token_in_first_message_gets_snapshot(self, live):
        """A client that sends {"token": ...} first receives the snapshot."""
        with connect(f"{live.ws_base}/v1/stream") as ws:
            ws.send(json.dumps({"token": live.tokens["viewer"]}))
            snapshot = _receive(ws)

        assert ("snapshot", 1, "NORMAL") == (snapshot["type"], snapshot["version"], snapshot["policy"]["active_mode"])
        assert "vera-viewer" == snapshot["viewer"]

    def test_token_in_header_gets_snapshot(self, live):
        """An Authorization header authenticates the connection too."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            snapshot = _receive(ws)

        assert "snapshot" == snapshot["type"]

    def test_bad_token_gets_error_and_close_1008(self, live):
        """A wrong token gets one error message and close code 1008; no snapshot."""
        with connect(f"{live.ws_base}/v1/stream") as ws:
            ws.send(json.dumps({"token": "ps_wrong"}))
            error = json.loads(ws.recv(timeout=10))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)

        assert ("error", "AuthenticationError") == (error["type"], error["error"])
        assert CLOSE_AUTH == closed.value.rcvd.code


class TestStreamEvents:
    def test_writes_arrive_after_snapshot_in_version_order(self, live):
        """Several writes reach the client as events in version order, after the snapshot."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            snapshot = _receive(ws)
            with httpx.Client(base_url=live.base, timeout=10) as http:
                for leverage in (4.5, 4.0, 3.5, 3.0):
                    http.patch("/v1/policy", json={"changes": {"modes.NORMAL.max_leverage": leverage},
                                                   "reason": "step down"}, headers=live.headers("operator"))
                http.post("/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator"))
            events = [_receive(ws) for _ in range(6)]  # four updates, then updated + emergency

        assert 1 == snapshot["version"]
        assert [2, 3, 4, 5, 6, 6] == [e["version"] for e in events]
        assert ["policy.updated"] * 5 + ["policy.emergency"] == [e["type"] for e in events]
        assert [4.5, 4.0, 3.5, 3.0] == [e["new"]["modes.NORMAL.max_leverage"] for e in events[:4]]
        assert {"otto-operator"} == {e["by"] for e in events}

    def test_idle_connection_receives_heartbeats(self, live):
        """An idle client receives heartbeats."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            _receive(ws)
            heartbeat = _receive(ws, "heartbeat")

        assert "heartbeat" == heartbeat["type"]

    def test_stream_client_gauge_counts_connections(self, live):
        """/metrics counts open stream connections."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            _receive(ws)
            text = httpx.get(f"{live.base}/metrics").text

        assert "policystore_stream_clients 1.0" in text


class TestSlowClient:
    async def test_full_queue_marks_client_dropped_without_blocking(self):
        """A client whose queue is full is marked for closing; the writer's offer never waits."""
        client = _Client(asyncio.Queue(maxsize=2))

        for version in (1, 2, 3):
            client.offer({"version": version})

        assert client.dropped is True
        assert 2 == client.queue.qsize()

    async def test_queue_with_room_keeps_client(self):
        """A client that keeps up is not dropped."""
        client = _Client(asyncio.Queue(maxsize=2))

        client.offer({"version": 1})

        assert client.dropped is False
