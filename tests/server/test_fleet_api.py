"""The fleet over HTTP against a real server and real member processes: GET /v1/fleet, "wait" on writes, health."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

from policystore import PolicyStore
from support.fleet import Member, members


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", name="api-server").start()
    yield server
    server.stop()


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=60) as client:
        yield client


@pytest.fixture
def member(live: LiveServer) -> Iterator[Member]:
    assert isinstance(live.url, str)
    with members(live.url, "executor-1") as (started,):
        yield started


def _fleet(live: LiveServer, http: httpx.Client) -> dict[str, Any]:
    response = http.get("/v1/fleet", headers=live.headers("viewer"))
    assert 200 == response.status_code, response.text
    return dict(response.json())


def _frozen(live: LiveServer, http: httpx.Client, member: Member) -> None:
    """Wait until ``member`` reported under half a second ago, then freeze it: it stays live, and behind, for 5 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = {m["name"]: m for m in _fleet(live, http)["members"]}
        if member.name in listed and listed[member.name]["lag_seconds"] < 0.5:
            member.freeze()
            return
        time.sleep(0.05)
    pytest.fail(f"{member.name} did not report")


def _version(live: LiveServer) -> int:
    async def read(store: PolicyStore) -> int:
        return (await store.refresh()).version

    return live.call(read)


class TestFleetRoute:
    """GET /v1/fleet lists the server itself and every other process that follows the store."""

    def test_viewer_lists_the_server_and_a_member_process_with_versions_and_status(
        self, live: LiveServer, http: httpx.Client, member: Member
    ) -> None:
        """Both are live at version 1; the member's pid is its process's; counts are given."""
        body = _fleet(live, http)

        listed = {m["name"]: m for m in body["members"]}
        assert ["api-server", "executor-1"] == sorted(listed)
        assert (member.pid, 1, 0, "live") == (
            listed["executor-1"]["pid"],
            listed["executor-1"]["version"],
            listed["executor-1"]["lag_versions"],
            listed["executor-1"]["status"],
        )
        assert (1, 2, 0, 0) == (body["version"], body["live"], body["lost"], body["behind"])

    def test_without_a_token_the_fleet_is_refused(self, http: httpx.Client) -> None:
        """The fleet names hosts and processes: it is for token holders only."""
        assert 401 == http.get("/v1/fleet").status_code


class TestWaitOnWrites:
    """A write body with "wait" answers once the fleet has it, or 202 naming who has not."""

    def test_kill_switch_with_wait_and_a_running_member_answers_200_with_the_fleet_complete(
        self, live: LiveServer, http: httpx.Client, member: Member
    ) -> None:
        """The write's result carries fleet.complete and both members acked."""
        response = http.post(
            "/v1/emergency", json={"active": True, "reason": "halt", "wait": 30}, headers=live.headers("operator")
        )

        assert 200 == response.status_code, response.text
        body = response.json()
        assert (2, True, ["api-server", "executor-1"], []) == (
            body["version"],
            body["fleet"]["complete"],
            [m["name"] for m in body["fleet"]["acked"]],
            body["fleet"]["missing"],
        )
        assert member.member_id in {m["member_id"] for m in body["fleet"]["acked"]}

    def test_kill_switch_with_wait_and_a_frozen_member_answers_202_naming_it_and_the_write_is_made(
        self, live: LiveServer, http: httpx.Client, member: Member
    ) -> None:
        """202, the new policy in the body, fleet.missing names the frozen process; history has the write."""
        _frozen(live, http, member)
        try:
            response = http.post(
                "/v1/emergency", json={"active": True, "reason": "halt", "wait": 0.5}, headers=live.headers("operator")
            )
            metrics = http.get("/metrics").text
        finally:
            member.thaw()

        assert 202 == response.status_code, response.text
        body = response.json()
        assert (2, True) == (body["version"], body["policy"]["emergency"]["active"])
        assert (False, ["executor-1"], [member.pid], [1]) == (
            body["fleet"]["complete"],
            [m["name"] for m in body["fleet"]["missing"]],
            [m["pid"] for m in body["fleet"]["missing"]],
            [m["version"] for m in body["fleet"]["missing"]],
        )
        assert ["api-server"] == [m["name"] for m in body["fleet"]["acked"]]
        assert 2 == _version(live)
        assert 'policystore_fleet_waits_total{outcome="incomplete"} 1.0' in metrics

    @pytest.mark.parametrize(
        "case",
        [
            ("POST", "/v1/mode", {"mode": "DEFENSIVE"}, "operator"),
            ("PATCH", "/v1/policy", {"changes": {"modes.NORMAL.max_leverage": 4.0}}, "operator"),
            ("POST", "/v1/emergency", {"active": True}, "operator"),
            ("POST", "/v1/rollback", {"version": 1}, "admin"),
            ("POST", "/v1/trading", {"state": "halted", "symbol": "BTC"}, "operator"),
            ("POST", "/v1/emergency", {"active": True, "expires_in": 600}, "admin"),
        ],
        ids=lambda case: f"{case[0]} {case[1]} {sorted(case[2])}",
    )
    def test_every_write_route_takes_a_wait_and_answers_202_while_a_member_is_frozen(
        self, live: LiveServer, http: httpx.Client, member: Member, case: tuple[str, str, dict, str]
    ) -> None:
        """mode, PATCH policy, emergency, rollback, trading, an expiring change: written, then 202 naming the member."""
        method, path, body, role = case
        if path == "/v1/rollback":
            http.patch(
                "/v1/policy",
                json={"changes": {"modes.NORMAL.max_positions": 12}, "reason": "a version to roll back from"},
                headers=live.headers("admin"),
            )
        before = _version(live)
        _frozen(live, http, member)
        try:
            response = http.request(
                method, path, json={**body, "reason": "fleet check", "wait": 0.5}, headers=live.headers(role)
            )
        finally:
            member.thaw()

        assert 202 == response.status_code, response.text
        assert (before + 1, ["executor-1"]) == (
            response.json()["version"],
            [m["name"] for m in response.json()["fleet"]["missing"]],
        )

    @pytest.mark.parametrize(
        "extra",
        [{"wait": -1}, {"wait": "2"}, {"wait": True}, {"wait": 61}, {"wait": 1, "dry_run": True}],
        ids=["negative", "text", "boolean", "too-long", "with-dry-run"],
    )
    def test_a_bad_wait_is_refused_with_422_and_nothing_is_written(
        self, live: LiveServer, http: httpx.Client, extra: dict
    ) -> None:
        """A wait that is no number of seconds from 0 to 60, or asked of a dry run, is refused before writing."""
        response = http.post(
            "/v1/emergency", json={"active": True, "reason": "halt", **extra}, headers=live.headers("operator")
        )

        assert 422 == response.status_code, response.text
        assert "wait" in response.text
        assert 1 == _version(live)

    def test_without_wait_a_write_answers_as_before(self, live: LiveServer, http: httpx.Client) -> None:
        """No wait, no fleet key's content: 200 with fleet null."""
        response = http.post("/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator"))
        assert (200, None) == (response.status_code, response.json()["fleet"])


