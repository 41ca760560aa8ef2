"""POST /v1/trading, the trading paths read over HTTP, policystore_trading_state and policy.trading on the stream.

Everything against a real uvicorn server over a real SQLite file (or a memory
store switched off, for the outage).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer
from websockets.sync.client import connect

from policystore import PolicyStore
from policystore.backends.memory import MemoryBackend
from policystore.testing import SwitchableBackend

#: Each scope a state is set at: the body's scope fields and the path the write lands on.
SCOPES = [
    pytest.param({}, "trading.state", id="firm"),
    pytest.param({"strategy": "aggressive"}, "strategies.aggressive.state", id="strategy"),
    pytest.param({"symbol": "BTC/USD"}, "instruments.BTC/USD.state", id="instrument"),
    pytest.param({"symbol": "default"}, "instruments.default.state", id="default-instrument"),
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", heartbeat=0.2).start()
    yield server
    server.stop()


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=10) as client:
        yield client


def _version(live: LiveServer) -> int:
    async def read(store: PolicyStore) -> int:
        return (await store.refresh()).version

    return live.call(read)


def _post(http: httpx.Client, live: LiveServer, role: str, body: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/trading", json=body, headers=live.headers(role))


def _value(http: httpx.Client, live: LiveServer, path: str) -> Any:
    response = http.get(f"/v1/values/{path}", headers=live.headers("viewer"))
    assert 200 == response.status_code, response.text
    return response.json()


class TestAuthority:
    """Operators move a state toward halted; only admins move it toward active; the author is the token's name."""

    @pytest.mark.parametrize(("scope", "path"), SCOPES)
    def test_operator_halts_and_is_recorded_as_the_author(self, live, http, scope: dict[str, str], path: str):
        """200 with the new policy; the path reads halted; history names the operator's token."""
        response = _post(http, live, "operator", {"state": "halted", "reason": "exchange halt", **scope})

        assert 200 == response.status_code, response.text
        assert 2 == response.json()["version"]
        assert "halted" == _value(http, live, path)["value"]
        entry = http.get("/v1/history?limit=1", headers=live.headers("viewer")).json()["entries"][0]
        assert ("otto-operator", "exchange halt") == (entry["by"], entry["reason"])
        assert path in [c["path"] for c in entry["changes"]]

    @pytest.mark.parametrize(("scope", "path"), SCOPES)
    def test_operator_loosening_is_403_and_changes_nothing(self, live, http, scope: dict[str, str], path: str):
        """From halted, reducing and active are both refused with 403 naming the admin role."""
        _post(http, live, "operator", {"state": "halted", "reason": "exchange halt", **scope})

        for looser in ("reducing", "active"):
            response = _post(http, live, "operator", {"state": looser, "reason": "reopen", **scope})

            body = response.json()
            assert (403, "PermissionDeniedError", "admin") == (
                response.status_code,
                body["error"],
                body["required_role"],
            )
            assert path in body["detail"]
        assert "halted" == _value(http, live, path)["value"]
        assert 2 == _version(live)

    @pytest.mark.parametrize(("scope", "path"), SCOPES)
    def test_admin_loosens(self, live, http, scope: dict[str, str], path: str):
        """An admin sets a halted scope back to active; the author is the admin's token."""
        _post(http, live, "operator", {"state": "halted", "reason": "exchange halt", **scope})

        response = _post(http, live, "admin", {"state": "active", "reason": "exchange open", **scope})

        assert (200, 3) == (response.status_code, response.json()["version"])
        assert "active" == _value(http, live, path)["value"]

    def test_viewer_may_not_write(self, live, http):
        """Any write needs an operator: a viewer's halt is 403 and nothing changes."""
        response = _post(http, live, "viewer", {"state": "halted", "reason": "panic"})

        assert (403, "operator") == (response.status_code, response.json()["required_role"])
        assert 1 == _version(live)


