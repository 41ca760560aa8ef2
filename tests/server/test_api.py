"""The /v1 HTTP API against a real uvicorn server: roles, status codes, authors, conflicts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

from policystore import PolicyStore
from policystore.backends.memory import MemoryBackend
from policystore.server import TokenStore
from policystore.testing import SwitchableBackend


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
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


class TestReads:
    def test_policy_viewer_returns_document_with_version(self, live, http):
        """A viewer reads the whole policy with its version, from the live store."""
        response = http.get("/v1/policy", headers=live.headers("viewer"))

        assert 200 == response.status_code
        body = response.json()
        assert 1 == body["version"]
        assert "NORMAL" == body["policy"]["active_mode"]
        assert {"source": "store", "stale": False} == {"source": body["source"], "stale": body["stale"]}

    def test_policy_carries_effective_strategy_values(self, live, http):
        """Beside the document, /v1/policy answers each strategy's effective config, as strategies.* paths do."""
        http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 2.5}, "reason": "cut"},
            headers=live.headers("operator"),
        )

        body = http.get("/v1/policy", headers=live.headers("viewer")).json()

        moderate = body["effective"]["strategies"]["moderate"]
        assert 3.0 == body["policy"]["strategies"]["moderate"]["max_leverage"]  # the stored override
        assert (2.5, 120.0, 0.55) == (
            moderate["max_leverage"],
            moderate["cooldown_seconds"],
            moderate["min_confidence"],
        )

    def test_value_known_path_returns_value_source_version(self, live, http):
        """GET /v1/values/{path} answers the value with its source, version and staleness."""
        response = http.get("/v1/values/risk.max_leverage", headers=live.headers("viewer"))

        assert 200 == response.status_code
        body = response.json()
        assert (5.0, "store", 1, False) == (body["value"], body["source"], body["version"], body["stale"])

    def test_value_read_again_after_a_write_answers_the_new_version(self, live, http):
        """The same read before and after a write: the second answers the written value and version, not the first."""
        viewer = live.headers("viewer")
        before = http.get("/v1/values/risk.max_leverage", headers=viewer).json()
        written = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 2.5}, "reason": "cut"},
            headers=live.headers("operator"),
        )
        after = http.get("/v1/values/risk.max_leverage", headers=viewer).json()

        assert 200 == written.status_code, written.text
        assert (5.0, 1) == (before["value"], before["version"])
        assert (2.5, 2) == (after["value"], after["version"])

    def test_value_unknown_path_returns_404_with_suggestions(self, live, http):
        """An unknown path is a 404 naming the path and the nearest valid ones."""
        response = http.get("/v1/values/risk.max_leverag", headers=live.headers("viewer"))

        assert 404 == response.status_code
        body = response.json()
        assert ("UnknownPathError", "risk.max_leverag") == (body["error"], body["path"])
        assert "risk.max_leverage" in body["suggestions"]
        assert "risk.max_leverag" in body["detail"]

    def test_paths_viewer_lists_contract_paths(self, live, http):
        """/v1/paths lists the contract's paths."""
        paths = http.get("/v1/paths", headers=live.headers("viewer")).json()["paths"]

        assert {"risk.max_leverage", "ai.enable_rl", "emergency.active", "active_mode", "version"} <= set(paths)

    def test_history_and_diff_after_write_show_the_change(self, live, http):
        """History lists the write newest first and diff shows the changed field."""
        http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "volatility"}, headers=live.headers("operator"))

        history = http.get("/v1/history", params={"limit": 1}, headers=live.headers("viewer")).json()["entries"]
        diff = http.get("/v1/diff", params={"v1": 1, "v2": 2}, headers=live.headers("viewer")).json()

        assert [(2, "otto-operator", "volatility")] == [(e["version"], e["by"], e["reason"]) for e in history]
        assert {"path": "active_mode", "old": "NORMAL", "new": "DEFENSIVE"} in diff["changes"]

    def test_diff_unknown_version_returns_422(self, live, http):
        """A diff against a version that does not exist is invalid input."""
        response = http.get("/v1/diff", params={"v1": 99}, headers=live.headers("viewer"))

        assert 422 == response.status_code
        assert "PolicyValidationError" == response.json()["error"]


