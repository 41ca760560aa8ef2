"""The ``policystore`` command line, run as a real subprocess against a SQLite store of its own."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from cli_support import COMMAND, Cli, clean_environment, one_sentence


@pytest.fixture
def cli(cli: Cli) -> Cli:
    """The command line bound to a SQLite store that exists: every command but init needs one."""
    cli("init")
    return cli


_one_sentence = one_sentence


class TestReadCommands:
    """show, get, explain, paths and mode without a name only read."""

    def test_show_new_store_lists_every_mode_with_the_active_one_marked(self, cli: Cli) -> None:
        """The table has a column per mode, the active one starred, and the kill switch state."""
        out = cli("show").stdout
        assert "NORMAL*" in out
        assert "AGGRESSIVE_SMALL_ACCOUNT" in out
        assert "DEFENSIVE" in out
        assert "kill switch  OFF" in out
        document = cli.json("show")
        assert isinstance(document, dict)
        assert (1, "NORMAL") == (document["version"], document["active_mode"])
        assert 5.0 == document["modes"]["NORMAL"]["max_leverage"]

    def test_get_known_path_prints_the_value(self, cli: Cli) -> None:
        """get prints the plain value, and with --json a JSON value."""
        assert "5.0" == cli("get", "risk.max_leverage").stdout.strip()
        assert "true" == cli("get", "ai.enable_rl").stdout.strip()
        assert 0.015 == cli.json("get", "risk.max_risk_pct_per_trade")

    def test_get_unknown_path_exits_3_naming_the_nearest_paths(self, cli: Cli) -> None:
        """A misspelt path is an error sentence that suggests the right one."""
        result = cli("get", "risk.max_levrage", code=3)
        assert "" == result.stdout
        sentence = _one_sentence(result.stderr)
        assert "risk.max_levrage" in sentence
        assert "'risk.max_leverage'" in sentence

    def test_explain_live_store_reports_source_version_and_freshness(self, cli: Cli) -> None:
        """explain --json is the explanation's dict: the live store at version 1, not stale."""
        explained = cli.json("explain", "modes.DEFENSIVE.max_leverage")
        assert isinstance(explained, dict)
        assert ("modes.DEFENSIVE.max_leverage", 3.0, "store", 1, False) == (
            explained["path"],
            explained["value"],
            explained["source"],
            explained["version"],
            explained["stale"],
        )
        assert "source   store" in cli("explain", "risk.max_leverage").stdout

    def test_paths_lists_every_valid_path_one_per_line(self, cli: Cli) -> None:
        """The plain list and the JSON list agree and hold the contract's paths."""
        lines = cli("paths").stdout.split()
        listed = cli.json("paths")
        assert listed == lines
        for path in (
            "risk.max_leverage",
            "ai.enable_rl",
            "modes.NORMAL.max_positions",
            "emergency.active",
            "hard_limits.max_leverage",
            "strategies.conservative.cooldown_seconds",
            "active_mode",
            "version",
        ):
            assert path in lines

    def test_mode_without_name_prints_the_active_mode(self, cli: Cli) -> None:
        """mode alone only reads, so it needs no reason."""
        assert "NORMAL" == cli("mode").stdout.strip()


