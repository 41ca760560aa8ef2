"""Failing closed through the live HTTP server: a store file moved away, and an operator loosening overrides.

The SQLite file moved away under a running server: ``/healthz`` stops saying
``ok``, writes are refused, and no write is acknowledged into the moved-away
file; once ``policystore init`` makes a new store at the path (and the kill
switch is turned on there), the server follows that file. Separately, an
operator's PATCH that switches to DEFENSIVE while removing the stored
strategy overrides that mode happens to hide is loosening, and refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

from policystore import PolicyStore

SUFFIXES = ("", "-wal", "-shm")
CLI = [sys.executable, "-m", "policystore.cli.main"]
#: The overrides an admin sets (moderate's built-in values, written as the admin's own).
OVERRIDES = {"strategies.moderate.max_leverage": 3.0, "strategies.moderate.min_confidence": 0.55}
#: Both overrides removed: the strategy then takes the active mode's values.
REMOVALS = {"strategies.moderate.max_leverage": None, "strategies.moderate.min_confidence": None}


def newest(db: Path) -> tuple[int, int, bool]:
    """The newest version in the file at ``db``, its NORMAL max_positions and its kill switch, read on its own."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        version, positions, kill = conn.execute(
            "SELECT version, json_extract(document, '$.modes.NORMAL.max_positions'), "
            "json_extract(document, '$.emergency.active') FROM policy_versions ORDER BY version DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return int(version), int(positions), bool(kill)


def move_away(db: Path, folder: Path) -> None:
    """``mv policystore.db* folder/``, as an operator would."""
    folder.mkdir()
    for suffix in SUFFIXES:
        source = db.with_name(db.name + suffix)
        if source.exists():
            source.rename(folder / source.name)