class TestHealthAndMetrics:
    """/healthz says how many members are behind; /metrics exports the fleet's size and lag."""

    def test_health_and_metrics_count_members_and_those_behind(
        self, live: LiveServer, http: httpx.Client, member: Member
    ) -> None:
        """With one member frozen before a write: 2 live members, 1 behind, in both."""
        _frozen(live, http, member)
        try:
            http.post("/v1/emergency", json={"active": True, "reason": "halt"}, headers=live.headers("operator"))
            health = http.get("/healthz").json()
            metrics = http.get("/metrics").text
        finally:
            member.thaw()

        assert (2, 0, 1) == (health["fleet_members"], health["fleet_lost"], health["fleet_behind"])
        assert 'policystore_fleet_members{status="live"} 2.0' in metrics
        assert 'policystore_fleet_members{status="lost"} 0.0' in metrics
        assert "policystore_fleet_behind 1.0" in metrics


class TestWaitOnApproval:
    """The approval that applies a proposal takes "wait" like every write: 202 naming a member that has not."""

    @pytest.fixture
    def proposed(self, live: LiveServer, http: httpx.Client) -> str:
        """Two admins needed; the admin token proposes a loosening; its id."""
        live.add_token("admin2", "bea-admin", "admin")
        raised = http.patch(
            "/v1/policy",
            json={"changes": {"change_control.approvals_required": 2}, "reason": "four eyes"},
            headers=live.headers("operator"),
        )
        assert 200 == raised.status_code, raised.text
        made = http.post(
            "/v1/proposals",
            json={"changes": {"modes.NORMAL.max_leverage": 6.0}, "reason": "event window"},
            headers=live.headers("admin"),
        )
        assert 200 == made.status_code, made.text
        return str(made.json()["id"])

    def test_approval_with_wait_and_a_frozen_member_answers_202_with_the_proposal_applied(
        self, live: LiveServer, http: httpx.Client, member: Member, proposed: str
    ) -> None:
        """202; the body is the applied proposal, fleet.missing names the frozen process."""
        _frozen(live, http, member)
        try:
            response = http.post(
                f"/v1/proposals/{proposed}/approve", json={"wait": 0.5}, headers=live.headers("admin2")
            )
        finally:
            member.thaw()

        assert 202 == response.status_code, response.text
        body = response.json()
        assert ("applied", body["applied_version"], ["executor-1"]) == (
            body["status"],
            body["fleet"]["version"],
            [m["name"] for m in body["fleet"]["missing"]],
        )
        assert body["applied_version"] == _version(live)

    def test_approval_with_wait_and_a_running_member_answers_200_with_the_fleet_complete(
        self, live: LiveServer, http: httpx.Client, member: Member, proposed: str
    ) -> None:
        """200, fleet.complete, the member acked."""
        response = http.post(f"/v1/proposals/{proposed}/approve", json={"wait": 30}, headers=live.headers("admin2"))

        assert 200 == response.status_code, response.text
        assert (True, True) == (
            response.json()["fleet"]["complete"],
            member.member_id in {m["member_id"] for m in response.json()["fleet"]["acked"]},
        )

    def test_approval_without_wait_has_no_fleet(self, live: LiveServer, http: httpx.Client, proposed: str) -> None:
        """As before: 200 and fleet null."""
        response = http.post(f"/v1/proposals/{proposed}/approve", headers=live.headers("admin2"))
        assert (200, "applied", None) == (response.status_code, response.json()["status"], response.json()["fleet"])

    def test_a_wait_with_a_dry_run_approval_is_refused_and_nothing_is_recorded(
        self, live: LiveServer, http: httpx.Client, proposed: str
    ) -> None:
        """A dry run writes no version: asking it to wait is a 422 naming wait; the proposal is still pending."""
        response = http.post(
            f"/v1/proposals/{proposed}/approve", json={"wait": 1, "dry_run": True}, headers=live.headers("admin2")
        )
        assert 422 == response.status_code, response.text
        assert "wait" in response.text
        assert "pending" == http.get(f"/v1/proposals/{proposed}", headers=live.headers("viewer")).json()["status"]
