"""``"expires_in"`` in HTTP write bodies, against a real uvicorn server on SQLite and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

from policystore import PolicyStore


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server on a fresh SQLite, then Redis, store."""
    url = f"sqlite:///{tmp_path}/policy.db" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    server = LiveServer(url).start()
    yield server
    server.stop()


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    """A client of the live server."""
    with httpx.Client(base_url=live.base, timeout=10) as client:
        yield client


def version(live: LiveServer) -> int:
    """The store's version, read from the store."""

    async def read(store: PolicyStore) -> int:
        return (await store.refresh()).version

    return live.call(read)


class TestExpiresIn:
    """Write bodies take expires_in: seconds, above 0, at most 31 days."""

    def test_an_admin_patch_for_an_hour_is_listed_and_explained(self, live: LiveServer, http: httpx.Client) -> None:
        """The answer's policy holds the expiring change; /v1/values says until when."""
        body = {"changes": {"modes.NORMAL.max_leverage": 8.0}, "reason": "CPI print", "expires_in": 3600}
        answer = http.patch("/v1/policy", json=body, headers=live.headers("admin"))
        assert 200 == answer.status_code, answer.text
        (change,) = answer.json()["policy"]["overrides"]
        assert ({"modes.NORMAL.max_leverage": 5.0}, "ada-admin") == (change["replaced"], change["by"])
        value = http.get("/v1/values/risk.max_leverage", headers=live.headers("viewer")).json()
        assert (8.0, change["version"]) == (value["value"], value["expiring_version"])
        assert value["expires_at"] is not None
        listed = http.get("/v1/values/overrides", headers=live.headers("viewer")).json()["value"]
        assert [change["version"]] == [c["version"] for c in listed]

    def test_an_operator_cannot_loosen_for_an_hour(self, live: LiveServer, http: httpx.Client) -> None:
        """403 for an operator's timed raise, nothing written."""
        body = {"changes": {"modes.NORMAL.max_leverage": 8.0}, "reason": "CPI print", "expires_in": 3600}
        answer = http.patch("/v1/policy", json=body, headers=live.headers("operator"))
        assert 403 == answer.status_code
        assert 1 == version(live)

    def test_an_operator_mode_switch_for_a_while_and_a_kill_switch_for_one(
        self, live: LiveServer, http: httpx.Client
    ) -> None:
        """An operator may switch to a stricter mode for a while; a timed kill switch needs an admin."""
        calm = {"mode": "DEFENSIVE", "reason": "calm", "expires_in": 900}
        mode = http.post("/v1/mode", json=calm, headers=live.headers("operator"))
        assert 200 == mode.status_code, mode.text
        halt = {"active": True, "reason": "news", "expires_in": 300}
        refused = http.post("/v1/emergency", json=halt, headers=live.headers("operator"))
        assert (403, "admin") == (refused.status_code, refused.json()["required_role"])
        assert 200 == http.post("/v1/emergency", json=halt, headers=live.headers("admin")).status_code

    @pytest.mark.parametrize("bad", [0, -5, 31 * 86400 + 1, "3600", True, None, [60]])
    def test_a_bad_lifetime_is_422_and_writes_nothing(self, live: LiveServer, http: httpx.Client, bad: Any) -> None:
        """Not positive, too large, not a number: 422 naming expires_in (null is the same as leaving it out)."""
        body = {"changes": {"modes.NORMAL.max_leverage": 4.0}, "reason": "tighter", "expires_in": bad}
        answer = http.patch("/v1/policy", json=body, headers=live.headers("admin"))
        if bad is None:
            assert 200 == answer.status_code
            assert [] == answer.json()["policy"].get("overrides", [])
            return
        assert 422 == answer.status_code
        assert any("expires_in" in e["path"] for e in answer.json()["errors"])
        assert 1 == version(live)

    def test_a_rollback_takes_no_lifetime(self, live: LiveServer, http: httpx.Client) -> None:
        """A rollback writes a whole version for good: expires_in is an unknown field there."""
        body = {"version": 1, "reason": "back", "expires_in": 60}
        assert 422 == http.post("/v1/rollback", json=body, headers=live.headers("admin")).status_code