def policystore(db: Path, *args: str) -> str:
    """Run the command line on the store at ``db`` as a subprocess; return what it printed."""
    result = subprocess.run(
        [*CLI, "--store", f"sqlite:///{db}", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == result.returncode, result.stderr
    return result.stdout


def wait_for(predicate: Callable[[], bool], deadline: float = 60.0) -> None:
    """Wait until ``predicate()`` holds; fail only after a generous deadline (not a timing test)."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            pytest.fail("the condition did not hold before the deadline")
        time.sleep(0.05)


def held(live: LiveServer) -> tuple[int, bool, bool]:
    """The server's version, its kill switch and its trading gate, read on the server's own loop."""

    async def read(store: PolicyStore) -> tuple[int, bool, bool]:
        return store.get("version"), store.get("emergency.active"), await store.can_open_new_trades()

    return live.call(read)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Where the store lives."""
    return tmp_path / "policystore.db"


@pytest.fixture
def live(db: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{db}").start()
    yield server
    server.stop()


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=10) as client:
        yield client


class TestStoreFileMovedAway:
    """``mv policystore.db* elsewhere/`` under a running server, then a new store at the path."""

    @pytest.mark.timeout(180)
    def test_server_degrades_refuses_writes_then_follows_the_new_file(
        self, live: LiveServer, http: httpx.Client, db: Path, tmp_path: Path
    ) -> None:
        """No ok while the file is gone, no write into the moved file, and the new file's kill switch followed."""
        admin, operator = live.headers("admin"), live.headers("operator")
        tuned = http.patch(
            "/v1/policy", json={"changes": {"modes.NORMAL.max_positions": 12}, "reason": "tune"}, headers=admin
        )
        assert 200 == tuned.status_code, tuned.text
        elsewhere = tmp_path / "elsewhere"

        move_away(db, elsewhere)

        # At once, before any poll has run: the write is refused, not acknowledged into the moved file.
        refused = http.patch(
            "/v1/policy", json={"changes": {"modes.NORMAL.max_positions": 7}, "reason": "after the move"}, headers=admin
        )
        halt = http.post("/v1/emergency", json={"active": True, "reason": "outage"}, headers=operator)
        assert (503, "StoreUnavailableError") == (refused.status_code, refused.json()["error"])
        assert (503, "StoreUnavailableError") == (halt.status_code, halt.json()["error"])
        assert "no longer at its path" in refused.json()["detail"]
        assert "ok" != http.get("/healthz").json()["status"]  # the probe itself finds the file gone
        wait_for(lambda: http.get("/healthz").json()["stale"])
        health = http.get("/healthz").json()
        assert ("degraded", False, "last_known_good") == (health["status"], health["store_reachable"], health["source"])
        assert (2, 12, False) == newest(elsewhere / db.name)
        assert not db.exists()  # nothing is created in its place

        # The server may already have followed the new file and halted it (it went back): version 1 or 2.
        assert re.search(r"is at version [12]\.", policystore(db, "init"))
        policystore(db, "emergency", "on", "--reason", "new file")

        def settled() -> bool:
            # The server may halt the new file itself (it went back) before or after the command
            # line writes; once the command has returned, no further version comes.
            health = http.get("/healthz").json()
            return health["status"] == "ok" and health["version"] == newest(db)[0] == held(live)[0]

        wait_for(settled)
        version, kill, can_trade = held(live)
        assert (True, False) == (kill, can_trade)
        health = http.get("/healthz").json()
        assert (True, False, "store", version) == (
            health["store_reachable"],
            health["stale"],
            health["source"],
            health["version"],
        ), health
        # Tokens live in the store: the new file has its own. A write through the server lands in it.
        token = json.loads(policystore(db, "--json", "token", "create", "--role", "admin", "--name", "ada-new"))[
            "token"
        ]
        written = http.patch(
            "/v1/policy",
            json={"changes": {"modes.NORMAL.max_positions": 9}, "reason": "into the new file"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert 200 == written.status_code, written.text
        assert (written.json()["version"], 9, True) == newest(db)
        assert (2, 12, False) == newest(elsewhere / db.name)


class TestOperatorLoosensOverridesThroughAMode:
    """Removing a stored tightening is loosening, whatever the active mode hides."""

    def policy(self, live: LiveServer, http: httpx.Client) -> dict[str, object]:
        """The version and the whole stored document, as a viewer reads them."""
        return http.get("/v1/policy", headers=live.headers("viewer")).json()

    def test_operator_switch_to_defensive_removing_overrides_is_403_and_changes_nothing(
        self, live: LiveServer, http: httpx.Client
    ) -> None:
        """The PATCH of the audit, as an operator after an admin set 3.0 and 0.55: refused, policy untouched."""
        set_by_admin = http.patch(
            "/v1/policy", json={"changes": OVERRIDES, "reason": "desk overrides"}, headers=live.headers("admin")
        )
        assert 200 == set_by_admin.status_code, set_by_admin.text
        before = self.policy(live, http)

        response = http.patch(
            "/v1/policy",
            json={"changes": {"active_mode": "DEFENSIVE", **REMOVALS}, "reason": "calm"},
            headers=live.headers("operator"),
        )

        assert 403 == response.status_code, response.text
        assert "PermissionDeniedError" == response.json()["error"]
        assert "strategies.moderate" in response.json()["detail"]
        after = self.policy(live, http)
        assert before == after
        moderate = after["policy"]["strategies"]["moderate"]
        assert ("NORMAL", 3.0, 0.55) == (
            after["policy"]["active_mode"],
            moderate["max_leverage"],
            moderate["min_confidence"],
        )

    def test_operator_removing_overrides_defensive_already_hides_is_403(
        self, live: LiveServer, http: httpx.Client
    ) -> None:
        """Under DEFENSIVE the effective values do not move (3.0, 0.6); the stored ones would: refused all the same."""
        http.patch("/v1/policy", json={"changes": OVERRIDES, "reason": "desk"}, headers=live.headers("admin"))
        switched = http.post("/v1/mode", json={"mode": "DEFENSIVE", "reason": "calm"}, headers=live.headers("operator"))
        assert 200 == switched.status_code, switched.text
        before = self.policy(live, http)

        for path in REMOVALS:
            response = http.patch(
                "/v1/policy", json={"changes": {path: None}, "reason": "tidy"}, headers=live.headers("operator")
            )
            assert 403 == response.status_code, response.text

        assert before == self.policy(live, http)