class TestWriteCommands:
    """set, mode NAME and emergency validate, check roles and versions, and record who and why."""

    def test_set_with_reason_writes_a_new_version_recorded_in_history(self, cli: Cli) -> None:
        """The value changes, the version grows by one, and history names the author and reason."""
        out = cli("set", "modes.NORMAL.max_leverage", "4", "--reason", "tighter", "--by", "ops:alice").stdout
        assert "version 2" in out
        assert 4.0 == cli.json("get", "risk.max_leverage")
        newest = cli.json("history", "--limit", "1")
        assert isinstance(newest, list)
        assert (2, "ops:alice", "tighter") == (newest[0]["version"], newest[0]["by"], newest[0]["reason"])
        assert [{"path": "modes.NORMAL.max_leverage", "old": 5.0, "new": 4.0}] == newest[0]["changes"]

    def test_set_yaml_values_are_parsed_to_booleans_and_mappings(self, cli: Cli) -> None:
        """VALUE is YAML: false is a boolean and {...} a whole new strategy."""
        cli("set", "modes.NORMAL.enable_rl", "false", "--reason", "rl off")
        cli("set", "strategies.scalper", "{cooldown_seconds: 15, max_leverage: 2}", "--reason", "new strategy")
        assert False is cli.json("get", "ai.enable_rl")
        assert 15 == cli.json("get", "strategies.scalper.cooldown_seconds")

    def test_set_without_reason_exits_2_and_changes_nothing(self, cli: Cli) -> None:
        """A write without --reason is a usage error."""
        result = cli("set", "modes.NORMAL.max_leverage", "4", code=2)
        assert "--reason" in result.stderr
        assert 1 == cli.version()

    def test_set_value_above_hard_limit_exits_3_and_changes_nothing(self, cli: Cli) -> None:
        """The store's validation error is the one sentence on stderr."""
        result = cli("set", "modes.NORMAL.max_leverage", "50", "--reason", "too much", code=3)
        assert "hard_limits.max_leverage" in _one_sentence(result.stderr)
        assert 1 == cli.version()

    def test_set_with_outdated_expect_version_exits_4(self, cli: Cli) -> None:
        """Compare-and-set: a change based on version 1 is refused once the store is at 2."""
        cli("set", "modes.NORMAL.max_positions", "20", "--reason", "fewer", "--expect-version", "1")
        result = cli("set", "modes.NORMAL.max_positions", "10", "--reason", "fewer", "--expect-version", "1", code=4)
        assert "version 2" in _one_sentence(result.stderr)
        assert 20 == cli.json("get", "risk.max_positions")

    def test_viewer_role_write_exits_6_and_changes_nothing(self, cli: Cli) -> None:
        """A viewer may read but not write."""
        result = cli("--role", "viewer", "mode", "DEFENSIVE", "--reason", "calm down", code=6)
        assert "viewer" in _one_sentence(result.stderr)
        assert "NORMAL" == cli("mode").stdout.strip()

    def test_mode_name_switches_the_active_mode_and_needs_a_reason(self, cli: Cli) -> None:
        """An operator may lower risk; the switch without --reason is a usage error."""
        cli("mode", "DEFENSIVE", code=2)
        cli("--role", "operator", "mode", "DEFENSIVE", "--reason", "volatility")
        assert {"active_mode": "DEFENSIVE", "version": 2} == cli.json("mode")
        assert 3.0 == cli.json("get", "risk.max_leverage")

    def test_emergency_on_by_operator_off_only_by_admin(self, cli: Cli) -> None:
        """The kill switch: an operator turns it on, only an admin turns it off."""
        cli("emergency", "on", code=2)
        cli("--role", "operator", "emergency", "on", "--reason", "flash crash")
        assert "kill switch  ON" in cli("show").stdout
        cli("--role", "operator", "emergency", "off", "--reason", "calm", code=6)
        document = cli.json("emergency", "off", "--reason", "calm again")
        assert isinstance(document, dict)
        assert (False, 3) == (document["emergency"]["active"], document["version"])


class TestAuditCommands:
    """history, diff and rollback read and restore the audit trail."""

    def test_history_lists_entries_newest_first(self, cli: Cli) -> None:
        """The JSON entries run from the newest version down; the table has the named columns."""
        cli("mode", "DEFENSIVE", "--reason", "first")
        cli("set", "modes.NORMAL.scaling_factor", "0.9", "--reason", "second")
        entries = cli.json("history")
        assert isinstance(entries, list)
        assert [3, 2, 1] == [e["version"] for e in entries]
        assert ["second", "first", "initial policy"] == [e["reason"] for e in entries]
        table = cli("history", "--limit", "2").stdout.splitlines()
        assert ["version", "at", "(UTC)", "by", "reason", "changes"] == table[0].split()
        assert 4 == len(table)  # header, rule, two entries

    def test_diff_then_rollback_restores_the_old_content(self, cli: Cli) -> None:
        """diff names the changed field; rollback writes a new version equal to the old one."""
        cli("set", "modes.NORMAL.max_leverage", "4", "--reason", "tighter")
        assert [{"path": "modes.NORMAL.max_leverage", "old": 5.0, "new": 4.0}] == cli.json("diff", "1", "2")
        assert "modes.NORMAL.max_leverage" in cli("diff", "1").stdout
        assert "version 3" in cli("rollback", "1", "--reason", "undo").stdout
        assert 5.0 == cli.json("get", "risk.max_leverage")
        assert [] == cli.json("diff", "1")
        assert "No differences" in cli("diff", "1", "3").stdout

    def test_diff_unknown_version_exits_3(self, cli: Cli) -> None:
        """A version that never existed is an invalid value."""
        assert "version 9" in _one_sentence(cli("diff", "9", code=3).stderr)


class TestPresets:
    """presets lists the ready modes and adds one on request."""

    def test_presets_lists_three_with_values_and_reasons(self, cli: Cli) -> None:
        """Each preset shows its values and why they were chosen."""
        listed = cli.json("presets")
        assert isinstance(listed, dict)
        assert ["BEAR_MARKET", "BULL_MARKET", "HIGH_VOLATILITY"] == sorted(listed)
        assert 6.0 == listed["BULL_MARKET"]["values"]["max_leverage"]
        assert listed["HIGH_VOLATILITY"]["reason"].startswith("HIGH_VOLATILITY:")
        assert "max_leverage" in cli("presets", "BEAR_MARKET").stdout

    def test_presets_add_creates_the_mode_with_the_preset_values(self, cli: Cli) -> None:
        """--add writes the preset as a mode; without --reason it is a usage error."""
        cli("presets", "BULL_MARKET", "--add", code=2)
        cli("presets", "BULL_MARKET", "--add", "--reason", "trending market")
        assert 6.0 == cli.json("get", "modes.BULL_MARKET.max_leverage")
        assert 2 == cli.version()


