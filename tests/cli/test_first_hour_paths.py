"""First-hour paths through the real command line: unknown removals refused, a huge variable ignored.

``set modes.TYPO_MODE null`` and ``set strategies.no_such null`` name paths that
do not exist: exit 3, and no version is written. A policy variable holding a
number no float can hold (``1`` and 400 zeros) never stops a command from
starting: it is reported as not used, and the answer comes from the store, or
from the built-in defaults when the store cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, clean_environment, one_sentence

HUGE = "1" + "0" * 400
VARIABLE = "POLICYSTORE_RISK__MAX_POSITIONS"


class TestRemovingWhatDoesNotExist:
    """null for a mode or strategy that is not there is an unknown path, not a removal."""

    @pytest.mark.parametrize("path", ["modes.TYPO_MODE", "strategies.no_such"])
    def test_set_unknown_mode_or_strategy_to_null_exits_3_and_writes_no_version(self, store: Cli, path: str) -> None:
        """One sentence naming the path and the nearest names; the store stays at version 1 with one entry."""
        result = store("set", path, "null", "--reason", "clean up", code=3)

        sentence = one_sentence(result.stderr)
        assert f"Unknown policy path '{path}'" in sentence
        assert "did you mean" in sentence
        assert "" == result.stdout
        assert 1 == store.version()
        assert [1] == [entry["version"] for entry in store.json("history")]

    def test_set_unknown_strategy_to_null_with_json_is_one_json_error(self, store: Cli) -> None:
        """With --json the refusal is one JSON object on stderr with exit code 3, and nothing is written."""
        result = store("--json", "set", "strategies.no_such", "null", "--reason", "clean up", code=3)

        error = json.loads(one_sentence(result.stderr))
        assert ("UnknownPathError", 3, "strategies.no_such") == (error["error"], error["exit_code"], error["path"])
        assert 1 == store.version()


class TestHugeVariable:
    """POLICYSTORE_RISK__MAX_POSITIONS=1 followed by 400 zeros: every command still starts."""

    def env_with_huge(self, cli: Cli) -> dict[str, str]:
        """The command line's environment with the variable set."""
        return {**cli.env, VARIABLE: HUGE}

    def test_get_and_explain_on_a_live_store_answer_from_the_store(self, store: Cli) -> None:
        """The store answers; the variable changes nothing and breaks nothing."""
        env = self.env_with_huge(store)

        assert "30" == store("get", "risk.max_positions", env=env).stdout.strip()
        explained = store("--json", "explain", "risk.max_positions", env=env)
        assert "0" * 60 not in explained.stdout + explained.stderr
        answer = json.loads(explained.stdout)
        assert (30, "store", 1, False) == (answer["value"], answer["source"], answer["version"], answer["stale"])

    def test_explain_on_an_unreadable_store_reports_the_variable_and_answers_the_default(self, tmp_path: Path) -> None:
        """No store to read and no copy: the default 30 answers, and the detail says the variable was not used."""
        db = tmp_path / "broken.db"
        db.write_bytes(b"not a database " * 512)
        cli = Cli(f"sqlite:///{db}", clean_environment(tmp_path), tmp_path)
        env = self.env_with_huge(cli)

        result = cli("--json", "explain", "risk.max_positions", env=env)

        answer = json.loads(result.stdout)
        assert (30, "default", True) == (answer["value"], answer["source"], answer["stale"])
        assert f"{VARIABLE}=" in answer["detail"]
        assert "was not used" in answer["detail"]
        assert "401 digits" in answer["detail"]
        assert "0" * 60 not in result.stdout + result.stderr  # the value is shortened, never printed whole
        assert "cannot be reached" in result.stderr  # the stale answer is announced
        assert "30" == cli("get", "risk.max_positions", env=env).stdout.strip()
