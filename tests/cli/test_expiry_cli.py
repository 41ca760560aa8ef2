"""``--for DURATION`` on the command line, run as a real subprocess against a SQLite store."""

from __future__ import annotations

import json
import time

import pytest
from cli_support import Cli


class TestForDuration:
    """A write command given --for makes an expiring change."""

    def test_set_for_two_hours_says_until_when_and_lists_it(self, store: Cli) -> None:
        """set --for 2h writes the value with its end; get overrides and explain name it."""
        done = store("set", "modes.NORMAL.max_leverage", "7", "--for", "2h", "--reason", "CPI print")
        assert "until " in done.stdout
        listed = store.json("get", "overrides")
        assert [(2, {"modes.NORMAL.max_leverage": 7.0}, {"modes.NORMAL.max_leverage": 5.0})] == [
            (c["version"], c["values"], c["replaced"]) for c in listed
        ]
        assert listed[0]["until"] in done.stdout
        explained = store.json("explain", "risk.max_leverage")
        assert (listed[0]["until"], 2) == (explained["expires_at"], explained["expiring_version"])
        assert "expires" in store("explain", "risk.max_leverage").stdout
        assert "returns to 5.0" in store("show").stdout

    @pytest.mark.parametrize(
        ("duration", "problem"),
        [("0s", "above 0"), ("-5m", "not a duration"), ("abc", "not a duration"), ("32d", "at most"), ("2", "not")],
    )
    def test_a_bad_duration_exits_3_and_writes_nothing(self, store: Cli, duration: str, problem: str) -> None:
        """Not a duration, not above 0, longer than 31 days: exit 3, one sentence naming --for, no version."""
        failed = store("set", "modes.NORMAL.max_leverage", "4", "--for", duration, "--reason", "x", code=3)
        assert "--for" in failed.stderr
        assert problem in failed.stderr
        assert 1 == store.version()

    def test_a_bad_duration_with_json_is_one_json_object(self, store: Cli) -> None:
        """With --json the refusal is one JSON object naming --for, exit code 3."""
        failed = store("--json", "mode", "DEFENSIVE", "--for", "soon", "--reason", "x", code=3)
        body = json.loads(failed.stderr)
        assert ("PolicyValidationError", ["--for"]) == (body["error"], [e["path"] for e in body["errors"]])

    def test_an_operator_cannot_loosen_for_an_hour(self, store: Cli) -> None:
        """Exit 6 for an operator's timed raise; an admin's goes through."""
        args = ("set", "modes.NORMAL.max_leverage", "8", "--for", "1h", "--reason", "CPI")
        store("--role", "operator", *args, code=6)
        assert 1 == store.version()
        store("--role", "admin", *args)
        assert 2 == store.version()

    def test_an_operator_may_switch_to_a_stricter_mode_for_a_while_but_not_halt_for_one(self, store: Cli) -> None:
        """mode DEFENSIVE --for 30m is a tightening; emergency on --for 10m needs an admin (its end turns it off)."""
        assert "until " in store("--role", "operator", "mode", "DEFENSIVE", "--for", "30m", "--reason", "calm").stdout
        failed = store("--role", "operator", "emergency", "on", "--for", "10m", "--reason", "news", code=6)
        assert "its end turns it off" in failed.stderr
        store("emergency", "on", "--for", "10m", "--reason", "news")
        assert "true" == store("get", "emergency.active").stdout.strip()

    def test_for_is_refused_where_no_write_can_take_it(self, store: Cli) -> None:
        """rollback and import have no --for; mode without NAME writes nothing: usage errors, nothing written."""
        store("rollback", "1", "--for", "1h", "--reason", "x", code=2)
        assert "--for" in store("mode", "--for", "1h", code=2).stderr
        assert 1 == store.version()

    def test_the_end_is_read_by_the_next_command_and_recorded_by_the_next_write(self, store: Cli) -> None:
        """After a 1 s lifetime, get answers the earlier value; the next write records the return, then itself."""
        store("set", "modes.NORMAL.max_leverage", "7", "--for", "1s", "--reason", "a second")
        deadline = time.monotonic() + 30
        while store("get", "risk.max_leverage").stdout.strip() != "5.0" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "5.0" == store("get", "risk.max_leverage").stdout.strip()
        assert 2 == store.version()  # reads write nothing
        store("set", "modes.NORMAL.max_positions", "20", "--reason", "fewer")
        entries = store.json("history", "--limit", "2")
        assert [(4, "modes.NORMAL.max_positions"), (3, "modes.NORMAL.max_leverage")] == [
            (e["version"], e["changes"][0]["path"]) for e in entries
        ]
        assert "policystore" == entries[1]["by"]
