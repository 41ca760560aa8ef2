"""``policystore fleet`` and ``--wait`` on every write, run as real subprocesses beside real member processes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli_support import Cli, one_sentence

from policystore.errors import FleetIncompleteError
from support.fleet import Member, members


@pytest.fixture
def cli(store: Cli) -> Cli:
    """The command line bound to a SQLite store that exists."""
    return store


@pytest.fixture
def member(cli: Cli) -> Iterator[Member]:
    """One member process, executor-1, following the command line's store."""
    with members(cli.url, "executor-1") as (started,):
        yield started


def _heard_just_now(cli: Cli, name: str) -> None:
    """Wait until ``name`` reported under half a second ago (read with the command line itself)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = {m["name"]: m for m in cli.json("fleet")["members"]}
        if name in listed and listed[name]["lag_seconds"] < 0.5:
            return
        time.sleep(0.05)
    pytest.fail(f"{name} did not report")


def _frozen(cli: Cli, member: Member) -> None:
    """Let ``member`` catch up and report, then freeze it (SIGSTOP): it stays live, and behind, for 5 s."""
    member.thaw()
    version = cli.version()
    deadline = time.monotonic() + 30
    while member.status()["version"] < version and time.monotonic() < deadline:
        time.sleep(0.05)
    _heard_just_now(cli, member.name)
    member.freeze()


class TestFleetCommand:
    """policystore fleet lists the processes that follow the store."""

    def test_fleet_lists_member_processes_by_name_with_host_pid_version_and_status(
        self, cli: Cli, member: Member
    ) -> None:
        """The table names the member with its host, pid and version; --json has the same as data."""
        with members(cli.url, "executor-2") as (other,):
            text = cli("fleet").stdout
            data = cli.json("fleet")

        assert "2 members, 2 live, 0 lost" in text
        for started in (member, other):
            line = next(line for line in text.splitlines() if line.startswith(started.name))
            assert [started.name, socket.gethostname(), str(started.pid), "1", "0"] == line.split()[:5]
            assert line.split()[-2:] == ["live", "-"]
        assert (1, ["executor-1", "executor-2"]) == (data["version"], [m["name"] for m in data["members"]])
        assert {"live"} == {m["status"] for m in data["members"]}

    def test_fleet_of_no_one_says_how_a_process_joins(self, cli: Cli) -> None:
        """With no member the command says so in one sentence and lists nothing; the command itself is no member."""
        out = cli("fleet").stdout
        assert out.startswith("No process follows")
        assert [] == cli.json("fleet")["members"]

    def test_fleet_shows_a_frozen_member_behind(self, cli: Cli, member: Member) -> None:
        """A member frozen before a write is listed one version behind."""
        _frozen(cli, member)
        cli("emergency", "on", "--reason", "halt")
        data = cli.json("fleet")
        member.thaw()

        (listed,) = data["members"]
        assert (2, 1, 1, "live") == (data["version"], listed["version"], listed["lag_versions"], listed["status"])


class TestWait:
    """--wait SECONDS on a write: exit 0 once every live member has it, exit 7 naming those that have not."""

    def test_kill_switch_with_wait_confirmed_by_a_running_member_exits_0_and_says_so(
        self, cli: Cli, member: Member
    ) -> None:
        """The write's line, then one line saying every live member applied it; --json carries the outcome."""
        out = cli("emergency", "on", "--reason", "halt", "--wait", "30").stdout
        data = cli.json("emergency", "off", "--reason", "resume", "--wait", "30")

        assert out.splitlines()[0] == "Kill switch is ON (version 2)."
        assert out.splitlines()[1].startswith("Every live member of the fleet (1) applied version 2")
        assert (3, True, ["executor-1"], []) == (
            data["version"],
            data["fleet"]["complete"],
            [m["name"] for m in data["fleet"]["acked"]],
            data["fleet"]["missing"],
        )
        assert member.member_id == data["fleet"]["acked"][0]["member_id"]

    def test_kill_switch_with_wait_and_a_frozen_member_exits_7_naming_it_and_the_write_is_made(
        self, cli: Cli, member: Member
    ) -> None:
        """The result goes to stdout as usual; stderr is one sentence naming the member; the kill switch is on."""
        _frozen(cli, member)
        result = cli("emergency", "on", "--reason", "halt", "--wait", "0.5", code=FleetIncompleteError.exit_code)
        member.thaw()

        assert "Kill switch is ON (version 2)." == result.stdout.strip()
        sentence = one_sentence(result.stderr)
        assert sentence.startswith("The fleet did not confirm version 2 within 0.5 s: executor-1 (pid ")
        assert f"pid {member.pid} on {socket.gethostname()}, at version 1" in sentence
        assert "true" == cli("get", "emergency.active").stdout.strip()

    def test_with_json_the_missing_members_are_data_on_stderr_and_the_result_on_stdout(
        self, cli: Cli, member: Member
    ) -> None:
        """stdout holds the write's document with fleet.complete false; stderr the error with the missing member."""
        _frozen(cli, member)
        result = cli("--json", "emergency", "on", "--reason", "halt", "--wait", "0.5", code=7)
        member.thaw()

        written = json.loads(result.stdout)
        failure = json.loads(result.stderr)
        assert (2, False, ["executor-1"]) == (
            written["version"],
            written["fleet"]["complete"],
            [m["name"] for m in written["fleet"]["missing"]],
        )
        assert ("FleetIncompleteError", 7, 2, ["executor-1"], [member.pid]) == (
            failure["error"],
            failure["exit_code"],
            failure["version"],
            [m["name"] for m in failure["missing"]],
            [m["pid"] for m in failure["missing"]],
        )

    @pytest.mark.parametrize(
        "command",
        [
            ["mode", "DEFENSIVE"],
            ["set", "modes.NORMAL.max_leverage", "4"],
            ["emergency", "on"],
            ["rollback", "1"],
            ["import", "{file}"],
            ["presets", "BULL_MARKET", "--add"],
            ["trading", "halted", "--symbol", "BTC"],
            ["mode", "DEFENSIVE", "--for", "30m"],
        ],
        ids=lambda command: "-".join(part.lstrip("-") for part in command[::2]),
    )
    def test_every_write_command_waits_and_exits_7_while_a_member_is_frozen(
        self, cli: Cli, member: Member, tmp_path: Path, command: list[str]
    ) -> None:
        """mode, set, emergency, rollback, import, presets --add, trading, a change --for a while: exit 7, named."""
        if command[0] == "rollback":
            cli("emergency", "on", "--reason", "a version to roll back from")
        document = yaml.safe_load(cli("export", "-").stdout)
        document["modes"]["NORMAL"]["max_positions"] = 12
        (tmp_path / "policy.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
        before = cli.version()
        _frozen(cli, member)

        args = [part.format(file=tmp_path / "policy.yaml") for part in command]
        result = cli(*args, "--reason", "fleet check", "--wait", "0.5", code=7)
        member.thaw()

        assert before + 1 == cli.version()
        assert "executor-1" in one_sentence(result.stderr)
        assert f"version {before + 1}" in one_sentence(result.stderr)

    def test_a_wait_with_no_member_is_complete_at_once(self, cli: Cli) -> None:
        """With no process following the store there is nothing to confirm: exit 0, and it says so."""
        out = cli("set", "modes.NORMAL.max_positions", "20", "--reason", "fewer", "--wait", "5").stdout
        assert "No live member follows the store; nothing to confirm version 2" in out

    @pytest.mark.parametrize("wait", ["-1", "abc", "nan", "4000"])
    def test_a_bad_wait_is_a_usage_error_and_nothing_is_written(self, cli: Cli, wait: str) -> None:
        """A negative, non-numeric or over-long --wait exits 2 naming the option, before anything is written."""
        result = cli("emergency", "on", "--reason", "halt", "--wait", wait, code=2)
        assert "--wait" in result.stderr
        assert 1 == cli.version()

    @pytest.mark.parametrize(
        "command", [["emergency", "on"], ["mode", "DEFENSIVE"], ["trading", "halted", "--symbol", "BTC"]]
    )
    def test_a_wait_with_a_dry_run_is_a_usage_error(self, cli: Cli, command: list[str]) -> None:
        """A dry run writes no version for the fleet to apply: --wait with --dry-run exits 2 naming both."""
        result = cli(*command, "--dry-run", "--wait", "1", code=2)
        assert "--wait goes with a write, and a dry run" in result.stderr
        assert 1 == cli.version()

    def test_help_of_a_write_command_names_the_exit_status_of_an_unconfirmed_wait(self, cli: Cli) -> None:
        """--wait's help says an unconfirmed wait exits 7."""
        assert "(else exit 7," in " ".join(cli("emergency", "--help").stdout.split())


class TestWaitOnApproval:
    """An approval that applies a proposal is a write: --wait waits for the fleet to apply its version."""

    @pytest.fixture
    def proposed(self, cli: Cli) -> str:
        """Two admins needed; ada proposes a loosening; its id."""
        cli("set", "change_control.approvals_required", "2", "--reason", "four eyes", "--role", "operator")
        made = cli.json("propose", "modes.NORMAL.max_leverage=6", "--reason", "event window", "--by", "ada")
        return str(made["id"])

    def test_the_approval_that_applies_waits_and_exits_7_naming_a_frozen_member(
        self, cli: Cli, member: Member, proposed: str
    ) -> None:
        """The proposal is applied (stdout as usual); stderr names the member that has not the applied version."""
        before = cli.version()
        _frozen(cli, member)
        result = cli("approve", proposed, "--by", "bea", "--wait", "0.5", code=FleetIncompleteError.exit_code)
        member.thaw()

        assert "applied" in result.stdout
        assert before + 1 == cli.version()
        sentence = one_sentence(result.stderr)
        assert f"The fleet did not confirm version {before + 1} within 0.5 s: executor-1 (pid {member.pid}" in sentence

    def test_the_approval_that_applies_with_a_running_member_carries_the_fleet_in_json(
        self, cli: Cli, member: Member, proposed: str
    ) -> None:
        """--json: the proposal, applied, with fleet.complete and the member acked."""
        data = cli.json("approve", proposed, "--by", "bea", "--wait", "30")

        assert ("applied", data["applied_version"], True, ["executor-1"]) == (
            data["status"],
            data["fleet"]["version"],
            data["fleet"]["complete"],
            [m["name"] for m in data["fleet"]["acked"]],
        )
        assert member.member_id == data["fleet"]["acked"][0]["member_id"]

    def test_an_approval_that_applies_nothing_waits_for_nothing(self, cli: Cli, member: Member) -> None:
        """Three admins needed: the second approval applies nothing, so even a frozen member fails no wait (exit 0)."""
        cli("set", "change_control.approvals_required", "3", "--reason", "six eyes", "--role", "operator")
        made = cli.json("propose", "modes.NORMAL.max_leverage=6", "--reason", "event window", "--by", "ada")
        _frozen(cli, member)
        data = cli.json("approve", made["id"], "--by", "bea", "--wait", "0.5")
        member.thaw()

        assert ("pending", None, False) == (data["status"], data["applied_version"], "fleet" in data)
