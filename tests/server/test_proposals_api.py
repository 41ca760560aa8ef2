"""Four-eyes approval over HTTP, live, on SQLite and Redis: two admins, their tokens, and the proposals routes.

The author of every step is the token's name: ada-admin proposes, bea-admin
approves, and the version that applies the proposal names both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

LOOSER = {"modes.NORMAL.max_leverage": 6.0}


class Clock:
    """The server store's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on SQLite, then on a real redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/policy.db"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def live(url: str, clock: Clock) -> Iterator[LiveServer]:
    """A live server with a second admin token (bea-admin) and approvals_required raised to 2 by the operator."""
    server = LiveServer(url, store_options={"clock": clock}).start()
    server.add_token("admin2", "bea-admin", "admin")
    response = send(
        server,
        "PATCH",
        "/v1/policy",
        "operator",
        {"changes": {"change_control.approvals_required": 2}, "reason": "four eyes"},
    )
    assert 200 == response.status_code, response.text
    yield server
    server.stop()


def send(live: LiveServer, method: str, path: str, role: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with httpx.Client(base_url=live.base, timeout=30) as http:
        return http.request(method, path, json=body, headers=live.headers(role))


def version(live: LiveServer) -> int:
    return int(send(live, "GET", "/v1/policy", "viewer").json()["version"])


def history(live: LiveServer) -> list[dict[str, Any]]:
    return list(send(live, "GET", "/v1/history?limit=100", "viewer").json()["entries"])


def propose(live: LiveServer, role: str = "admin", changes: dict[str, Any] = LOOSER) -> dict[str, Any]:
    response = send(live, "POST", "/v1/proposals", role, {"changes": changes, "reason": "event window"})
    assert 200 == response.status_code, response.text
    return dict(response.json())


class TestTwoAdmins:
    """ada-admin proposes, bea-admin approves: one version naming both."""

    def test_admin_loosening_is_refused_403_approval_required(self, live: LiveServer) -> None:
        """PATCH that raises risk: 403, ApprovalRequiredError with its facts; nothing written."""
        before = version(live)

        response = send(live, "PATCH", "/v1/policy", "admin", {"changes": LOOSER, "reason": "more"})

        body = response.json()
        assert (403, "ApprovalRequiredError", 2, 1) == (
            response.status_code,
            body["error"],
            body["approvals_required"],
            body["approvals"],
        )
        assert "propose it" in body["detail"]
        assert before == version(live)

    def test_operator_tightens_at_once_under_two_approvals(self, live: LiveServer) -> None:
        """A stricter limit and a stricter mode from the operator apply at once."""
        limit = send(
            live, "PATCH", "/v1/policy", "operator", {"changes": {"modes.NORMAL.max_leverage": 4.0}, "reason": "x"}
        )
        mode = send(live, "POST", "/v1/mode", "operator", {"mode": "DEFENSIVE", "reason": "calm"})

        assert (200, 200, 4) == (limit.status_code, mode.status_code, version(live))

    def test_second_admin_applies_as_one_version_naming_both(self, live: LiveServer) -> None:
        """Propose (pending, 1 of 2), approve by the other admin (applied): one more version, both named."""
        before = version(live)

        proposal = propose(live)
        response = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin2")

        assert ("pending", ["ada-admin"], 1) == (
            proposal["status"],
            proposal["approved_by"],
            proposal["approvals_missing"],
        )
        applied = response.json()
        assert (200, "applied", ["ada-admin", "bea-admin"], before + 1) == (
            response.status_code,
            applied["status"],
            applied["approved_by"],
            applied["applied_version"],
        )
        entry = history(live)[0]
        assert (before + 1, "ada-admin") == (entry["version"], entry["by"])
        assert f"proposal {proposal['id']}, approved by ada-admin, bea-admin" in entry["reason"]
        assert [before + 1] == [e["version"] for e in history(live) if e["version"] > before]
        policy = send(live, "GET", "/v1/policy", "viewer").json()["policy"]
        assert 6.0 == policy["modes"]["NORMAL"]["max_leverage"]

    def test_same_admin_twice_is_refused_409_and_operator_403(self, live: LiveServer) -> None:
        """The proposer's second approval is a conflict; an operator's is a role refusal; nothing is applied."""
        proposal = propose(live)
        before = version(live)

        twice = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin")
        operator = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "operator")

        assert (409, "ProposalRefusedError", "pending") == (
            twice.status_code,
            twice.json()["error"],
            twice.json()["status"],
        )
        assert 403 == operator.status_code
        assert before == version(live)

    def test_stale_proposal_after_a_conflicting_write_is_refused(self, live: LiveServer) -> None:
        """A tightening of the same path made after the proposal: listed stale, its approval a 409."""
        proposal = propose(live)
        send(live, "PATCH", "/v1/policy", "operator", {"changes": {"modes.NORMAL.max_leverage": 4.5}, "reason": "x"})
        before = version(live)

        listed = send(live, "GET", "/v1/proposals", "viewer").json()["proposals"]
        response = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin2")

        assert [(proposal["id"], "stale")] == [(p["id"], p["status"]) for p in listed]
        assert (409, "stale") == (response.status_code, response.json()["status"])
        assert before == version(live)

    def test_expired_proposal_is_refused(self, live: LiveServer, clock: Clock) -> None:
        """A day later the proposal is expired: listed so, and its approval a 409."""
        proposal = propose(live)

        clock.now += timedelta(hours=24)

        one = send(live, "GET", f"/v1/proposals/{proposal['id']}", "viewer").json()
        response = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin2")
        assert ("expired", 409, "expired") == (one["status"], response.status_code, response.json()["status"])

    def test_reject_then_approve_is_refused(self, live: LiveServer) -> None:
        """bea-admin rejects with a reason; approving after is a 409; rejecting without a reason a 422."""
        proposal = propose(live)

        no_reason = send(live, "POST", f"/v1/proposals/{proposal['id']}/reject", "admin2", {})
        rejected = send(live, "POST", f"/v1/proposals/{proposal['id']}/reject", "admin2", {"reason": "not today"})
        approve = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin2")

        assert 422 == no_reason.status_code
        assert ("rejected", "bea-admin", "not today") == (
            rejected.json()["status"],
            rejected.json()["decided_by"],
            rejected.json()["decision_reason"],
        )
        assert (409, "rejected") == (approve.status_code, approve.json()["status"])

    def test_unknown_proposal_is_404_and_viewer_cannot_propose(self, live: LiveServer) -> None:
        """No such id: 404 naming it; a viewer's proposal: 403."""
        unknown = send(live, "POST", "/v1/proposals/nope/approve", "admin2")
        viewer = send(live, "POST", "/v1/proposals", "viewer", {"changes": LOOSER, "reason": "x"})

        assert (404, "UnknownProposalError", "nope") == (
            unknown.status_code,
            unknown.json()["error"],
            unknown.json()["proposal_id"],
        )
        assert 403 == viewer.status_code

    def test_lowering_approvals_required_needs_both_admins(self, live: LiveServer) -> None:
        """1 is refused to one admin; proposed and approved, it applies; then one admin loosens alone."""
        refused = send(
            live, "PATCH", "/v1/policy", "admin", {"changes": {"change_control.approvals_required": 1}, "reason": "x"}
        )
        proposal = propose(live, changes={"change_control.approvals_required": 1})
        send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin2")
        loosened = send(live, "PATCH", "/v1/policy", "admin", {"changes": LOOSER, "reason": "more"})

        assert (403, 200) == (refused.status_code, loosened.status_code)