class TestRefusals:
    """Bad input is 422 naming what was wrong, a stale base 409, a store away 503; nothing is written."""

    @pytest.mark.parametrize("symbol", ["btc", "BTC USD", "-BTC", "X" * 33, "BTC\n"])
    def test_symbol_outside_the_pattern_is_422(self, live, http, symbol: str):
        """The error names the symbol's path and the pattern."""
        response = _post(http, live, "operator", {"state": "halted", "symbol": symbol, "reason": "x"})

        body = response.json()
        assert (422, "PolicyValidationError") == (response.status_code, body["error"]), response.text
        assert [True] == [e["path"].startswith("instruments.") for e in body["errors"]]  # odd keys are quoted
        assert "upper-case letters" in body["detail"]
        assert 1 == _version(live)

    @pytest.mark.parametrize(
        ("body", "path", "words"),
        [
            ({"state": "paused"}, "body.state", "'active', 'reducing' or 'halted'"),
            ({"state": "halted", "strategy": "agressive"}, "strategies.agressive", "did you mean aggressive?"),
            ({"state": "halted", "strategy": "aggressive", "symbol": "BTC"}, "scope", "not both"),
            ({"state": "halted", "author": "someone-else"}, "body.author", "Extra inputs"),
            ({"state": True}, "body.state", "Input should be"),
        ],
        ids=["unknown-state", "unknown-strategy", "two-scopes", "smuggled-author", "not-a-string"],
    )
    def test_bad_body_is_422_naming_the_field(self, live, http, body: dict[str, Any], path: str, words: str):
        """A state that is none of the three, a strategy the policy lacks, two scopes, an unknown field."""
        response = _post(http, live, "operator", {**body, "reason": "x"})

        assert 422 == response.status_code, response.text
        assert path in [e["path"] for e in response.json()["errors"]]
        assert words in response.json()["detail"]
        assert 1 == _version(live)

    def test_write_without_reason_is_422(self, live, http):
        """A write that is not a dry run needs a reason."""
        response = _post(http, live, "operator", {"state": "halted"})

        assert (422, ["body.reason"]) == (response.status_code, [e["path"] for e in response.json()["errors"]])

    def test_stale_expected_version_is_409(self, live, http):
        """Compare-and-set: a halt based on version 1 is refused once the store is at 2."""
        _post(http, live, "operator", {"state": "reducing", "reason": "first", "expected_version": 1})

        response = _post(http, live, "operator", {"state": "halted", "reason": "second", "expected_version": 1})

        assert (409, 2) == (response.status_code, response.json()["current_version"])
        assert "reducing" == _value(http, live, "trading.state")["value"]

    def test_store_away_is_503_and_nothing_is_written(self, request):
        """With the store switched off, a halt is 503 StoreUnavailableError; back on, the store still holds active."""
        backend = SwitchableBackend(MemoryBackend(f"trading-{request.node.name}-{id(request)}"))
        live = LiveServer(backend).start()
        try:

            async def switch(_store: PolicyStore, *, available: bool) -> None:
                backend.set_available(available)

            live.call(lambda store: switch(store, available=False))
            with httpx.Client(base_url=live.base, timeout=10) as http:
                response = _post(http, live, "operator", {"state": "halted", "reason": "outage"})
            live.call(lambda store: switch(store, available=True))
            version = _version(live)
        finally:
            live.stop()

        assert (503, "StoreUnavailableError") == (response.status_code, response.json()["error"])
        assert 1 == version


class TestPreview:
    def test_dry_run_says_who_may_without_writing(self, live, http):
        """An operator's dry run of a loosening: not allowed, needs an admin, raises risk; no version written."""
        _post(http, live, "operator", {"state": "halted", "symbol": "BTC", "reason": "exchange halt"})

        preview = _post(http, live, "operator", {"state": "active", "symbol": "BTC", "dry_run": True}).json()

        assert (False, "admin", ["instruments.BTC.state"]) == (
            preview["allowed"],
            preview["required_role"],
            preview["raises_risk"],
        )
        assert {"path": "instruments.BTC.state", "old": "halted", "new": "active"} in preview["changes"]
        assert 2 == _version(live)


