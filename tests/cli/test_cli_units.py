"""Pure parts of the command line: the exit-code table, rendering, and lazily loaded commands."""

from __future__ import annotations

import click
from click.testing import CliRunner

from policystore import (
    FieldError,
    PermissionDeniedError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    UnknownPathError,
    VersionConflictError,
)
from policystore.cli.errors import exit_code_for
from policystore.cli.group import PolicyStoreGroup
from policystore.cli.output import change_summary, table, value_text
from policystore.model.history import FieldChange


class TestExitCodes:
    """One table maps each error class to its exit status."""

    def test_exit_code_for_each_error_class_matches_the_contract(self) -> None:
        """3 invalid value or path, 4 conflict, 5 unreachable, 6 denied, 1 otherwise."""
        errors = [
            UnknownPathError("x"),
            PolicyValidationError([FieldError("x", "bad")]),
            VersionConflictError(1, 2),
            StoreUnavailableError("memory://", "down"),
            PermissionDeniedError("a", "viewer", "admin", "this"),
            PolicyStoreError("other"),
        ]
        assert [3, 3, 4, 5, 6, 1] == [exit_code_for(e) for e in errors]


class TestOutput:
    """Values and tables are rendered for people, in the spelling set accepts back."""

    def test_value_text_scalars_use_yaml_spelling(self) -> None:
        """Booleans and None read as YAML; numbers and text as they are."""
        assert ["true", "false", "null", "4.0", "NORMAL"] == [value_text(v) for v in (True, False, None, 4.0, "NORMAL")]

    def test_table_columns_align_to_the_widest_cell(self) -> None:
        """Every column starts at the same offset on every line."""
        lines = table(["a", "bb"], [["long cell", 1], ["x", True]]).splitlines()
        assert ["a          bb", "---------  ----", "long cell  1", "x          true"] == lines

    def test_change_summary_many_changes_lists_three_then_counts_the_rest(self) -> None:
        """A long change list is cut to three with a count of the others."""
        changes = [FieldChange(f"p{i}", i, i + 1) for i in range(5)]
        assert "p0: 0 -> 1, p1: 1 -> 2, p2: 2 -> 3 (+2 more)" == change_summary(changes)
        assert "-" == change_summary([])


def _group() -> click.Group:
    @click.group(
        cls=PolicyStoreGroup,
        lazy_commands={
            "ghost": ("policystore.cli.no_such_module:ghost", "A command whose module is missing."),
            "shown": ("policystore.cli.commands_audit:history", "Loaded on first use."),
        },
    )
    def group() -> None:
        """A test group."""

    return group


class TestLazyCommands:
    """Commands from other modules load on first use; a missing module breaks only its command."""

    def test_lazy_command_missing_module_fails_with_one_sentence(self) -> None:
        """Invoking it names the module; no traceback reaches the user."""
        result = CliRunner().invoke(_group(), ["ghost", "--anything"])
        assert 1 == result.exit_code
        assert "The 'ghost' command is not available" in result.output
        assert "policystore.cli.no_such_module" in result.output
        assert isinstance(result.exception, SystemExit)

    def test_lazy_commands_help_lists_them_without_importing(self) -> None:
        """--help shows the static help of commands not yet loaded."""
        result = CliRunner().invoke(_group(), ["--help"])
        assert 0 == result.exit_code
        assert "A command whose module is missing." in result.output
        assert "Loaded on first use." in result.output

    def test_lazy_command_present_module_is_loaded_by_name(self) -> None:
        """get_command imports the module and returns its command."""
        group = _group()
        with click.Context(group) as ctx:
            command = group.get_command(ctx, "shown")
        assert command is not None
        assert "history" == command.name