class TestAuthentication:
    def test_request_without_token_returns_401(self, http):
        """No token: 401 with a body that says how to authenticate."""
        response = http.get("/v1/policy")

        assert 401 == response.status_code
        assert "AuthenticationError" == response.json()["error"]

    def test_request_with_unknown_token_returns_401_and_changes_nothing(self, live, http):
        """A wrong token is refused and the write does not happen."""
        response = http.post(
            "/v1/emergency", json={"active": True, "reason": "x"}, headers={"Authorization": "Bearer ps_not-a-token"}
        )

        assert 401 == response.status_code
        assert 1 == _version(live)

    def test_revoked_token_returns_401(self, live, http):
        """A revoked token stops working."""
        assert live.token_store is not None
        token_store = live.token_store
        live.call(lambda _store: token_store.revoke("vera-viewer"))

        response = http.get("/v1/policy", headers=live.headers("viewer"))

        assert 401 == response.status_code

    def test_token_created_by_another_process_works_at_its_first_use(self, live, http):
        """A token made elsewhere right after the server read its token table is not refused as unknown."""
        forged = http.get("/v1/policy", headers={"Authorization": "Bearer ps_not-a-token"})
        assert 401 == forged.status_code  # the server has just read its table, without the new token

        async def create_elsewhere(store: PolicyStore) -> str:
            # Not the server's TokenStore: like `policystore token create` in another process.
            return await TokenStore(store.backend).create("nina-new", "operator")

        secret = live.call(create_elsewhere)

        response = http.get("/v1/policy", headers={"Authorization": f"Bearer {secret}"})

        assert 200 == response.status_code, response.text

    def test_token_in_query_string_is_not_accepted(self, live, http):
        """Tokens travel in headers only, never in the URL."""
        response = http.get("/v1/policy", params={"token": live.tokens["admin"]})

        assert 401 == response.status_code


class TestRoles:
    def test_viewer_write_returns_403_and_changes_nothing(self, live, http):
        """A viewer may not write: 403 naming the role needed; the version stays."""
        response = http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "x"}, headers=live.headers("viewer"))

        assert 403 == response.status_code
        body = response.json()
        assert ("PermissionDeniedError", "viewer", "operator") == (body["error"], body["role"], body["required_role"])
        assert 1 == _version(live)

    def test_operator_lowering_risk_succeeds_with_token_name_as_author(self, live, http):
        """An operator may lower risk; history records the token's name as author."""
        response = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 4.0}, "reason": "tighter"},
            headers=live.headers("operator"),
        )

        assert 200 == response.status_code
        assert (2, "otto-operator") == (response.json()["version"], response.json()["policy"]["updated_by"])
        history = http.get("/v1/history", headers=live.headers("viewer")).json()["entries"]
        assert "otto-operator" == history[0]["by"]

    def test_operator_raising_risk_returns_403_and_changes_nothing(self, live, http):
        """Raising a limit needs an admin; an operator's attempt changes nothing."""
        response = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 6.0}, "reason": "looser"},
            headers=live.headers("operator"),
        )

        assert 403 == response.status_code
        assert "admin" == response.json()["required_role"]
        assert 1 == _version(live)

    def test_operator_switch_to_looser_mode_returns_403(self, live, http):
        """A switch to a looser mode raises risk and needs an admin."""
        response = http.post(
            "/v1/mode", json={"mode": "AGGRESSIVE_SMALL_ACCOUNT", "reason": "x"}, headers=live.headers("operator")
        )

        assert 403 == response.status_code

    def test_admin_raising_risk_succeeds(self, live, http):
        """An admin may raise a limit."""
        response = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 6.0}, "reason": "looser"},
            headers=live.headers("admin"),
        )

        assert 200 == response.status_code
        assert 6.0 == response.json()["policy"]["modes"]["NORMAL"]["max_leverage"]

    def test_emergency_on_by_operator_off_needs_admin(self, live, http):
        """An operator turns the kill switch on but not off; an admin turns it off."""
        on = http.post("/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator"))
        off_operator = http.post(
            "/v1/emergency", json={"active": False, "reason": "resume"}, headers=live.headers("operator")
        )
        off_admin = http.post(
            "/v1/emergency", json={"active": False, "reason": "resume"}, headers=live.headers("admin")
        )

        assert (200, 403, 200) == (on.status_code, off_operator.status_code, off_admin.status_code)
        assert "otto-operator" == on.json()["policy"]["emergency"]["activated_by"]
        assert off_admin.json()["policy"]["emergency"]["active"] is False

    def test_rollback_needs_admin(self, live, http):
        """Rollback is for admins: 403 for an operator, a new version equal to the old for an admin."""
        http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "x"}, headers=live.headers("operator"))
        refused = http.post("/v1/rollback", json={"version": 1, "reason": "undo"}, headers=live.headers("operator"))
        done = http.post("/v1/rollback", json={"version": 1, "reason": "undo"}, headers=live.headers("admin"))

        assert (403, 200) == (refused.status_code, done.status_code)
        assert (3, "NORMAL", "ada-admin") == (
            done.json()["version"],
            done.json()["policy"]["active_mode"],
            done.json()["policy"]["updated_by"],
        )


