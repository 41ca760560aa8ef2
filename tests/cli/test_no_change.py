"""Writes that change nothing write nothing; presets keep edited modes; clamped strategy overrides are told."""

from __future__ import annotations

import json

import pytest
from cli_support import Cli, one_sentence


def _history_versions(cli: Cli) -> list[int]:
    return [e["version"] for e in cli.json("history")]


class TestNoChange:
    """A write whose result equals the current policy says "No change", exits 0 and makes no version."""

    @pytest.mark.parametrize(
        ("args", "said"),
        [
            (("mode", "NORMAL", "--reason", "again"), "mode NORMAL is already active (version 1)"),
            (("emergency", "off", "--reason", "calm"), "the kill switch is already OFF (version 1)"),
            (
                ("--role", "operator", "emergency", "off", "--reason", "calm"),
                "the kill switch is already OFF (version 1)",
            ),
            (
                ("set", "modes.NORMAL.max_leverage", "5.0", "--reason", "same"),
                "modes.NORMAL.max_leverage is already 5.0 (version 1)",
            ),
            (("rollback", "1", "--reason", "same"), "version 1 already has the content of version 1"),
        ],
        ids=["mode", "emergency off", "operator emergency off", "set", "rollback"],
    )
    def test_no_op_write_says_no_change_and_writes_no_version(self, store: Cli, args, said) -> None:
        """The sentence says what is already so; history still ends at version 1."""
        result = store(*args)

        assert f"No change: {said}." == result.stdout.strip()
        assert [1] == _history_versions(store)

    def test_mode_already_active_after_a_switch_is_no_change(self, store: Cli) -> None:
        """The second identical switch is the no-op; the first made version 2."""
        store("mode", "DEFENSIVE", "--reason", "calm")

        again = store("mode", "DEFENSIVE", "--reason", "calm")

        assert again.stdout.startswith("No change: mode DEFENSIVE is already active")
        assert [2, 1] == _history_versions(store)

    def test_reimporting_the_current_export_is_no_change(self, store: Cli) -> None:
        """An export imported back (record, stamps and all) equals the policy: nothing is written."""
        store("emergency", "on", "--reason", "outage")
        store("export", "policy.yaml")

        result = store("import", "policy.yaml", "--reason", "restore")

        assert "No change: policy.yaml holds the policy of version 2." == result.stdout.strip()
        assert [2, 1] == _history_versions(store)

    def test_no_change_with_json_reports_changed_false_and_the_version(self, store: Cli) -> None:
        """--json prints the document with changed: false, where a write that wrote says true."""
        unchanged = store.json("mode", "NORMAL", "--reason", "again")
        changed = store.json("mode", "DEFENSIVE", "--reason", "calm")

        assert (False, 1) == (unchanged["changed"], unchanged["version"])
        assert (True, 2) == (changed["changed"], changed["version"])

    def test_viewer_no_op_write_is_still_refused(self, store: Cli) -> None:
        """Authority comes first: a viewer may not write, even what changes nothing."""
        result = store("--role", "viewer", "mode", "NORMAL", "--reason", "again", code=6)

        assert "viewer" in one_sentence(result.stderr)


class TestPresetsAdd:
    """presets NAME --add adds the preset as a mode, and never silently overwrites an edited one."""

    def test_add_over_an_edited_mode_exits_3_naming_it_and_keeps_the_edit(self, store: Cli) -> None:
        """The mode and the fields that differ are named; the edited value stays."""
        store("presets", "BULL_MARKET", "--add", "--reason", "trend")
        store("set", "modes.BULL_MARKET.max_leverage", "4", "--reason", "tamer")

        result = store("presets", "BULL_MARKET", "--add", "--reason", "again", code=3)

        sentence = one_sentence(result.stderr)
        assert "modes.BULL_MARKET" in sentence
        assert "max_leverage" in sentence
        assert "--replace" in sentence
        assert 4.0 == store.json("get", "modes.BULL_MARKET.max_leverage")
        assert 3 == store.version()

    def test_add_with_replace_overwrites_the_edited_mode(self, store: Cli) -> None:
        """--replace restores the preset's values as a new version."""
        store("presets", "BULL_MARKET", "--add", "--reason", "trend")
        store("set", "modes.BULL_MARKET.max_leverage", "4", "--reason", "tamer")

        store("presets", "BULL_MARKET", "--add", "--replace", "--reason", "back to the preset")

        assert (6.0, 4) == (store.json("get", "modes.BULL_MARKET.max_leverage"), store.version())

    def test_re_adding_an_unchanged_preset_is_no_change(self, store: Cli) -> None:
        """The same values again write nothing."""
        store("presets", "BULL_MARKET", "--add", "--reason", "trend")

        result = store("presets", "BULL_MARKET", "--add", "--reason", "trend again")

        assert result.stdout.startswith("No change: mode BULL_MARKET already holds the values of preset BULL_MARKET")
        assert 2 == store.version()


class TestClampedOverride:
    """A strategy override looser than the active mode is stored, and set says the mode's value applies."""

    def test_set_looser_strategy_override_prints_the_clamp_note(self, store: Cli) -> None:
        """moderate at leverage 8 under NORMAL (5.0): stored as 8, read as 5, and the note says why."""
        result = store("set", "strategies.moderate.max_leverage", "8", "--reason", "room to grow")

        notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
        assert 1 == len(notes), result.stderr
        assert notes[0].startswith("note: strategies.moderate.max_leverage: ")
        assert all(fact in notes[0] for fact in ("8.0", "NORMAL", "5.0")), notes[0]
        assert 5.0 == store.json("get", "strategies.moderate.max_leverage")
        assert 8.0 == store.json("export", "-", "--format", "json")["strategies"]["moderate"]["max_leverage"]

    def test_set_looser_override_with_json_lists_the_note(self, store: Cli) -> None:
        """--json carries the notes beside the document."""
        document = store.json("set", "strategies.moderate.max_leverage", "8", "--reason", "room to grow")

        assert 1 == len(document["notes"])
        assert document["notes"][0].startswith("strategies.moderate.max_leverage: ")

    def test_set_stricter_strategy_override_prints_no_note(self, store: Cli) -> None:
        """An override inside the mode binds as written: nothing to say."""
        result = store("set", "strategies.moderate.max_leverage", "2", "--reason", "tighter")

        assert "note:" not in result.stderr
        assert 2.0 == json.loads(store("--json", "get", "strategies.moderate.max_leverage").stdout)
