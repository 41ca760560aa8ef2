"""The command line's exit statuses and help come from the error classes' own facts.

Each error raised through the real command group exits with its class's
``exit_code`` and reports it under ``--json``; the help's list of exit
statuses is built from the same attributes, and still says what the contract
says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import click
import pytest
from click.testing import CliRunner

from policystore.cli.errors import (
    EXIT_CODES,
    OWN_EXIT_STATUSES,
    exit_code_for,
    exit_status_help,
    exit_statuses,
)
from policystore.cli.group import PolicyStoreGroup
from policystore.cli.main import cli
from policystore.errors import (
    ApprovalRequiredError,
    AuthenticationError,
    ClientTypeError,
    ContentTypeError,
    FieldError,
    FleetIncompleteError,
    InternalError,
    MalformedRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PolicyStoreError,
    PolicyValidationError,
    ProposalRefusedError,
    StoreUnavailableError,
    StreamMessageError,
    UnknownPathError,
    UnknownProposalError,
    VersionConflictError,
    error_classes,
)

#: One instance of every error class, made as the code that raises it makes it.
SAMPLES: dict[type[PolicyStoreError], Callable[[], PolicyStoreError]] = {
    PolicyStoreError: lambda: PolicyStoreError("Something failed."),
    PolicyValidationError: lambda: PolicyValidationError([FieldError("risk.max_leverage", "must be positive")]),
    UnknownPathError: lambda: UnknownPathError("risk.nope", ["risk.max_leverage"]),
    VersionConflictError: lambda: VersionConflictError(1, 2),
    StoreUnavailableError: lambda: StoreUnavailableError("memory://facts", "down"),
    PermissionDeniedError: lambda: PermissionDeniedError("vera", "viewer", "operator", "switching the mode"),
    ApprovalRequiredError: lambda: ApprovalRequiredError("ada", "admin", "this change", 2, 1, ["risk.max_leverage"]),
    ProposalRefusedError: lambda: ProposalRefusedError("abc123", "stale", "a path it changes was changed"),
    UnknownProposalError: lambda: UnknownProposalError("abc123"),
    FleetIncompleteError: lambda: FleetIncompleteError(
        7, 2.0, [{"name": "executor-1", "host": "host-a", "pid": 4242, "version": 6}]
    ),
    ClientTypeError: lambda: ClientTypeError("client", "redis.asyncio.Redis", object()),
    AuthenticationError: lambda: AuthenticationError("no bearer token was sent"),
    MalformedRequestError: lambda: MalformedRequestError("it could not be parsed"),
    ContentTypeError: lambda: ContentTypeError("text/plain"),
    PayloadTooLargeError: lambda: PayloadTooLargeError(1024),
    StreamMessageError: lambda: StreamMessageError("a binary frame"),
    InternalError: lambda: InternalError("POST", "/v1/mode"),
}


class _RefinedError(PermissionDeniedError):
    """A refinement defined outside the package, as a later error or a user's own would be."""


def _raising_group() -> click.Group:
    """The real command group with one command that raises the sample of the class it is named."""
    group = PolicyStoreGroup(name="policystore")

    @group.command()
    @click.argument("name")
    def fail(name: str) -> None:
        if name == _RefinedError.__name__:
            raise _RefinedError("vera", "viewer", "admin", "this")
        raise next(make() for cls, make in SAMPLES.items() if cls.__name__ == name)

    return group