class TestDryRuns:
    """dry_run on the proposal routes and the writes: a preview, nothing recorded."""

    def test_patch_dry_run_reports_risk_role_and_approvals_and_writes_nothing(self, live: LiveServer) -> None:
        """An admin's loosening under 2 approvals: not allowed as one write, 2 admins, propose it."""
        before = version(live)

        body = send(live, "PATCH", "/v1/policy", "admin", {"changes": LOOSER, "dry_run": True}).json()

        assert (True, "admin", 2, True, False) == (
            body["dry_run"],
            body["required_role"],
            body["approvals_required"],
            body["proposal_required"],
            body["allowed"],
        )
        assert "modes.NORMAL.max_leverage" in body["raises_risk"]
        assert before == version(live)

    def test_propose_and_approve_dry_runs_record_nothing(self, live: LiveServer) -> None:
        """A proposal's dry run stores no proposal; an approval's dry run stores no approval."""
        preview = send(live, "POST", "/v1/proposals", "admin", {"changes": LOOSER, "dry_run": True})
        assert ([], 2) == (
            send(live, "GET", "/v1/proposals", "viewer").json()["proposals"],
            preview.json()["approvals_required"],
        )
        proposal = propose(live)

        approve = send(live, "POST", f"/v1/proposals/{proposal['id']}/approve", "admin2", {"dry_run": True})

        assert (200, True) == (approve.status_code, approve.json()["allowed"])
        assert ["ada-admin"] == send(live, "GET", f"/v1/proposals/{proposal['id']}", "viewer").json()["approved_by"]


class TestDecisionLog:
    """A server given a decision log reports what a change would do to its signals."""

    def test_dry_run_counts_changed_decisions_on_a_real_log(self, tmp_path: Path) -> None:
        """Raising the confidence floor turns some accepted signals of the sample log into low_confidence."""
        log = _sample_log(tmp_path)
        server = LiveServer(f"sqlite:///{tmp_path}/served.db", decisions=log).start()
        try:
            body = send(
                server,
                "PATCH",
                "/v1/policy",
                "operator",
                {"changes": {"modes.NORMAL.global_min_confidence": 0.6}, "dry_run": True},
            ).json()
            quiet = send(
                server,
                "PATCH",
                "/v1/policy",
                "operator",
                {"changes": {"modes.NORMAL.global_min_confidence": 0.6}, "dry_run": True, "decisions": False},
            ).json()
        finally:
            server.stop()

        impact = body["decisions"]
        assert (117, str(log)) == (impact["signals"], impact["log"])
        assert impact["changed"] == sum(impact["by_reason"].values()) > 0
        assert impact["by_reason"].get("accepted -> low_confidence", 0) > 0
        assert all(e["new"] != e["old"] for e in impact["examples"])
        assert quiet["decisions"] is None


def _sample_log(tmp_path: Path) -> Path:
    """A decision log of the shipped sample signals replayed under the built-in policy (NORMAL)."""
    import asyncio

    from policystore.consumers.decision_log import JsonlDecisionLog
    from policystore.consumers.replay import load_prices, load_signals, replay_mode, sample_paths

    signals_csv, prices_csv = sample_paths()
    result = asyncio.run(replay_mode("NORMAL", load_signals(signals_csv), load_prices(prices_csv)))
    path = tmp_path / "decisions.jsonl"
    with JsonlDecisionLog(path, sync_every=1000) as log:
        for decision in result.decisions:
            log.record(decision)
    return path
