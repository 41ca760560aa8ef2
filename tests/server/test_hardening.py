"""The HTTP API against hostile and broken input, live: every refusal is JSON in the error shape, never a crash.

Numbers too large for a float or a back end, booleans posing as integers,
bodies that are not text or are too long (in chunks too), a history row a failing disk garbled, and a back end
that fails in a way nobody planned for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

from policystore import PolicyStore
from policystore.backends.memory import MemoryBackend
from policystore.model.history import HistoryEntry
from policystore.server.app import SECURITY_HEADERS

#: One more than SQLite's largest INTEGER, and far beyond 2**53.
HUGE = 2**63
#: Too large for a float at all.
VAST = 10**400


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
    yield server
    server.stop()


def _request(
    live: LiveServer, method: str, path: str, role: str = "admin", headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    # A client per request: after a server error a kept-alive connection may be dropped.
    with httpx.Client(base_url=live.base, timeout=10) as http:
        return http.request(method, path, headers={**live.headers(role), **(headers or {})}, **kwargs)


def _version(live: LiveServer) -> int:
    async def read(store: PolicyStore) -> int:
        return (await store.refresh()).version

    return live.call(read)


def _assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert value == response.headers.get(name), name


class _FailingHistory(MemoryBackend):
    """A memory store whose history read fails as no one planned: the stand-in for a bug or a broken driver."""

    async def history(self, limit: int, before: int | None = None) -> list[HistoryEntry]:  # noqa: ARG002 - as the protocol
        msg = "the history index returned a row of the wrong width"
        raise RuntimeError(msg)


def _chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body in pieces: httpx sends an iterator without a length, chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


class TestBodyLimit:
    def test_chunked_body_over_the_limit_answers_413_with_security_headers_and_changes_nothing(self, live):
        """A body sent in chunks, declaring no length, is held to the limit too: refused before the route reads it."""
        body = json.dumps({"mode": "DEFENSIVE", "reason": "x" * (70 * 1024)}).encode()
        response = _request(
            live, "POST", "/v1/mode", headers={"Content-Type": "application/json"}, content=_chunks(body)
        )

        assert 413 == response.status_code
        assert "PayloadTooLargeError" == response.json()["error"]
        _assert_security_headers(response)
        assert 1 == _version(live)

    def test_chunked_body_within_the_limit_is_read_whole_and_written(self, live):
        """A body sent in chunks under the limit reaches the route whole: the write it asks for is made."""
        # Padded with whitespace, which JSON allows, so that it takes many chunks.
        body = json.dumps({"mode": "DEFENSIVE", "reason": "sent in pieces"}).encode() + b" " * 9000
        response = _request(
            live, "POST", "/v1/mode", headers={"Content-Type": "application/json"}, content=_chunks(body, 1000)
        )

        assert 200 == response.status_code, response.text
        assert "DEFENSIVE" == response.json()["policy"]["active_mode"]
        _assert_security_headers(response)
        assert 2 == _version(live)

    def test_declared_length_over_the_limit_answers_413_with_security_headers(self, live):
        """A body whose Content-Length is over the limit is refused at once, with every security header."""
        response = _request(live, "POST", "/v1/mode", json={"mode": "DEFENSIVE", "reason": "x" * (70 * 1024)})

        assert 413 == response.status_code
        _assert_security_headers(response)
        assert 1 == _version(live)


class TestUnexpectedErrors:
    def test_unexpected_exception_answers_json_500_with_security_headers(self, request):
        """Any unplanned exception is a JSON 500 in the error shape, with every security header, not plain text."""
        live = LiveServer(_FailingHistory(f"failing-{request.node.name}-{id(request)}")).start()
        try:
            response = _request(live, "GET", "/v1/history", role="viewer")
            after = _request(live, "GET", "/v1/policy", role="viewer")
        finally:
            live.stop()

        assert 500 == response.status_code
        assert "application/json" == response.headers["content-type"]
        body = response.json()
        assert {"error", "detail"} <= body.keys()
        assert "InternalError" == body["error"]
        assert "GET /v1/history" in body["detail"]
        assert "wrong width" not in response.text  # the cause is in the server's log, not in the answer
        _assert_security_headers(response)
        assert 200 == after.status_code  # the server goes on serving

    def test_body_that_is_not_utf8_names_malformed_request(self, live):
        """A body with bytes that are not UTF-8 is a 400 MalformedRequestError, not an anonymous HTTPError."""
        response = _request(
            live,
            "POST",
            "/v1/emergency",
            content=b'{"active": true, "reason": "\xff"}',
            role="operator",
            headers={"Content-Type": "application/json"},
        )

        assert 400 == response.status_code
        assert "MalformedRequestError" == response.json()["error"]
        assert "UTF-8" in response.json()["detail"]
        assert 1 == _version(live)

    def test_body_nested_too_deeply_names_malformed_request(self, live):
        """A body of 30,000 opening brackets is a 400 MalformedRequestError, not a server error."""
        response = _request(
            live, "PATCH", "/v1/policy", content="[" * 30_000, headers={"Content-Type": "application/json"}
        )

        assert 400 == response.status_code
        assert "MalformedRequestError" == response.json()["error"]
        _assert_security_headers(response)


class TestNumbersTooLarge:
    @pytest.mark.parametrize(
        "path",
        [
            "modes.NORMAL.max_leverage",
            "modes.DEFENSIVE.position_size_cap",
            "hard_limits.max_positions",
            "strategies.moderate.cooldown_seconds",
        ],
    )
    def test_patch_with_integer_too_large_for_a_float_answers_422_naming_the_path(self, live, path):
        """PATCH with 10**400 is a JSON 422 naming the path, and nothing is written (the model refuses it)."""
        body = '{"changes": {"%s": %d}, "reason": "overflow"}' % (path, VAST)  # noqa: UP031 - json cannot write it
        response = _request(live, "PATCH", "/v1/policy", content=body, headers={"Content-Type": "application/json"})

        assert 422 == response.status_code, response.text
        assert "PolicyValidationError" == response.json()["error"]
        assert path in [e["path"] for e in response.json()["errors"]]
        _assert_security_headers(response)
        assert 1 == _version(live)

    @pytest.mark.parametrize(
        "case",
        [
            ("GET", "/v1/history", {"before": HUGE}, None, "query.before"),
            ("GET", "/v1/history", {"limit": HUGE}, None, "query.limit"),
            ("GET", "/v1/diff", {"v1": HUGE}, None, "query.v1"),
            ("GET", "/v1/diff", {"v1": 1, "v2": HUGE}, None, "query.v2"),
            ("POST", "/v1/rollback", None, {"version": HUGE, "reason": "x"}, "body.version"),
            ("POST", "/v1/rollback", None, {"version": 1, "reason": "x", "expected_version": HUGE}, None),
            ("POST", "/v1/mode", None, {"mode": "DEFENSIVE", "reason": "x", "expected_version": HUGE}, None),
            (
                "PATCH",
                "/v1/policy",
                None,
                {"changes": {"modes.NORMAL.max_leverage": 4}, "reason": "x", "expected_version": HUGE},
                None,
            ),
            ("POST", "/v1/emergency", None, {"active": True, "reason": "x", "expected_version": HUGE}, None),
        ],
    )
    def test_integer_beyond_what_back_ends_hold_answers_422_and_changes_nothing(self, live, case):
        """Every integer the API takes is bounded (at most 2**53): beyond it is a 422 naming the field."""
        method, path, params, body, field = case
        response = _request(live, method, path, params=params, json=body)

        assert 422 == response.status_code, response.text
        errors = [e["path"] for e in response.json()["errors"]]
        assert (field or "body.expected_version") in errors
        assert 1 == _version(live)

    def test_largest_integer_taken_is_answered_without_error(self, live):
        """2**53 itself is accepted and answered: an empty page of history, a version that does not exist."""
        history = _request(live, "GET", "/v1/history", params={"before": 2**53}, role="viewer")
        rollback = _request(live, "POST", "/v1/rollback", json={"version": 2**53, "reason": "x"})

        assert (200, 1) == (history.status_code, len(history.json()["entries"]))
        assert 422 == rollback.status_code
        assert "there is no version" in rollback.json()["detail"]


class TestStrictIntegers:
    @pytest.mark.parametrize("value", [True, False, "1", 1.0])
    def test_expected_version_that_is_not_an_integer_answers_422_and_changes_nothing(self, live, value):
        """A boolean, a string or a float is not a version: true is never read as version 1."""
        response = _request(
            live, "POST", "/v1/emergency", json={"active": True, "reason": "x", "expected_version": value}
        )

        assert 422 == response.status_code, response.text
        assert ["body.expected_version"] == [e["path"] for e in response.json()["errors"]]
        assert 1 == _version(live)

    def test_rollback_version_true_answers_422(self, live):
        """ "version": true is not version 1."""
        response = _request(live, "POST", "/v1/rollback", json={"version": True, "reason": "x"})

        assert 422 == response.status_code
        assert ["body.version"] == [e["path"] for e in response.json()["errors"]]

    @pytest.mark.parametrize("value", [1, 0, "true", None])
    def test_kill_switch_state_that_is_not_a_boolean_answers_422_and_changes_nothing(self, live, value):
        """ "active" takes JSON true or false only: 1, 0 or "true" would guess what the operator meant."""
        response = _request(live, "POST", "/v1/emergency", role="operator", json={"active": value, "reason": "x"})

        assert 422 == response.status_code, response.text
        assert ["body.active"] == [e["path"] for e in response.json()["errors"]]
        assert 1 == _version(live)


class TestMalformedHistory:
    def test_garbled_sqlite_history_entry_answers_503_in_the_error_shape(self, live, tmp_path):
        """A history row that is JSON but not an entry (a failing disk) is a 503 naming the store, not a 500."""
        with sqlite3.connect(tmp_path / "policy.db") as db:
            db.execute("UPDATE policy_versions SET entry = ? WHERE version = 1", ('{"version": 1}',))

        response = _request(live, "GET", "/v1/history", role="viewer")

        assert 503 == response.status_code, response.text
        assert "StoreUnavailableError" == response.json()["error"]
        _assert_security_headers(response)