class TestInvalidInput:
    def test_author_field_in_body_returns_422_and_changes_nothing(self, live, http):
        """The author comes from the token: a body naming updated_by is refused."""
        response = http.post(
            "/v1/mode",
            json={"mode": "DEFENSIVE", "reason": "x", "updated_by": "mallory"},
            headers=live.headers("admin"),
        )

        assert 422 == response.status_code
        assert any("updated_by" in e["path"] for e in response.json()["errors"])
        assert 1 == _version(live)

    def test_value_breaking_rules_returns_422_listing_fields(self, live, http):
        """A value outside its range is refused with every failed field."""
        changes = {"modes.NORMAL.max_risk_pct_per_trade": 2.0, "modes.NORMAL.max_positions": -1}
        response = http.patch("/v1/policy", json={"changes": changes, "reason": "bad"}, headers=live.headers("admin"))

        assert 422 == response.status_code
        paths = {e["path"] for e in response.json()["errors"]}
        assert {"modes.NORMAL.max_risk_pct_per_trade", "modes.NORMAL.max_positions"} <= paths
        assert 1 == _version(live)

    def test_unknown_path_in_patch_returns_404(self, live, http):
        """A patch naming a path that does not exist is a 404 naming it."""
        response = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverge": 1}, "reason": "x"},
            headers=live.headers("admin"),
        )

        assert 404 == response.status_code
        assert "modes.NORMAL.max_leverge" == response.json()["path"]

    def test_malformed_json_returns_400(self, live, http):
        """A body that is not JSON at all is a 400."""
        response = http.post(
            "/v1/mode", content=b"{not json", headers={**live.headers("admin"), "Content-Type": "application/json"}
        )

        assert 400 == response.status_code
        assert "MalformedRequestError" == response.json()["error"]

    def test_oversized_body_returns_413_and_changes_nothing(self, live, http):
        """A body over 64 KiB is refused before it is read."""
        reason = "x" * (70 * 1024)
        response = http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": reason}, headers=live.headers("admin"))

        assert 413 == response.status_code
        assert "PayloadTooLargeError" == response.json()["error"]
        assert 1 == _version(live)

    def test_unknown_route_returns_404_in_error_shape(self, live, http):
        """Unknown routes answer in the same error shape."""
        response = http.get("/v1/nothing", headers=live.headers("admin"))

        assert (404, "NotFound") == (response.status_code, response.json()["error"])


