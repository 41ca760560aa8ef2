"""--store, --json and --role before or after the command; with --json, failures are JSON on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, clean_environment, one_sentence


class TestOptionPlacement:
    """The global options work after the command as well as before it."""

    def test_json_after_the_command_prints_json(self, store: Cli) -> None:
        """show --json is the same document as --json show."""
        after = json.loads(store("show", "--json").stdout)
        before = json.loads(store("--json", "show").stdout)

        assert before == after
        assert 1 == after["version"]

    def test_store_after_the_command_selects_the_store(self, store: Cli, tmp_path: Path) -> None:
        """get --store URL reads that store, whatever came before the command."""
        other = Cli(f"sqlite:///{tmp_path}/other.db", clean_environment(tmp_path), tmp_path)
        other("init")
        other("set", "modes.NORMAL.max_leverage", "3", "--reason", "tighter")

        result = store.raw("--store", store.url, "get", "risk.max_leverage", "--store", other.url)

        assert "3.0" == result.stdout.strip()

    def test_role_after_the_command_applies_to_the_write(self, store: Cli) -> None:
        """mode NAME --role viewer is refused as a viewer's write (exit 6)."""
        result = store("mode", "DEFENSIVE", "--reason", "calm", "--role", "viewer", code=6)

        assert "viewer" in one_sentence(result.stderr)
        assert 1 == store.version()

    def test_json_after_token_subcommand_prints_json(self, store: Cli) -> None:
        """token list --json, inside the token group, is JSON too."""
        store("token", "create", "--role", "viewer", "--name", "vera")

        rows = json.loads(store("token", "list", "--json").stdout)

        assert ["vera"] == [r["name"] for r in rows]

    def test_set_negative_value_still_parses_with_json_after(self, store: Cli) -> None:
        """set keeps taking -1 as a value while --json after it is the option."""
        result = store("set", "strategies.moderate.cooldown_seconds", "-1", "--reason", "x", "--json", code=3)

        assert "cooldown_seconds" in json.loads(one_sentence(result.stderr))["detail"]


class TestJsonErrors:
    """With --json, a failure is one JSON object on stderr: class, sentence, status and facts; stdout stays empty."""

    def test_validation_error_lists_the_failed_fields(self, store: Cli) -> None:
        """A value above a hard limit: PolicyValidationError, exit 3, the field and why."""
        result = store("set", "modes.NORMAL.max_leverage", "50", "--reason", "too much", "--json", code=3)

        error = json.loads(one_sentence(result.stderr))
        assert ("PolicyValidationError", 3) == (error["error"], error["exit_code"])
        assert "hard_limits.max_leverage" in error["detail"]
        assert ["modes.NORMAL.max_leverage"] == [e["path"] for e in error["errors"]]
        assert "" == result.stdout

    def test_version_conflict_carries_both_versions(self, store: Cli) -> None:
        """--expect-version 7 on a store at 1: exit 4 with expected and current versions."""
        result = store("--json", "mode", "DEFENSIVE", "--reason", "x", "--expect-version", "7", code=4)

        error = json.loads(one_sentence(result.stderr))
        assert ("VersionConflictError", 4, 7, 1) == (
            error["error"],
            error["exit_code"],
            error["expected_version"],
            error["current_version"],
        )

    def test_unknown_path_carries_the_suggestions(self, store: Cli) -> None:
        """get risk.max_levrage --json: exit 3, the path and the nearest paths."""
        result = store("get", "risk.max_levrage", "--json", code=3)

        error = json.loads(one_sentence(result.stderr))
        assert ("UnknownPathError", "risk.max_levrage") == (error["error"], error["path"])
        assert "risk.max_leverage" in error["suggestions"]

    @pytest.mark.parametrize(
        "args",
        [("--json", "no-such-command"), ("set", "--json"), ("--json", "--role", "superuser", "show")],
        ids=["unknown command", "missing argument", "bad global option"],
    )
    def test_usage_error_is_json_with_status_2(self, store: Cli, args) -> None:
        """click's own refusals are JSON too, wherever --json stands."""
        result = store.raw(*args, code=2)

        error = json.loads(one_sentence(result.stderr))
        assert 2 == error["exit_code"]
        assert error["detail"]

    def test_without_json_a_failure_stays_one_plain_sentence(self, store: Cli) -> None:
        """The text form is unchanged: one sentence, no JSON."""
        result = store("get", "risk.max_levrage", code=3)

        assert one_sentence(result.stderr).startswith("Unknown policy path 'risk.max_levrage'")
