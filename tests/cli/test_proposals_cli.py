"""Four-eyes approval and dry runs from the command line, as a real subprocess on a SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import Cli, one_sentence


@pytest.fixture
def guarded(store: Cli) -> Cli:
    """A store needing 2 admins to raise risk (raised by an operator: it tightens)."""
    store("set", "change_control.approvals_required", "2", "--reason", "four eyes", "--role", "operator")
    return store


@pytest.fixture
def decision_log(store: Cli, tmp_path: Path) -> Path:
    """A real decision log: the shipped sample signals replayed under the built-in policy."""
    path = tmp_path / "decisions.jsonl"
    store("replay", "--sample", "--builtin", "--log", str(path))
    return path


class TestApprovalRequired:
    """Under 2 approvals, a loosening is refused (exit 6) and a tightening applies."""

    def test_admin_loosening_exits_6_saying_to_propose_it(self, guarded: Cli) -> None:
        """set that raises risk: exit 6, one sentence, and --json names ApprovalRequiredError; nothing written."""
        text = guarded("set", "modes.NORMAL.max_leverage", "6", "--reason", "more", "--by", "ada", code=6)
        as_json = guarded("set", "modes.NORMAL.max_leverage", "6", "--reason", "more", "--json", code=6)

        assert "propose it" in one_sentence(text.stderr)
        payload = json.loads(as_json.stderr)
        assert ("ApprovalRequiredError", 6, 2, 1) == (
            payload["error"],
            payload["exit_code"],
            payload["approvals_required"],
            payload["approvals"],
        )
        assert 2 == guarded.version()

    def test_operator_tightens_at_once(self, guarded: Cli) -> None:
        """An operator's stricter mode is written at once."""
        guarded("mode", "DEFENSIVE", "--reason", "calm", "--role", "operator", "--by", "otto")

        assert (3, "DEFENSIVE") == (guarded.version(), guarded("get", "active_mode").stdout.strip())


class TestProposalCommands:
    """propose, approve, reject and proposals, each within the role rules."""

    def test_two_admins_apply_a_proposal_as_one_version_naming_both(self, guarded: Cli) -> None:
        """ada proposes, bea approves: version 3, by ada, the reason naming both; listed applied."""
        made = guarded.json("propose", "modes.NORMAL.max_leverage=6", "--reason", "event window", "--by", "ada")
        approved = guarded.json("approve", made["id"], "--by", "bea")

        assert ("pending", ["ada"], 1) == (made["status"], made["approved_by"], made["approvals_missing"])
        assert ("applied", 3, ["ada", "bea"]) == (
            approved["status"],
            approved["applied_version"],
            approved["approved_by"],
        )
        entry = guarded.json("history", "--limit", "1")[0]
        assert (3, "ada", "bea") == (entry["version"], entry["by"], entry["approved_by"][1])
        assert "approved by ada, bea" in entry["reason"]
        listed = guarded.json("proposals")
        assert [(made["id"], "applied")] == [(p["id"], p["status"]) for p in listed]
        assert "6.0" == guarded("get", "modes.NORMAL.max_leverage").stdout.strip()

    def test_refused_approvals_exit_non_zero_and_change_nothing(self, guarded: Cli) -> None:
        """Twice by one admin and after a rejection: exit 4; an unknown id: exit 3; an operator: exit 6."""
        made = guarded.json("propose", "modes.NORMAL.max_leverage=6", "--reason", "event", "--by", "ada")

        twice = guarded("approve", made["id"], "--by", "ada", code=4)
        operator = guarded("approve", made["id"], "--by", "otto", "--role", "operator", code=6)
        guarded("reject", made["id"], "--reason", "not today", "--by", "bea")
        after = guarded("approve", made["id"], "--by", "cat", code=4)
        unknown = guarded("approve", "nope", "--by", "cat", code=3)

        assert "approved it already" in one_sentence(twice.stderr)
        assert "approving a proposal" in one_sentence(operator.stderr)
        assert "rejected" in one_sentence(after.stderr)
        assert "Unknown proposal 'nope'" in one_sentence(unknown.stderr)
        assert 2 == guarded.version()

    def test_lowering_approvals_required_goes_through_a_proposal(self, guarded: Cli) -> None:
        """set to 1 is refused; proposed and approved it applies, and then one admin loosens with set."""
        guarded("set", "change_control.approvals_required", "1", "--reason", "fewer", code=6)
        made = guarded.json("propose", "change_control.approvals_required=1", "--reason", "fewer", "--by", "ada")
        guarded("approve", made["id"], "--by", "bea")

        guarded("set", "modes.NORMAL.max_leverage", "6", "--reason", "more", "--by", "ada")

        assert 4 == guarded.version()

    def test_bad_assignment_is_a_usage_error(self, guarded: Cli) -> None:
        """An argument without '=' is no PATH=VALUE: exit 2, nothing stored."""
        result = guarded("propose", "modes.NORMAL.max_leverage", "--reason", "x", code=2)

        assert "PATH=VALUE" in result.stderr
        assert [] == guarded.json("proposals")