class TestContentType:
    BODY = b'{"mode": "DEFENSIVE", "reason": "volatility"}'

    @pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
    def test_json_body_without_json_content_type_returns_400_naming_the_header(self, live, http, content_type):
        """A JSON body not labelled application/json is a 400 that says which header to send; nothing changes."""
        headers = live.headers("admin") | ({"Content-Type": content_type} if content_type else {})

        response = http.post("/v1/mode", content=self.BODY, headers=headers)

        assert 400 == response.status_code
        body = response.json()
        assert ("ContentTypeError", content_type) == (body["error"], body["content_type"])
        assert "Content-Type: application/json" in body["detail"]
        assert 1 == _version(live)

    def test_json_body_with_json_content_type_and_charset_is_accepted(self, live, http):
        """application/json with parameters is still JSON."""
        headers = live.headers("admin") | {"Content-Type": "application/json; charset=utf-8"}

        response = http.post("/v1/mode", content=self.BODY, headers=headers)

        assert 200 == response.status_code, response.text
        assert 2 == _version(live)

    def test_json_content_type_with_missing_field_is_still_422(self, live, http):
        """A JSON body that lacks a field is invalid input (422), not a content-type problem."""
        response = http.post("/v1/mode", json={"mode": "DEFENSIVE"}, headers=live.headers("admin"))

        assert 422 == response.status_code
        assert ["body.reason"] == [e["path"] for e in response.json()["errors"]]

    def test_wrong_content_type_without_token_is_still_401(self, http):
        """Authentication is checked before the body: no token is a 401 whatever the body."""
        response = http.post("/v1/mode", content=self.BODY, headers={"Content-Type": "text/plain"})

        assert 401 == response.status_code


class TestBrowserHeaders:
    @pytest.mark.parametrize("path", ["/", "/static/index.html"])
    def test_dashboard_pages_carry_strict_security_headers(self, http, path):
        """Both ways to the dashboard's HTML send the CSP, nosniff, no framing and no referrer."""
        response = http.get(path)

        assert (200, "text/html") == (response.status_code, response.headers["content-type"].split(";")[0])
        csp = {d.split()[0]: d.split()[1:] for d in response.headers["content-security-policy"].split("; ")}
        assert ["'self'"] == csp["connect-src"]  # same-origin ws: included; no other host
        assert ["'self'"] == csp["script-src"]
        assert ["'self'"] == csp["style-src"]
        assert ["'none'"] == csp["frame-ancestors"]
        assert ["'none'"] == csp["default-src"]
        assert "nosniff" == response.headers["x-content-type-options"]
        assert "DENY" == response.headers["x-frame-options"]
        assert "no-referrer" == response.headers["referrer-policy"]

    def test_dashboard_html_has_no_inline_script_or_style(self, http):
        """The page loads its script and style from files, so the CSP needs no 'unsafe-inline'."""
        html = http.get("/").text

        assert '<script type="module" src="/static/app.js"></script>' in html
        assert "<style" not in html
        assert " style=" not in html
        assert re.search(r"\son[a-z]+\s*=", html) is None  # no inline event handlers such as onclick=

    def test_api_and_error_responses_carry_nosniff_too(self, live, http):
        """JSON answers, refusals included, carry the same headers."""
        ok = http.get("/v1/policy", headers=live.headers("viewer"))
        refused = http.get("/v1/policy")

        assert ("nosniff", "nosniff") == (
            ok.headers["x-content-type-options"],
            refused.headers["x-content-type-options"],
        )
        assert "frame-ancestors 'none'" in refused.headers["content-security-policy"]

    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    def test_cdn_backed_docs_pages_are_not_served(self, http, path):
        """FastAPI's doc pages would need CDN scripts the CSP forbids; the schema is at /openapi.json."""
        assert 404 == http.get(path).status_code


class TestConflicts:
    def test_stale_expected_version_returns_409_with_current_version(self, live, http):
        """A write based on an old version is refused with the current version in the body."""
        http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "x"}, headers=live.headers("operator"))

        response = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_leverage": 4.0}, "reason": "x", "expected_version": 1},
            headers=live.headers("operator"),
        )

        assert 409 == response.status_code
        assert (1, 2) == (response.json()["expected_version"], response.json()["current_version"])
        assert 2 == _version(live)

    def test_matching_expected_version_succeeds(self, live, http):
        """A write based on the current version goes through."""
        response = http.post(
            "/v1/mode",
            json={"mode": "DEFENSIVE", "reason": "x", "expected_version": 1},
            headers=live.headers("operator"),
        )

        assert (200, 2) == (response.status_code, response.json()["version"])


