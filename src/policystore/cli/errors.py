"""How the command line fails: the exit-code table, and failures as one sentence or one JSON object.

Every failure is reported on stderr. As text it is one plain sentence (click's
usage errors keep their usage line). With ``--json`` (before or after the
command) it is one line of JSON::

    {"error": "PolicyValidationError", "detail": "Invalid policy value: ...", "exit_code": 3, "errors": [...]}

``error`` is the class name, ``detail`` the sentence, ``exit_code`` the status,
and the error's facts follow as their own keys (``path`` and ``suggestions``,
``current_version``, ``url``, ``required_role``...). stdout carries results
only, so a program reads results from stdout and failures from stderr.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import IO, Any, Final

import click

from policystore.cli.output import to_json
from policystore.errors import (
    PermissionDeniedError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    UnknownPathError,
    VersionConflictError,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_USAGE",
    "CommandFailed",
    "PolicyStoreFailure",
    "error_payload",
    "exit_code_for",
    "json_requested",
    "one_line",
    "report",
]

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
EXIT_INVALID: Final = 3
#: Exit status for a failure no table row names (also click's own failures).
EXIT_OTHER: Final = 1

#: The one table from error class to exit status; the most specific class wins.
EXIT_CODES: Final[Mapping[type[PolicyStoreError], int]] = {
    UnknownPathError: EXIT_INVALID,
    PolicyValidationError: EXIT_INVALID,
    VersionConflictError: 4,
    StoreUnavailableError: 5,
    PermissionDeniedError: 6,
}


def exit_code_for(exc: PolicyStoreError) -> int:
    """Return the exit status for ``exc`` from :data:`EXIT_CODES`.

    Args:
        exc: a policystore error.

    Returns:
        The status of the nearest class in ``exc``'s hierarchy; 1 if none is listed.
    """
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_OTHER


def one_line(text: str) -> str:
    """Return ``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def _set_exit_code(exc: click.ClickException, code: int) -> None:
    # click declares exit_code on the class; each of these failures carries its own status.
    vars(exc)["exit_code"] = code


class PolicyStoreFailure(click.ClickException):
    """A policystore error on its way out of the command line, with its exit status.

    Args:
        error: the error.
    """

    def __init__(self, error: PolicyStoreError) -> None:
        super().__init__(one_line(str(error)))
        self.error = error
        _set_exit_code(self, exit_code_for(error))

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the sentence alone: it says what was wrong; no "Error:" prefix is needed."""
        click.echo(self.message, err=file is None, file=file)


class CommandFailed(click.ClickException):
    """A command's own failure that is no policystore error (a bad CSV file, a missing log).

    Args:
        message: one sentence.
        exit_code: the status (3 for an invalid value).
        error: the name ``--json`` reports it under.
        **facts: more keys for ``--json``.
    """

    def __init__(self, message: str, *, exit_code: int, error: str, **facts: Any) -> None:
        super().__init__(message)
        _set_exit_code(self, exit_code)
        self.error = error
        self.facts = facts

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the sentence alone, as policystore errors are printed."""
        click.echo(self.message, err=file is None, file=file)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def error_payload(exc: click.ClickException) -> dict[str, Any]:
    """Return a failure as the JSON object ``--json`` prints.

    Args:
        exc: the failure.

    Returns:
        ``error``, ``detail`` and ``exit_code``, then the error's facts.
    """
    if isinstance(exc, PolicyStoreFailure):
        facts = {k: _plain(v) for k, v in vars(exc.error).items() if k != "message" and not k.startswith("_")}
        name = type(exc.error).__name__
    elif isinstance(exc, CommandFailed):
        facts, name = {k: _plain(v) for k, v in exc.facts.items()}, exc.error
    else:
        facts, name = {}, type(exc).__name__
    return {"error": name, "detail": one_line(exc.format_message()), "exit_code": exc.exit_code, **facts}


def json_requested(argv: Sequence[str]) -> bool:
    """Tell whether ``--json`` is among the options of ``argv`` (before any ``--``)."""
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    return "--json" in options


def report(exc: click.ClickException, *, as_json: bool) -> None:
    """Print a failure on stderr: click's text, or one JSON line.

    Args:
        exc: the failure.
        as_json: print it as the JSON object of :func:`error_payload`.
    """
    if not as_json:
        exc.show()
        return
    try:
        text = to_json(error_payload(exc), indent=None)
    except (TypeError, ValueError):  # a fact that is no JSON: the sentence still says it all
        text = json.dumps(
            {"error": type(exc).__name__, "detail": one_line(exc.format_message()), "exit_code": exc.exit_code}
        )
    click.echo(text, err=True)