class TestDryRun:
    """--dry-run on every write command: a preview, no version."""

    @pytest.mark.parametrize(
        "command",
        [
            ("set", "modes.NORMAL.max_leverage", "6"),
            ("mode", "AGGRESSIVE_SMALL_ACCOUNT"),
            ("emergency", "on"),
            ("rollback", "1"),
            ("presets", "BULL_MARKET", "--add"),
            ("propose", "modes.NORMAL.max_leverage=6"),
        ],
        ids=lambda c: c[0],
    )
    def test_every_write_command_previews_without_a_reason_and_writes_nothing(
        self, guarded: Cli, command: tuple[str, ...]
    ) -> None:
        """The JSON preview names risk, role and approvals; the version and the proposals stay as they were."""
        preview = guarded.json(*command, "--dry-run")

        assert (True, 2) == (preview["dry_run"], preview["base_version"])
        assert {"raises_risk", "required_role", "approvals_required", "allowed", "changes"} <= preview.keys()
        assert 2 == guarded.version()
        assert [] == guarded.json("proposals")

    def test_dry_run_text_says_who_may_and_marks_raised_paths(self, guarded: Cli) -> None:
        """The table marks each path that raises risk and says 2 admins must agree."""
        out = guarded("set", "modes.NORMAL.max_leverage", "6", "--dry-run").stdout

        assert "Dry run: nothing written." in out
        assert "raises risk" in out
        assert "needs 2 admins to agree" in out

    def test_decisions_preview_counts_changed_decisions_on_a_real_log(self, guarded: Cli, decision_log: Path) -> None:
        """A higher confidence floor: the log's signals decided again, some accepted ones now low_confidence."""
        preview = guarded.json(
            "set", "modes.NORMAL.global_min_confidence", "0.6", "--dry-run", "--decisions", str(decision_log)
        )

        impact = preview["decisions"]
        records = len(decision_log.read_text(encoding="utf-8").splitlines())
        assert (records, 0) == (impact["signals"], impact["skipped"])
        assert impact["changed"] == sum(impact["by_reason"].values()) > 0
        assert impact["by_reason"]["accepted -> low_confidence"] > 0
        assert 0 < len(impact["examples"]) <= 5
        assert 2 == guarded.version()

    def test_decisions_without_dry_run_is_a_usage_error(self, guarded: Cli, decision_log: Path) -> None:
        """--decisions previews: given alone it is refused before anything is written."""
        result = guarded(
            "set", "modes.NORMAL.max_leverage", "4", "--reason", "x", "--decisions", str(decision_log), code=2
        )

        assert "--dry-run" in result.stderr
        assert 2 == guarded.version()

    def test_unreadable_decision_log_exits_3(self, guarded: Cli, tmp_path: Path) -> None:
        """A log that is not there is bad input (exit 3), as for 'policystore decisions'."""
        result = guarded("mode", "DEFENSIVE", "--dry-run", "--decisions", str(tmp_path / "none.jsonl"), code=3)

        assert "no decision log" in one_sentence(result.stderr)

    def test_write_without_reason_and_without_dry_run_is_still_a_usage_error(self, guarded: Cli) -> None:
        """--reason stays required for a real write."""
        result = guarded("set", "modes.NORMAL.max_leverage", "4", code=2)

        assert "--reason" in result.stderr