class TestUnavailableStore:
    @pytest.fixture
    def memory_live(self, request) -> Iterator[tuple[LiveServer, SwitchableBackend]]:
        backend = SwitchableBackend(MemoryBackend(f"server-{request.node.name}-{id(request)}"))
        server = LiveServer(backend).start()
        yield server, backend
        server.stop()

    def test_value_read_before_and_after_the_store_goes_away_answers_live_then_stale(self, memory_live):
        """A value read from the live store, read again once the store is lost, says it is stale."""
        live, backend = memory_live

        async def switch_off(_store: PolicyStore) -> None:
            backend.set_available(False)

        with httpx.Client(base_url=live.base, timeout=10) as http:
            before = http.get("/v1/values/risk.max_leverage", headers=live.headers("viewer")).json()
            live.call(switch_off)
            write = http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "x"}, headers=live.headers("operator"))
            after = http.get("/v1/values/risk.max_leverage", headers=live.headers("viewer")).json()

        assert 503 == write.status_code, write.text
        assert ("store", False) == (before["source"], before["stale"])
        assert ("last_known_good", True, 5.0) == (after["source"], after["stale"], after["value"])

    def test_write_while_store_down_returns_503_and_reads_go_stale(self, memory_live):
        """With the store switched off, writes are 503 and reads answer stale from the last copy."""
        live, backend = memory_live

        async def switch_off(_store: PolicyStore) -> None:
            backend.set_available(False)

        live.call(switch_off)
        with httpx.Client(base_url=live.base, timeout=10) as http:
            write = http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "x"}, headers=live.headers("operator"))
            read = http.get("/v1/values/active_mode", headers=live.headers("viewer"))
            health = http.get("/healthz")

        assert (503, "StoreUnavailableError") == (write.status_code, write.json()["error"]), read.text
        assert 200 == read.status_code, read.text
        assert ("NORMAL", True) == (read.json()["value"], read.json()["stale"])
        assert (200, "degraded", False) == (
            health.status_code,
            health.json()["status"],
            health.json()["store_reachable"],
        )


class TestHealthAndMetrics:
    def test_healthz_live_store_is_ok(self, http):
        """/healthz needs no token and reports a reachable, fresh store."""
        body = http.get("/healthz").json()

        assert ("ok", True, False, 1, "store") == (
            body["status"],
            body["store_reachable"],
            body["stale"],
            body["version"],
            body["source"],
        )

    def test_metrics_count_reads_writes_and_refusals(self, live, http):
        """/metrics counts reads, writes, conflicts and refusals by reason."""
        http.get("/v1/values/risk.max_leverage", headers=live.headers("viewer"))
        http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "x"}, headers=live.headers("operator"))
        http.post(
            "/v1/mode", json={"mode": "NORMAL", "reason": "x", "expected_version": 1}, headers=live.headers("admin")
        )
        http.post("/v1/mode", json={"mode": "NORMAL", "reason": "x"}, headers=live.headers("viewer"))

        text = http.get("/metrics").text

        assert 'policystore_http_reads_total{route="value"} 1.0' in text
        assert 'policystore_http_writes_total{operation="mode"} 1.0' in text
        assert "policystore_http_conflicts_total 1.0" in text
        assert 'policystore_http_refusals_total{reason="permission"} 1.0' in text
        assert "policystore_policy_version 2.0" in text
        assert "policystore_store_reachable 1.0" in text
        assert "policystore_propagation_lag_seconds_count 1.0" in text

    def test_no_cors_headers_by_default(self, http):
        """CORS is closed unless origins are configured."""
        response = http.get("/healthz", headers={"Origin": "http://evil.example"})

        assert "access-control-allow-origin" not in response.headers


class TestOpenAPI:
    def test_every_contract_route_is_documented_with_a_response_schema(self, http):
        """/openapi.json lists every /v1 route with a 200 response schema and bearer auth."""
        schema = http.get("/openapi.json").json()
        expected = {
            ("get", "/v1/policy"),
            ("patch", "/v1/policy"),
            ("get", "/v1/values/{path}"),
            ("get", "/v1/paths"),
            ("post", "/v1/mode"),
            ("post", "/v1/emergency"),
            ("get", "/v1/history"),
            ("get", "/v1/diff"),
            ("post", "/v1/rollback"),
            ("get", "/healthz"),
            ("get", "/metrics"),
        }

        found = {(method, path) for path, ops in schema["paths"].items() for method in ops}

        assert expected <= found
        for method, path in expected - {("get", "/metrics")}:
            assert "schema" in schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        assert "HTTPBearer" in schema["components"]["securitySchemes"]