class TestFacts:
    """Every error class carries an exit status the command line can use."""

    def test_samples_cover_every_error_class(self) -> None:
        """The tests below raise one of each class the errors module defines, and no other."""
        assert set(error_classes()) == set(SAMPLES)

    @pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
    def test_every_error_class_has_an_exit_code_and_a_title(self, cls: type[PolicyStoreError]) -> None:
        """An exit status between 1 and 125 (a shell's own are above) and a few words naming it, to go mid-sentence."""
        assert isinstance(cls.exit_code, int)
        assert 1 <= cls.exit_code <= 125
        assert re.fullmatch(r"[a-z][\w /.-]{2,40}\w", cls.title), cls.title

    def test_exit_code_table_is_read_from_the_classes(self) -> None:
        """EXIT_CODES holds each class's own attribute, for every class."""
        assert {cls: cls.exit_code for cls in error_classes()} == dict(EXIT_CODES)

    @pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
    def test_exit_code_for_an_error_is_its_class_attribute(self, cls: type[PolicyStoreError]) -> None:
        """exit_code_for answers what the error's class says."""
        assert cls.exit_code == exit_code_for(SAMPLES[cls]())

    def test_a_refinement_exits_as_the_error_it_refines(self) -> None:
        """A subclass that sets no exit status of its own inherits its parent's."""
        assert PermissionDeniedError.exit_code == exit_code_for(_RefinedError("a", "viewer", "admin", "this"))


class TestThroughTheCommandGroup:
    """An error raised by a command leaves the real command group with its class's status."""

    @pytest.mark.parametrize("cls", [*error_classes(), _RefinedError], ids=lambda cls: cls.__name__)
    def test_each_error_exits_with_its_class_exit_code(self, cls: type[PolicyStoreError]) -> None:
        """The process status and --json's exit_code are the class attribute; --json names the class."""
        runner = CliRunner()

        text = runner.invoke(_raising_group(), ["fail", cls.__name__])
        as_json = runner.invoke(_raising_group(), ["fail", cls.__name__, "--json"])

        payload = json.loads(as_json.stderr)
        assert (cls.exit_code, cls.exit_code) == (text.exit_code, as_json.exit_code)
        assert (cls.__name__, cls.exit_code) == (payload["error"], payload["exit_code"])
        assert "Traceback" not in text.stderr + as_json.stderr


class TestHelp:
    """The help's exit statuses are the classes' facts, and say what the contract says."""

    def test_exit_statuses_are_the_contract_list(self) -> None:
        """0 done, 2 usage, 3 invalid, 4 conflict, 5 unreachable, 6 denied, 7 fleet not confirmed; 1 for the rest.

        A proposal that cannot be approved is refused as a conflict (4), an unknown one as an unknown path (3).
        """
        assert {
            0: "done",
            1: "other failure",
            2: "usage",
            3: "invalid value or unknown path or unknown proposal",
            4: "version conflict or proposal refused",
            5: "store unreachable",
            6: "permission denied",
            7: "fleet not confirmed",
        } == exit_statuses()

    def test_every_status_an_error_class_sets_is_listed_with_its_title(self) -> None:
        """Each class that sets its own exit status has its title under that status; the CLI's own follow."""
        listed = exit_statuses()
        for cls in error_classes():
            if "exit_code" in vars(cls):
                assert cls.title in listed[cls.exit_code].split(" or "), cls.__name__
        for code, meaning in OWN_EXIT_STATUSES.items():
            assert meaning == listed[code]

    def test_help_prints_the_exit_statuses_as_listed(self) -> None:
        """policystore --help ends with one line per status, exactly as exit_statuses() has them."""
        out = CliRunner().invoke(cli, ["--help"]).stdout

        block = out[out.index("Exit status:") :].splitlines()[1:]
        printed = dict(line.strip().split(" ", 1) for line in block if line.strip())

        assert "\b\nExit status:" in exit_status_help()
        assert {str(code): meaning for code, meaning in exit_statuses().items()} == printed

    def test_option_help_names_the_status_of_the_error_it_warns_of(self) -> None:
        """--expect-version says a conflict's status; serve --create a missing store's."""
        runner = CliRunner()

        set_help = runner.invoke(cli, ["set", "--help"]).stdout
        serve_help = runner.invoke(cli, ["serve", "--help"]).stdout

        assert f"(else exit {VersionConflictError.exit_code})" in " ".join(set_help.split())
        assert f"is exit {StoreUnavailableError.exit_code})" in " ".join(serve_help.split())
