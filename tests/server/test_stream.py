"""WS /v1/stream against a real server: authentication, snapshot, then every change in version order."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from policystore.server.health import ServerMetrics
from policystore.server.stream import CLOSE_AUTH, CLOSE_PAYLOAD, CLOSE_SLOW, StreamHub, _Client
from policystore.testing import memory_store

HEARTBEAT = 0.2


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    # A short token TTL, so a revocation made by another process is seen within a few heartbeats.
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", heartbeat=HEARTBEAT, token_ttl=0.3).start()
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


def _receive_until_closed(ws, deadline: float = 10.0) -> None:
    """Read messages until the server closes the connection (which raises ConnectionClosed), or give up."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ws.recv(timeout=10)  # every message, heartbeats included, until the close


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


class TestFirstMessage:
    """A first message that is not {"token": "..."}: one error message saying what to send, then close 1007."""

    @pytest.mark.parametrize(
        ("first", "received"),
        [
            (b"\x00\x01binary", "a binary frame"),
            ("[" * 30_000, "JSON nested too deeply"),
            ("x" * 70_000, "70000 characters long"),
            ("[]", "a JSON array"),
            ("null", "JSON null"),
            ('{"token": 5}', 'without a string "token"'),
            ("hello", "text that is not JSON"),
        ],
    )
    def test_malformed_first_message_gets_instructions_and_close_1007(self, live, first, received):
        """Binary frames, deep nesting, other JSON: refused with the sentence naming {"token": ...}, and 1007."""
        with connect(f"{live.ws_base}/v1/stream") as ws:
            ws.send(first)
            error = json.loads(ws.recv(timeout=10))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)

        assert ("error", "StreamMessageError") == (error["type"], error["error"])
        assert '{"token": "<API token>"}' in error["detail"]
        assert received in error["detail"]
        assert CLOSE_PAYLOAD == ws.close_code
        assert "token" in (ws.close_reason or "")

    def test_bare_token_as_first_message_gets_the_same_instructions_without_echoing_it(self, live):
        """A raw token, not wrapped in JSON, is refused with the same sentence; the token is not repeated."""
        token = live.tokens["viewer"]
        with connect(f"{live.ws_base}/v1/stream") as ws:
            ws.send(token)
            error = json.loads(ws.recv(timeout=10))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)

        assert "StreamMessageError" == error["error"]
        assert "a bare token, not JSON" in error["detail"]
        assert token not in error["detail"]
        assert CLOSE_PAYLOAD == ws.close_code

    def test_server_keeps_serving_after_malformed_first_messages(self, live):
        """After refusing a binary frame and deep nesting, the next client signs in as usual."""
        for first in (b"\xff", "[" * 30_000):
            with connect(f"{live.ws_base}/v1/stream") as ws:
                ws.send(first)
                with pytest.raises(ConnectionClosed):
                    _receive_until_closed(ws)
            assert CLOSE_PAYLOAD == ws.close_code
        with connect(f"{live.ws_base}/v1/stream") as ws:
            ws.send(json.dumps({"token": live.tokens["viewer"]}))
            assert "snapshot" == _receive(ws)["type"]


