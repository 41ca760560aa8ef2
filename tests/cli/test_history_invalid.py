"""``history`` over an invalid newest version lists the stored entries, that version's marked, on SQLite and Redis.

History is read straight from the back end's entries, not from a policy that
must validate, so a version written behind the store's back does not hide the
record an operator needs to repair it (who wrote it, and which version to roll
back to). The command warns on stderr; the text marks the refused version and
``--json`` gives it ``"invalid": true``.
"""

from __future__ import annotations

import json

from cli_support import Cli, one_sentence
from test_repair import corrupted  # noqa: F401 - the fixture: a store whose newest version 3 is invalid


def version_cells(out: str) -> list[str]:
    """The version column of a history table (two spaces or more between columns)."""
    return [line.split("  ")[0].strip() for line in out.splitlines()[2:]]


class TestHistoryOverAnInvalidNewestVersion:
    """The entries are listed; the invalid one is marked; nothing is written."""

    def test_history_lists_every_entry_and_marks_the_invalid_version(self, corrupted: Cli) -> None:  # noqa: F811
        """Exit 0, versions 3 (marked), 2 and 1, the intruder's entry readable, one warning line saying why."""
        result = corrupted("history")

        assert ["3 (invalid)", "2", "1"] == version_cells(result.stdout)
        assert "intruder" in result.stdout
        warning = one_sentence(result.stderr)
        assert warning.startswith("warning: ")
        assert "invalid" in warning
        assert "marked (invalid)" in warning

    def test_history_json_marks_only_the_invalid_entry(self, corrupted: Cli) -> None:  # noqa: F811
        """--json: the entries as stored, the refused one with "invalid": true, the others without the key."""
        entries = json.loads(corrupted("--json", "history").stdout)

        assert [3, 2, 1] == [entry["version"] for entry in entries]
        assert [True, None, None] == [entry.get("invalid") for entry in entries]
        assert "intruder" == entries[0]["by"]

    def test_history_full_marks_the_invalid_version(self, corrupted: Cli) -> None:  # noqa: F811
        """--full heads the refused entry with the mark too."""
        out = corrupted("history", "--full").stdout

        assert out.startswith("version 3 (invalid)")

    def test_history_after_the_repair_marks_nothing(self, corrupted: Cli) -> None:  # noqa: F811
        """Once rollback wrote version 4 over it, no version is refused: no mark, no warning."""
        corrupted("rollback", "2", "--reason", "repair")

        result = corrupted("history")

        assert ["4", "3", "2", "1"] == version_cells(result.stdout)
        assert "" == result.stderr