class TestReads:
    """The trading paths read over HTTP, symbols with a slash included, and the policy carries what is in force."""

    def test_value_of_a_symbol_with_a_slash_as_sent_or_encoded(self, live, http):
        """instruments.BTC/USD.state answers, with what set it and the state in force, whether / is raw or %2F."""
        _post(http, live, "operator", {"state": "halted", "symbol": "BTC/USD", "reason": "x"})

        for path in ("instruments.BTC/USD.state", "instruments.BTC%2FUSD.state"):
            body = _value(http, live, path)
            assert ("instruments.BTC/USD.state", "halted") == (body["path"], body["value"])
            assert "instruments.BTC/USD.state" == body["set_by"]
            assert {"state": "halted", "set_by": "instruments.BTC/USD.state", "scope": "instrument"} == body["in_force"]

    def test_value_of_an_unknown_symbol_is_404_with_suggestions(self, live, http):
        """A symbol with no entry has no paths of its own: 404 naming the nearest."""
        _post(http, live, "operator", {"state": "halted", "symbol": "BTC/USD", "reason": "x"})

        response = http.get("/v1/values/instruments.BTC/USDT.state", headers=live.headers("viewer"))

        assert (404, "UnknownPathError") == (response.status_code, response.json()["error"])
        assert "instruments.BTC/USD.state" in response.json()["suggestions"]

    def test_values_say_which_scope_decides(self, live, http):
        """The kill switch decides the firm's effective state; an inherited collar names the default's path."""
        http.patch(
            "/v1/policy",
            json={"changes": {"instruments.default.price_collar": 0.02}, "reason": "collar"},
            headers=live.headers("operator"),
        )
        http.post("/v1/emergency", json={"active": True, "reason": "outage"}, headers=live.headers("operator"))

        effective = _value(http, live, "trading.effective_state")
        collar = _value(http, live, "instruments.default.price_collar")
        leverage = _value(http, live, "risk.max_leverage")

        assert ("reducing", "emergency.active", "kill switch") == (
            effective["value"],
            effective["in_force"]["set_by"],
            effective["in_force"]["scope"],
        )
        assert (0.02, "instruments.default.price_collar") == (collar["value"], collar["set_by"])
        assert (None, None) == (leverage["set_by"], leverage["in_force"])

    def test_policy_json_holds_the_trading_sections_and_what_is_in_force(self, live, http):
        """The document has trading and instruments; effective has each state and limit in force with its path."""
        http.patch(
            "/v1/policy",
            json={
                "changes": {"instruments.BTC.max_order_notional": 10_000, "trading.max_daily_loss": 2_500},
                "reason": "limits",
            },
            headers=live.headers("operator"),
        )
        _post(http, live, "operator", {"state": "reducing", "strategy": "aggressive", "reason": "x"})

        body = http.get("/v1/policy", headers=live.headers("viewer")).json()

        assert 10_000 == body["policy"]["instruments"]["BTC"]["max_order_notional"]
        assert ("active", 2_500) == (body["policy"]["trading"]["state"], body["policy"]["trading"]["max_daily_loss"])
        assert "reducing" == body["policy"]["strategies"]["aggressive"]["state"]
        trading, instruments = body["effective"]["trading"], body["effective"]["instruments"]
        assert {"value": 2_500, "set_by": "trading.max_daily_loss"} == trading["max_daily_loss"]
        assert "strategy" == trading["strategies"]["aggressive"]["scope"]
        assert ["default", "BTC"] == list(instruments)
        assert {"value": 10_000, "set_by": "instruments.BTC.max_order_notional"} == instruments["BTC"][
            "max_order_notional"
        ]


