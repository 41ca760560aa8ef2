"""Pure parts of the command line: the exit-code table, rendering, and lazily loaded commands."""

from __future__ import annotations

import click
import pytest
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
from policystore.cli.documents import MAX_DEPTH, load_json, load_yaml
from policystore.cli.errors import PolicyStoreFailure, error_payload, exit_code_for, json_requested
from policystore.cli.group import PolicyStoreGroup
from policystore.cli.output import table, value_text
from policystore.cli.output_audit import by_importance, change_summary, render_decisions
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


class TestChangeOrder:
    """History lists the fields that matter first."""

    def test_by_importance_puts_kill_switch_then_mode_then_limits_then_stamps(self) -> None:
        """Alphabetical order would put the activation stamps before the state; this order does not."""
        paths = [
            "emergency.activated_at",
            "emergency.activated_by",
            "emergency.active",
            "emergency.reason",
            "modes.NORMAL.max_leverage",
            "active_mode",
        ]

        ordered = [c.path for c in by_importance([FieldChange(p, None, 1) for p in paths])]

        assert [
            "emergency.active",
            "emergency.reason",
            "active_mode",
            "modes.NORMAL.max_leverage",
            "emergency.activated_at",
            "emergency.activated_by",
        ] == ordered


class TestDecisionTable:
    """The decisions table: one outcome word, fitted columns, long values cut with an ellipsis."""

    def test_render_decisions_cuts_a_long_value_and_keeps_columns_aligned(self) -> None:
        """A 40-character strategy name is cut to the column limit; the next column starts where the header says."""
        records = [
            {"time": "t", "policy_version": 1, "mode": "NORMAL", "symbol": "BTC", "strategy": "s" * 40,
             "side": "buy", "accepted": True, "reason": "accepted", "quantity": 1.5},
            {"time": "t", "policy_version": 1, "mode": "NORMAL", "symbol": "ETH", "strategy": "moderate",
             "side": "sell", "accepted": False, "reason": "cooldown", "detail": "wait 3 s"},
        ]  # fmt: skip

        lines = render_decisions(records).splitlines()

        side = lines[0].index("side")
        assert ["buy", "sell"] == [lines[2][side:].split()[0], lines[3][side:].split()[0]]
        assert "s" * 27 + "\u2026" in lines[2]
        assert ["refused", "cooldown", "-"] == lines[3].split()[-3:]
        assert "    wait 3 s" == lines[4]


class TestInputBounds:
    """YAML and JSON are measured before they are built (pure: no store, no file)."""

    def test_load_yaml_alias_expansion_past_the_bound_is_refused(self) -> None:
        """Six levels of ten aliases: 10**6 values once expanded, refused without building them."""
        lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        for previous, name in zip("abcde", "bcdef", strict=True):
            lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")

        with pytest.raises(PolicyValidationError, match="aliases are expanded"):
            load_yaml("\n".join(lines), where="file", what="bomb.yaml")

    def test_load_yaml_a_few_aliases_are_fine(self) -> None:
        """Aliases within the bound are read as YAML reads them."""
        assert {"a": [1, 2], "b": [1, 2]} == load_yaml("a: &a [1, 2]\nb: *a\n", where="file", what="ok.yaml")

    def test_load_json_at_the_depth_bound_is_read(self) -> None:
        """MAX_DEPTH levels are read; brackets inside a string do not count."""
        expected: object = "[[[["
        for _ in range(MAX_DEPTH):
            expected = [expected]

        assert expected == load_json("[" * MAX_DEPTH + '"[[[["' + "]" * MAX_DEPTH, where="file", what="deep.json")

    def test_load_json_one_level_past_the_bound_is_refused(self) -> None:
        """MAX_DEPTH + 1 levels: refused by depth."""
        with pytest.raises(PolicyValidationError, match="levels deep"):
            load_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), where="file", what="deep.json")


class TestJsonErrorPayload:
    """A failure as --json prints it: class, sentence, status, then the error's own facts."""

    def test_error_payload_of_a_validation_error_lists_its_fields(self) -> None:
        """The facts come from the error's attributes; FieldError becomes path and message."""
        error = PolicyValidationError([FieldError("modes.NORMAL.max_leverage", "is above 10")])

        payload = error_payload(PolicyStoreFailure(error))

        assert {
            "error": "PolicyValidationError",
            "detail": "Invalid policy value: modes.NORMAL.max_leverage: is above 10.",
            "exit_code": 3,
            "errors": [{"path": "modes.NORMAL.max_leverage", "message": "is above 10"}],
        } == payload

    def test_json_requested_ignores_arguments_after_a_double_dash(self) -> None:
        """--json after -- is an argument, not the option."""
        assert (True, False) == (json_requested(["show", "--json"]), json_requested(["get", "--", "--json"]))
