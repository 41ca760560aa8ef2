"""``"dry_run": true`` on every write route, live: what a change would do and who may make it; nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

from policystore import PolicyStore


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db").start()
    yield server
    server.stop()


def _send(live: LiveServer, method: str, path: str, role: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=live.base, timeout=10) as http:
        return http.request(method, path, json=body, headers=live.headers(role))


def _history_length(live: LiveServer) -> int:
    async def read(store: PolicyStore) -> int:
        await store.refresh()
        return len(await store.history(100))

    return live.call(read)


def _changes(body: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["path"]: (c["old"], c["new"]) for c in body["changes"]}


class TestModePreview:
    def test_operator_preview_of_looser_mode_lists_effective_changes_and_is_not_allowed(self, live):
        """A switch to a looser mode: the limits that change, old -> new, raised risk, admin needed, nothing written."""
        response = _send(live, "POST", "/v1/mode", "operator", {"mode": "AGGRESSIVE_SMALL_ACCOUNT", "dry_run": True})

        assert 200 == response.status_code, response.text
        body = response.json()
        changes = _changes(body)
        assert (True, 1, "admin", False) == (
            body["dry_run"],
            body["base_version"],
            body["required_role"],
            body["allowed"],
        )
        assert ("NORMAL", "AGGRESSIVE_SMALL_ACCOUNT") == changes["active_mode"]
        assert (5.0, 7.0) == changes["risk.max_leverage"]
        assert (0.5, 0.45) == changes["risk.global_min_confidence"]
        assert "risk.max_leverage" in body["raises_risk"]
        assert "strategies.aggressive.max_leverage" in changes  # effective strategy values follow the mode
        assert not any(p in changes for p in ("version", "updated_at", "updated_by", "reason"))
        assert 1 == _history_length(live)

    def test_operator_preview_of_stricter_mode_is_allowed(self, live):
        """A switch to DEFENSIVE only tightens: an operator may make it, and no path raises risk."""
        body = _send(live, "POST", "/v1/mode", "operator", {"mode": "DEFENSIVE", "dry_run": True}).json()

        assert ([], "operator", True) == (body["raises_risk"], body["required_role"], body["allowed"])
        assert (5.0, 3.0) == _changes(body)["risk.max_leverage"]

    def test_admin_preview_of_looser_mode_is_allowed(self, live):
        """The same looser switch is allowed for an admin."""
        body = _send(live, "POST", "/v1/mode", "admin", {"mode": "AGGRESSIVE_SMALL_ACCOUNT", "dry_run": True}).json()

        assert ("admin", True) == (body["required_role"], body["allowed"])

    def test_preview_of_unknown_mode_answers_422_as_the_write_would(self, live):
        """A preview refuses what the write would refuse, with the same error."""
        response = _send(live, "POST", "/v1/mode", "operator", {"mode": "NOPE", "dry_run": True})

        assert 422 == response.status_code
        assert "PolicyValidationError" == response.json()["error"]

    def test_preview_with_stale_expected_version_answers_409(self, live):
        """expected_version is checked as the write checks it."""
        response = _send(
            live, "POST", "/v1/mode", "operator", {"mode": "DEFENSIVE", "dry_run": True, "expected_version": 7}
        )

        assert (409, 1) == (response.status_code, response.json()["current_version"])

    def test_write_without_reason_is_still_refused(self, live):
        """Only a dry run may leave the reason out: a real write without one is a 422 naming body.reason."""
        response = _send(live, "POST", "/v1/mode", "operator", {"mode": "DEFENSIVE"})

        assert 422 == response.status_code
        assert ["body.reason"] == [e["path"] for e in response.json()["errors"]]
        assert 1 == _history_length(live)


class TestOtherPreviews:
    def test_patch_preview_of_raised_cap_needs_admin(self, live):
        """PATCH preview: a higher cap raises risk; the active mode's effective value changes too."""
        body = _send(
            live, "PATCH", "/v1/policy", "operator", {"changes": {"modes.NORMAL.max_leverage": 6.0}, "dry_run": True}
        ).json()

        changes = _changes(body)
        assert (5.0, 6.0) == changes["modes.NORMAL.max_leverage"]
        assert (5.0, 6.0) == changes["risk.max_leverage"]
        assert ("admin", False) == (body["required_role"], body["allowed"])
        assert 1 == _history_length(live)

    def test_kill_switch_on_preview_shows_who_would_be_recorded(self, live):
        """Turning the kill switch on: an operator may; the preview names the token as who turned it on."""
        body = _send(live, "POST", "/v1/emergency", "operator", {"active": True, "dry_run": True}).json()

        changes = _changes(body)
        assert (False, True) == changes["emergency.active"]
        assert (None, "otto-operator") == changes["emergency.activated_by"]
        assert (True, "operator") == (body["allowed"], body["required_role"])

    def test_kill_switch_off_preview_needs_admin(self, live):
        """Turning it off raises risk: the operator's preview says an admin is needed."""
        _send(live, "POST", "/v1/emergency", "operator", {"active": True, "reason": "halt"})

        body = _send(live, "POST", "/v1/emergency", "operator", {"active": False, "dry_run": True}).json()

        assert (["emergency.active"], "admin", False) == (body["raises_risk"], body["required_role"], body["allowed"])
        assert 2 == body["base_version"]

    def test_rollback_preview_lists_what_returns(self, live):
        """Rolling back to version 1 after a mode switch: the mode and its limits return; nothing is written."""
        _send(live, "POST", "/v1/mode", "operator", {"mode": "DEFENSIVE", "reason": "cpi"})

        response = _send(live, "POST", "/v1/rollback", "admin", {"version": 1, "dry_run": True})

        assert 200 == response.status_code, response.text
        body = response.json()
        changes = _changes(body)
        assert ("DEFENSIVE", "NORMAL") == changes["active_mode"]
        assert (3.0, 5.0) == changes["risk.max_leverage"]
        assert (2, "admin", True) == (body["base_version"], body["required_role"], body["allowed"])
        assert 2 == _history_length(live)

    def test_rollback_preview_of_missing_version_answers_422(self, live):
        """A preview of a rollback to a version that does not exist is refused like the rollback."""
        response = _send(live, "POST", "/v1/rollback", "admin", {"version": 40, "dry_run": True})

        assert 422 == response.status_code