class TestStreamEvents:
    def test_mode_switch_sends_one_message_carrying_the_change(self, live):
        """One message per change: a mode switch arrives as its policy.updated alone, then the next change."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            _receive(ws)
            with httpx.Client(base_url=live.base, timeout=10) as http:
                http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "cpi"}, headers=live.headers("operator"))
                http.post("/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator"))
            first, second = _receive(ws), _receive(ws)

        assert [("policy.updated", 2), ("policy.updated", 3)] == [(m["type"], m["version"]) for m in (first, second)]
        assert "DEFENSIVE" == first["new"]["active_mode"]
        assert second["new"]["emergency.active"] is True

    def test_writes_arrive_after_snapshot_in_version_order(self, live):
        """Several writes reach the client as events in version order, after the snapshot."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            snapshot = _receive(ws)
            with httpx.Client(base_url=live.base, timeout=10) as http:
                statuses = [
                    http.patch(
                        "/v1/policy",
                        json={"changes": {"modes.NORMAL.max_leverage": leverage}, "reason": "step down"},
                        headers=live.headers("operator"),
                    ).status_code
                    for leverage in (4.5, 4.0, 3.5, 3.0)
                ]
                statuses.append(
                    http.post(
                        "/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator")
                    ).status_code
                )
            events = [_receive(ws) for _ in range(5)]  # one message per change, the kill switch's too

        assert [200] * 5 == statuses
        assert 1 == snapshot["version"]
        assert [2, 3, 4, 5, 6] == [e["version"] for e in events]
        assert ["policy.updated"] * 5 == [e["type"] for e in events]
        assert [4.5, 4.0, 3.5, 3.0] == [e["new"]["modes.NORMAL.max_leverage"] for e in events[:4]]
        assert events[4]["new"]["emergency.active"] is True
        assert {"otto-operator"} == {e["by"] for e in events}

    def test_store_restored_to_older_version_closes_for_fresh_snapshot(self, live, tmp_path):
        """When the store goes back to an older version, the client is told to reconnect, then sees it."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        with sqlite3.connect(db) as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
        with httpx.Client(base_url=live.base, timeout=10) as http:
            status = http.post(
                "/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator")
            ).status_code
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            before = _receive(ws)
            with sqlite3.connect(backup) as src, sqlite3.connect(db) as dst:
                src.backup(dst)
            with pytest.raises(ConnectionClosed) as closed:
                _receive_until_closed(ws)
        # The server follows the store back to version 1, then stops trading in the store itself.
        end = time.monotonic() + 10
        halted: dict[str, Any] = {}
        while time.monotonic() < end and halted.get("activated_by") != "policystore":
            time.sleep(0.05)
            halted = httpx.get(f"{live.base}/v1/policy", headers=live.headers("viewer")).json()["policy"]["emergency"]
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            after = _receive(ws)

        assert 200 == status
        assert (2, "otto-operator") == (before["version"], before["policy"]["emergency"]["activated_by"])
        assert CLOSE_SLOW == closed.value.rcvd.code
        assert (2, True, "policystore") == (
            after["version"],
            after["policy"]["emergency"]["active"],
            after["policy"]["emergency"]["activated_by"],
        )
        assert "went back to version 1" in after["policy"]["emergency"]["reason"]

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


def _until_closed(ws) -> tuple[list[dict], ConnectionClosed]:
    """Read every message until the server closes the connection; return them and the closing error."""
    received = []
    try:
        while True:
            received.append(json.loads(ws.recv(timeout=10)))
    except ConnectionClosed as closed:
        return received, closed


class TestRevokedToken:
    def test_token_revoked_on_server_closes_stream_with_1008(self, live):
        """Revoking the token a stream signed in with ends that stream within a few heartbeats."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            assert "snapshot" == _receive(ws)["type"]
            live.call(lambda _store: live.token_store.revoke("vera-viewer"))
            revoked_at = time.monotonic()
            received, closed = _until_closed(ws)
            waited = time.monotonic() - revoked_at

        assert CLOSE_AUTH == closed.rcvd.code
        assert {"type": "error", "error": "AuthenticationError"} == {k: received[-1][k] for k in ("type", "error")}
        assert "revoked" in received[-1]["detail"]
        assert waited < 5 * HEARTBEAT

    def test_token_revoked_by_cli_in_another_process_closes_stream(self, live, tmp_path):
        """A revocation made by 'policystore token revoke' elsewhere reaches the open stream too."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_"))}
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            assert "snapshot" == _receive(ws)["type"]
            revoke = subprocess.run(
                [sys.executable, "-m", "policystore.cli.main", "--store", live.url, "token", "revoke", "vera-viewer"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=environment,
                cwd=tmp_path,
            )
            revoked_at = time.monotonic()
            received, closed = _until_closed(ws)
            waited = time.monotonic() - revoked_at

        assert 0 == revoke.returncode, revoke.stderr
        assert CLOSE_AUTH == closed.rcvd.code
        assert "AuthenticationError" == received[-1]["error"]
        assert waited < 3.0  # token TTL (0.3 s) plus a few heartbeats, with room for a slow machine

    def test_other_tokens_stream_stays_open_after_a_revocation(self, live):
        """Only the revoked token's streams close; another client keeps its heartbeats."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("admin")) as ws:
            _receive(ws)
            live.call(lambda _store: live.token_store.revoke("vera-viewer"))
            beats = [_receive(ws, "heartbeat") for _ in range(5)]

        assert ["heartbeat"] * 5 == [b["type"] for b in beats]


class _RecordingSocket:
    """Stands in for the WebSocket: records what is sent, leaves once it has ``wanted`` events."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.events: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.closed: tuple[int, str] | None = None
        self.gone = asyncio.Event()

    async def send_json(self, data: dict[str, Any]) -> None:
        if data.get("type") == "heartbeat":
            self.heartbeats += 1
        else:
            self.events.append(data)
        if len(self.events) >= self.wanted:
            self.gone.set()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "websocket.disconnect"}

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
        self.gone.set()


class TestHeartbeatNeverLosesEvents:
    async def test_heartbeat_due_every_turn_still_delivers_every_queued_event(self):
        """With a heartbeat due on every loop turn, each queued event still reaches the client, in order.

        A heartbeat timer that fires in the same loop turn as the queue read completes must not
        discard the event that read took.
        """
        store = await memory_store()
        try:
            hub = StreamHub(store, ServerMetrics(), heartbeat=0.0)
            client = _Client(asyncio.Queue(maxsize=200))
            for version in range(1, 101):
                client.offer({"type": "policy.updated", "version": version, "previous_version": version - 1})
            socket = _RecordingSocket(wanted=100)

            async def always_valid() -> bool:
                return True

            async with asyncio.timeout(10):
                await hub._pump(socket, client, 0, always_valid)
        finally:
            await store.close()

        assert list(range(1, 101)) == [e["version"] for e in socket.events]
        assert socket.heartbeats > 0
        assert socket.closed is None  # it left on its own; nothing was refused or dropped