class TestOpenAPI:
    def test_trading_route_is_documented_with_its_states_and_error_classes(self, http):
        """POST /v1/trading: the three states in the body's schema, and each error status named by class."""
        schema = http.get("/openapi.json").json()

        operation = schema["paths"]["/v1/trading"]["post"]
        statuses = {int(s) for s in operation["responses"] if int(s) >= 400}
        assert {400, 401, 403, 404, 409, 413, 422, 503} == statuses
        assert "(PermissionDeniedError)" in operation["responses"]["403"]["description"]
        assert "(StoreUnavailableError)" in operation["responses"]["503"]["description"]
        request = schema["components"]["schemas"]["TradingRequest"]
        assert ["active", "reducing", "halted"] == request["properties"]["state"]["enum"]
        written = {"state", "strategy", "symbol", "reason", "expected_version"}
        assert written | {"dry_run", "decisions", "wait"} == set(request["properties"])
        assert "/v1/values/{path}" in schema["paths"]


def _gauge(metrics: str) -> dict[tuple[str, str], float]:
    found = re.findall(r'^policystore_trading_state\{name="([^"]+)",scope="([^"]+)"\} (\S+)$', metrics, re.MULTILINE)
    return {(scope, name): float(value) for name, scope, value in found}


class TestMetrics:
    def test_trading_state_gauge_per_scope(self, live, http):
        """0 active, 1 reducing, 2 halted, per scope; the kill switch shows in the firm's effective state."""
        _post(http, live, "operator", {"state": "halted", "symbol": "BTC/USD", "reason": "x"})
        _post(http, live, "operator", {"state": "reducing", "strategy": "aggressive", "reason": "x"})
        http.post("/v1/emergency", json={"active": True, "reason": "outage"}, headers=live.headers("operator"))

        metrics = http.get("/metrics").text

        assert "# HELP policystore_trading_state Trading state by scope: 0 active, 1 reducing, 2 halted." in metrics
        assert "# TYPE policystore_trading_state gauge" in metrics
        assert {
            ("firm", "state"): 0.0,
            ("firm", "effective_state"): 1.0,
            ("strategy", "aggressive"): 1.0,
            ("strategy", "conservative"): 0.0,
            ("strategy", "defensive"): 0.0,
            ("strategy", "moderate"): 0.0,
            ("instrument", "default"): 0.0,
            ("instrument", "BTC/USD"): 2.0,
        } == _gauge(metrics)

    def test_a_removed_instrument_leaves_the_gauge(self, live, http):
        """An instrument whose entry is removed is no longer listed; the default follows its new state."""
        _post(http, live, "operator", {"state": "halted", "symbol": "ETH", "reason": "x"})
        assert 2.0 == _gauge(http.get("/metrics").text)[("instrument", "ETH")]

        http.patch(
            "/v1/policy",
            json={"changes": {"instruments.ETH": None, "instruments.default.state": "halted"}, "reason": "all halted"},
            headers=live.headers("admin"),
        )

        gauge = _gauge(http.get("/metrics").text)
        assert ("instrument", "ETH") not in gauge
        assert 2.0 == gauge[("instrument", "default")]


def _receive(ws) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] != "heartbeat":
            return message


class TestStream:
    def test_state_change_arrives_as_policy_trading_after_its_policy_updated(self, live, http):
        """A halt: policy.updated then policy.trading of the same version; a limit change: policy.updated alone."""
        with connect(f"{live.ws_base}/v1/stream", additional_headers=live.headers("viewer")) as ws:
            assert "snapshot" == _receive(ws)["type"]
            _post(http, live, "operator", {"state": "halted", "symbol": "BTC", "reason": "exchange halt"})
            http.patch(
                "/v1/policy",
                json={"changes": {"instruments.BTC.max_order_quantity": 5}, "reason": "smaller"},
                headers=live.headers("operator"),
            )
            _post(http, live, "operator", {"state": "reducing", "strategy": "moderate", "reason": "drawdown"})
            messages = [_receive(ws) for _ in range(5)]

        assert [
            ("policy.updated", 2),
            ("policy.trading", 2),
            ("policy.updated", 3),
            ("policy.updated", 4),
            ("policy.trading", 4),
        ] == [(m["type"], m["version"]) for m in messages]
        halt = messages[1]
        assert ("otto-operator", "exchange halt") == (halt["by"], halt["reason"])
        assert {"instruments.BTC.state": "halted"} == halt["new"]
        assert {"strategies.moderate.state": "reducing"} == messages[4]["new"]
