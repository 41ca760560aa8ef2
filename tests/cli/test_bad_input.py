"""Hostile and broken input to import and set: refused with exit 3 in one short sentence, nothing written.

Each run may use at most 1 GiB of address space, so input that makes a parser
or a validator run away fails at once instead of taking the machine with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, one_sentence

#: Address space each command may use here; policystore needs a small part of it.
MEMORY_LIMIT = 1024**3
#: A sentence that quotes no more than a short piece of what it refuses.
SHORT = 400


@pytest.fixture
def guarded(store: Cli) -> Cli:
    """The command line on an existing store, each run limited to MEMORY_LIMIT."""
    store.memory_limit = MEMORY_LIMIT
    return store


def _alias_bomb() -> str:
    """Nine levels of nine aliases each: 324 bytes that expand to 9**9 (387 million) strings."""
    lines = ["a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _refused(cli: Cli, *args: str, stdin: str | None = None) -> str:
    result = cli(*args, code=3, stdin=stdin)
    sentence = one_sentence(result.stderr)
    assert len(sentence) < SHORT, sentence
    assert "" == result.stdout
    return sentence


class TestImportBounds:
    """import measures a document before building it."""

    def test_import_alias_bomb_exits_3_naming_the_expansion(self, guarded: Cli, tmp_path: Path) -> None:
        """The few hundred bytes are refused for what their aliases would expand to; the store is untouched."""
        (tmp_path / "bomb.yaml").write_text(_alias_bomb())

        sentence = _refused(guarded, "import", "bomb.yaml", "--reason", "x")

        assert "bomb.yaml" in sentence
        assert "aliases" in sentence
        assert 1 == guarded.version()

    @pytest.mark.parametrize(
        ("name", "text"),
        [("deep.json", "[" * 100_000 + "]" * 100_000), ("deep.yaml", "a: " + "[" * 100_000 + "]" * 100_000)],
    )
    def test_import_deeply_nested_document_exits_3_not_recursion_error(
        self, guarded: Cli, tmp_path: Path, name: str, text: str
    ) -> None:
        """100,000 levels of nesting are refused by depth, before any recursive parser sees them."""
        (tmp_path / name).write_text(text)

        sentence = _refused(guarded, "import", name, "--reason", "x")

        assert "levels deep" in sentence
        assert "RecursionError" not in sentence
        assert 1 == guarded.version()

    def test_import_document_nested_as_deep_as_a_policy_is_accepted(self, guarded: Cli) -> None:
        """The bound leaves room: an export (three levels and more) imports, as a no-op."""
        guarded("export", "policy.json")

        assert guarded("import", "policy.json", "--reason", "same").stdout.startswith("No change:")

    def test_import_file_over_1_mib_exits_3(self, guarded: Cli, tmp_path: Path) -> None:
        """A policy is a few kilobytes; a file over 1 MiB is refused unread."""
        (tmp_path / "huge.yaml").write_text("reason: " + "x" * (1024 * 1024) + "\n")

        assert "huge.yaml is larger than" in _refused(guarded, "import", "huge.yaml", "--reason", "x")

    @pytest.mark.parametrize("kind", ["json", "yaml"])
    def test_import_integer_beyond_pythons_digit_limit_exits_3(self, guarded: Cli, tmp_path: Path, kind: str) -> None:
        """5,000 digits: more than int() reads by default; refused as a value, not a traceback."""
        number = "9" * 5_000
        text = f'{{"hard_limits": {{"max_positions": {number}}}}}' if kind == "json" else f"a: {number}\n"
        (tmp_path / f"digits.{kind}").write_text(text)

        sentence = _refused(guarded, "import", f"digits.{kind}", "--reason", "x")

        assert "too many digits" in sentence
        assert number not in sentence


class TestSetBounds:
    """set reads VALUE as YAML within the same bounds."""

    def test_set_alias_bomb_value_exits_3(self, guarded: Cli) -> None:
        """The bomb as a flow mapping value is refused by its expansion."""
        value = "{" + _alias_bomb().strip().replace("\n", ", ") + "}"

        sentence = _refused(guarded, "set", "modes.NORMAL", value, "--reason", "x")

        assert "aliases" in sentence
        assert 1 == guarded.version()

    def test_set_deeply_nested_value_exits_3(self, guarded: Cli) -> None:
        """5,000 open brackets: refused by depth."""
        assert "levels deep" in _refused(guarded, "set", "modes.NORMAL", "[" * 5_000, "--reason", "x")

    def test_set_invalid_yaml_quotes_only_the_start_of_the_value(self, guarded: Cli) -> None:
        """A 10,000-character value that is not YAML: the sentence quotes a short piece of it."""
        value = "{" + "a" * 10_000 + ": ["

        sentence = _refused(guarded, "set", "modes.NORMAL.max_leverage", value, "--reason", "x")

        assert "is not valid YAML" in sentence
        assert "a" * 100 not in sentence


class TestNumbersTooLargeForAFloat:
    """10**400 is no limit: set and import refuse it with exit 3 and one sentence."""

    def test_set_ten_to_the_400_exits_3_in_one_sentence(self, guarded: Cli) -> None:
        """The path is named; the 401 digits are not written out."""
        number = str(10**400)

        sentence = _refused(guarded, "set", "modes.NORMAL.max_leverage", number, "--reason", "x")

        assert "modes.NORMAL.max_leverage" in sentence
        assert number not in sentence
        assert 5.0 == guarded.json("get", "risk.max_leverage")

    @pytest.mark.parametrize("kind", ["json", "yaml"])
    def test_import_ten_to_the_400_exits_3_in_one_sentence(self, guarded: Cli, tmp_path: Path, kind: str) -> None:
        """An exported policy with one limit set to 10**400 is refused whole."""
        document = guarded.json("export", "-", "--format", "json")
        text = json.dumps(document).replace('"position_size_cap": 1000.0', f'"position_size_cap": {10**400}', 1)
        assert str(10**400) in text
        (tmp_path / f"big.{kind}").write_text(text)  # JSON is YAML as well

        sentence = _refused(guarded, "import", f"big.{kind}", "--reason", "x")

        assert "position_size_cap" in sentence
        assert 1 == guarded.version()
