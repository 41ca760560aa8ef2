"""What history, decisions and watch print: the fields that matter first, aligned columns, one line per change."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_support import COMMAND, Cli


def _record(**fields) -> dict:
    base = {
        "time": "2024-03-06T18:52:00+00:00",
        "symbol": "BTC",
        "strategy": "moderate",
        "side": "buy",
        "accepted": True,
        "reason": "accepted",
        "detail": "",
        "policy_version": 3,
        "mode": "NORMAL",
    }
    return base | fields


def _write_log(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


class TestHistory:
    """history lists the fields that matter first, and --full or --json shows them all."""

    def test_history_kill_switch_row_shows_active_and_reason_before_the_stamps(self, store: Cli) -> None:
        """The row of 'emergency on' names active and reason; the stamps come after, or are counted."""
        store("emergency", "on", "--reason", "exchange outage in the Asian session")

        row = store("history", "--limit", "1").stdout.splitlines()[2]

        assert "emergency.active: false -> true" in row
        assert "emergency.reason: null -> exchange outage in the Asian session" in row
        assert row.index("emergency.active") < row.index("emergency.reason")
        assert "emergency.activated_at" not in row.split("emergency.reason")[0]

    def test_history_row_lists_kill_switch_then_mode_then_limits(self, store: Cli) -> None:
        """One import that stops trading, switches the mode and tightens a limit lists them in that order."""
        store("import", "-", "--format", "json", "--reason", "all at once", stdin=_stopped_switched_tightened(store))

        row = store("history", "--limit", "1").stdout.splitlines()[2]
        full = store("history", "--full", "--limit", "1").stdout.splitlines()[1:]

        assert (
            "emergency.active: false -> true, emergency.reason: null -> halt, "
            "active_mode: NORMAL -> DEFENSIVE (+3 more)" == row.split("all at once", 1)[1].strip()
        )
        assert [
            "emergency.active",
            "emergency.reason",
            "active_mode",
            "modes.NORMAL.max_leverage",
            "emergency.activated_at",
            "emergency.activated_by",
        ] == [line.split(":")[0].strip() for line in full]

    def test_history_full_lists_every_change_on_its_own_line(self, store: Cli) -> None:
        """--full: the entry's head line, then each field, kill switch first and stamps last."""
        store("emergency", "on", "--reason", "outage")

        lines = store("history", "--full", "--limit", "1").stdout.splitlines()

        assert lines[0].startswith("version 2  ")
        assert lines[0].endswith("by local:" + lines[0].split("by local:")[1])
        assert [
            "emergency.active",
            "emergency.reason",
            "emergency.activated_at",
            "emergency.activated_by",
        ] == [line.split(":")[0].strip() for line in lines[1:]]

    def test_history_json_after_the_command_gives_every_change(self, store: Cli) -> None:
        """history --json (the option after the command) has the four changed fields."""
        store("emergency", "on", "--reason", "outage")

        entries = json.loads(store("history", "--limit", "1", "--json").stdout)

        assert 4 == len(entries[0]["changes"])


def _stopped_switched_tightened(store: Cli) -> str:
    document = store.json("export", "-", "--format", "json")
    document["emergency"] = {"active": True, "reason": "halt"}
    document["active_mode"] = "DEFENSIVE"
    document["modes"]["NORMAL"]["max_leverage"] = 4.0
    return json.dumps(document)


class TestDecisions:
    """decisions prints a table with a header, one outcome word, fitted columns and each refusal's detail."""

    def test_decisions_table_has_header_one_outcome_word_and_detail_lines(self, cli: Cli, tmp_path: Path) -> None:
        """Accepted, closed and refused rows; the refusal's detail on the line below it; no 'accepted accepted'."""
        _write_log(
            tmp_path / "d.jsonl",
            [
                _record(quantity=0.25),
                _record(reason="closed", side="sell", quantity=0.25),
                _record(accepted=False, reason="low_confidence", detail="confidence 0.41 is below 0.50"),
            ],
        )

        lines = cli("decisions", "--log", "d.jsonl").stdout.splitlines()

        assert [
            "time",
            "version",
            "mode",
            "symbol",
            "strategy",
            "side",
            "outcome",
            "reason",
            "quantity",
        ] == lines[0].split()
        assert set(lines[1]) == {"-", " "}
        assert ["accepted", "-", "0.25"] == lines[2].split()[-3:]
        assert ["closed", "-", "0.25"] == lines[3].split()[-3:]
        assert ["refused", "low_confidence", "-"] == lines[4].split()[-3:]
        assert "    confidence 0.41 is below 0.50" == lines[5]
        assert "accepted accepted" not in "\n".join(lines)

    def test_decisions_columns_stay_aligned_with_long_names(self, cli: Cli, tmp_path: Path) -> None:
        """A long strategy or mode name widens (or is cut with an ellipsis), never shifts the other columns."""
        long_strategy = "mean_reversion_intraday"
        very_long_mode = "HIGH_VOLATILITY_WITH_A_VERY_LONG_CUSTOM_NAME"
        _write_log(
            tmp_path / "d.jsonl",
            [_record(strategy=long_strategy, quantity=1.0), _record(mode=very_long_mode, quantity=2.0)],
        )

        lines = cli("decisions", "--log", "d.jsonl").stdout.splitlines()

        outcome_at = lines[0].index("outcome")
        assert {"accepted"} == {row[outcome_at : outcome_at + len("accepted")] for row in lines[2:]}
        assert long_strategy in lines[2]
        assert "\u2026" in lines[3]
        assert very_long_mode not in lines[3]

    def test_decisions_json_after_the_command_prints_the_records(self, cli: Cli, tmp_path: Path) -> None:
        """--json gives the records whole, detail included."""
        _write_log(tmp_path / "d.jsonl", [_record(accepted=False, reason="cooldown", detail="wait 12 s")])

        records = json.loads(cli("decisions", "--log", "d.jsonl", "--json").stdout)

        assert [("cooldown", "wait 12 s")] == [(r["reason"], r["detail"]) for r in records]


class TestWatchTypes:
    """watch --type asks for the kinds of event it prints."""

    def test_watch_type_emergency_prints_only_kill_switch_events(self, store: Cli) -> None:
        """A mode switch is not printed; the kill switch turning on is, once."""
        watcher = subprocess.Popen(
            [*COMMAND, "--store", store.url, "watch", "--json", "--type", "policy.emergency", "--count", "1"],
            env=store.env,
            cwd=store.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stderr is not None
            assert "Watching" in watcher.stderr.readline()
            store("mode", "DEFENSIVE", "--reason", "calm")
            store("emergency", "on", "--reason", "outage")
            out, _ = watcher.communicate(timeout=30)
        finally:
            watcher.kill()

        assert 0 == watcher.returncode
        events = [json.loads(line) for line in out.splitlines()]
        assert [(3, "policy.emergency")] == [(e["version"], e["type"]) for e in events]

    def test_watch_unknown_type_is_a_usage_error(self, store: Cli) -> None:
        """Only the event kinds are accepted."""
        result = store("watch", "--type", "policy.everything", code=2)

        assert "policy.emergency" in result.stderr