class TestExportImport:
    """export writes the whole policy; import validates it and writes one version."""

    def test_export_then_import_round_trips_an_edited_policy(self, cli: Cli, tmp_path: Path) -> None:
        """An exported YAML file, edited and imported, becomes the next version."""
        cli("export", "policy.yaml")
        document = yaml.safe_load((tmp_path / "policy.yaml").read_text())
        document["modes"]["NORMAL"]["max_positions"] = 12
        (tmp_path / "edited.json").write_text(json.dumps(document))
        cli("import", "edited.json", "--reason", "restore from file")
        exported = json.loads(cli("export", "-", "--format", "json").stdout)
        assert (2, 12) == (exported["version"], exported["modes"]["NORMAL"]["max_positions"])
        assert exported["modes"]["DEFENSIVE"] == document["modes"]["DEFENSIVE"]

    def test_import_invalid_file_exits_3_and_changes_nothing(self, cli: Cli, tmp_path: Path) -> None:
        """Broken YAML and a document that breaks a hard limit are both refused before writing."""
        (tmp_path / "broken.yaml").write_text("modes: [\n")
        assert "broken.yaml" in _one_sentence(cli("import", "broken.yaml", "--reason", "x", code=3).stderr)
        document = yaml.safe_load(cli("export", "-").stdout)
        document["modes"]["NORMAL"]["max_leverage"] = 99
        (tmp_path / "risky.yaml").write_text(yaml.safe_dump(document))
        stderr = cli("import", "risky.yaml", "--reason", "x", code=3).stderr
        assert "modes.NORMAL.max_leverage" in _one_sentence(stderr)
        assert 1 == cli.version()

    def test_export_unknown_extension_exits_2(self, cli: Cli) -> None:
        """The format comes from the extension or --format, never a guess."""
        assert "--format" in cli("export", "policy.txt", code=2).stderr

    @pytest.mark.parametrize("target", ["missing-folder/policy.yaml", "a-file/policy.yaml"])
    def test_export_to_unwritable_path_exits_2_naming_it(self, cli: Cli, tmp_path: Path, target: str) -> None:
        """A path whose folder is missing or is a file is a usage error naming the path; the store is untouched."""
        cli("init")
        (tmp_path / "a-file").write_text("")

        stderr = cli("export", target, code=2).stderr

        assert f"Error: Cannot write {target}: " in stderr
        assert not (tmp_path / "missing-folder").exists()
        assert 1 == cli.version()

    def test_import_non_utf8_file_exits_3_and_changes_nothing(self, cli: Cli, tmp_path: Path) -> None:
        """A file that is not UTF-8 text is an invalid value, said in one sentence naming the file."""
        cli("init")
        (tmp_path / "latin1.yaml").write_bytes("reason: d\u00e9fensif\n".encode("latin-1"))

        stderr = cli("import", "latin1.yaml", "--reason", "x", code=3).stderr

        assert "latin1.yaml is not UTF-8 text" in _one_sentence(stderr)
        assert 1 == cli.version()

    def test_import_file_the_os_cannot_read_exits_2_and_changes_nothing(
        self, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A path that exists but cannot be opened (a Unix socket: refused even to root) is a usage error."""
        monkeypatch.chdir(tmp_path)  # a relative socket path stays under the AF_UNIX length limit
        cli("init")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind("socket.yaml")

            stderr = cli("import", "socket.yaml", "--reason", "x", code=2).stderr

        assert "Error: Cannot read socket.yaml: " in stderr
        assert 1 == cli.version()


class TestTokenNames:
    """Token names become history authors, so they are held to a plain alphabet."""

    @pytest.mark.parametrize("name", ["a:b", "local:alice", "two words", "tab\tname", "line\n"])
    def test_token_create_name_with_colon_space_or_control_exits_3(self, cli: Cli, name: str) -> None:
        """A name with ':' (which marks non-token authors such as local:USER), whitespace or a control
        character is refused in one sentence, and no token is stored."""
        stderr = cli("token", "create", "--role", "viewer", "--name", name, code=3).stderr

        sentence = _one_sentence(stderr)
        assert repr(name) in sentence
        assert "':' is reserved" in sentence
        assert [] == cli.json("token", "list")

    def test_token_create_plain_name_succeeds(self, cli: Cli) -> None:
        """Letters, digits and _ . @ - are fine."""
        cli("token", "create", "--role", "viewer", "--name", "ops.bot-1@desk_a")

        assert ["ops.bot-1@desk_a"] == [row["name"] for row in cli.json("token", "list")]


class TestUnreachableStore:
    """A store that cannot be opened: writes fail with 5, reads answer stale with a warning."""

    @pytest.fixture
    def down(self, tmp_path: Path) -> Cli:
        """A SQLite store whose file is there but cannot be opened: a folder stands in its place."""
        (tmp_path / "unopenable.db").mkdir()
        return Cli(f"sqlite:///{tmp_path}/unopenable.db", clean_environment(tmp_path), tmp_path)

    def test_write_unreachable_store_exits_5(self, down: Cli) -> None:
        """Nothing can be written, and the sentence says the store cannot be reached."""
        result = down("set", "modes.NORMAL.max_leverage", "4", "--reason", "x", code=5)
        assert "cannot be reached" in _one_sentence(result.stderr)
        assert "cannot be reached" in _one_sentence(down("init", code=5).stderr)

    def test_read_unreachable_store_answers_stale_with_one_warning(self, down: Cli) -> None:
        """get answers from the fallback chain (here an environment variable) and warns once."""
        down.env["POLICYSTORE_RISK__MAX_LEVERAGE"] = "2.5"
        result = down("--json", "explain", "risk.max_leverage")
        assert _one_sentence(result.stderr).startswith("warning: ")
        explained = json.loads(result.stdout)
        assert (2.5, "environment", True) == (explained["value"], explained["source"], explained["stale"])

    def test_read_after_store_is_lost_answers_from_last_known_good(self, cli: Cli, tmp_path: Path) -> None:
        """The last version this machine saw answers, marked stale; history needs the live store."""
        cli("set", "modes.NORMAL.max_leverage", "4", "--reason", "tighter")
        (tmp_path / "policy.db").rename(tmp_path / "moved.db")
        (tmp_path / "policy.db").mkdir()  # a folder where the database was: SQLite cannot open it
        result = cli("get", "risk.max_leverage")
        assert "4.0" == result.stdout.strip()
        assert "last-known-good copy (version 2)" in _one_sentence(result.stderr)
        assert "source       last_known_good (STALE" in cli("show").stdout
        cli("history", code=5)


class TestWatch:
    """watch prints each change event as another process makes it."""

    def test_watch_count_prints_one_line_per_change_of_a_concurrent_writer_as_json(self, cli: Cli) -> None:
        """Two changes (one set, one mode switch) are two lines, each its policy.updated event; then watch exits."""
        watcher = subprocess.Popen(
            [*COMMAND, "--store", cli.url, "--json", "watch", "--count", "2"],
            env=cli.env,
            cwd=cli.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stderr is not None
            assert "Watching" in watcher.stderr.readline()  # subscribed: no later change is missed
            cli("set", "modes.NORMAL.max_positions", "25", "--reason", "fewer")
            cli("mode", "DEFENSIVE", "--reason", "calm")
            out, _ = watcher.communicate(timeout=30)
        finally:
            watcher.kill()
        assert 0 == watcher.returncode
        events = [json.loads(line) for line in out.splitlines()]
        assert [(2, "policy.updated"), (3, "policy.updated")] == [(e["version"], e["type"]) for e in events]
        assert [{"path": "active_mode", "old": "NORMAL", "new": "DEFENSIVE"}] == events[1]["changes"]

    def test_watch_interrupted_stops_cleanly_with_status_0(self, cli: Cli) -> None:
        """Ctrl-C is the normal way to end watch: no traceback, exit status 0."""
        watcher = subprocess.Popen(
            [*COMMAND, "--store", cli.url, "watch"],
            env=cli.env,
            cwd=cli.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stderr is not None
            assert "Watching" in watcher.stderr.readline()
            watcher.send_signal(signal.SIGINT)
            out, err = watcher.communicate(timeout=30)
        finally:
            watcher.kill()
        assert (0, "", "Stopped.") == (watcher.returncode, out, err.strip())


class TestHelp:
    """The help lists every command, including those loaded on first use."""

    def test_help_lists_core_and_lazy_commands(self, cli: Cli) -> None:
        """--help names each command of the contract and the exit statuses."""
        out = cli("--help").stdout
        for name in (
            "init",
            "show",
            "get",
            "explain",
            "paths",
            "mode",
            "set",
            "emergency",
            "history",
            "diff",
            "rollback",
            "watch",
            "presets",
            "export",
            "import",
            "serve",
            "token",
            "decisions",
            "replay",
        ):
            assert f"  {name} " in out
        assert "6 permission denied" in out
