"""How the command line fails: exit statuses, and failures as one sentence or one JSON object.

A policystore error exits with its class's
:attr:`~policystore.errors.PolicyStoreError.exit_code`; the help's list of exit
statuses is built from the same attributes (:func:`exit_statuses`). The
statuses no error class owns keep a small table of their own
(:data:`OWN_EXIT_STATUSES`: 0 when done, 2 for click's usage errors); any other
failure exits 1, click's own status, which the base class shares and names.

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
from types import MappingProxyType
from typing import IO, Any, Final

import click

from policystore.cli.output import to_json
from policystore.errors import PolicyStoreError, error_classes

__all__ = [
    "EXIT_CODES",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_USAGE",
    "OWN_EXIT_STATUSES",
    "CommandFailed",
    "PolicyStoreFailure",
    "error_payload",
    "exit_code_for",
    "exit_status_help",
    "exit_statuses",
    "json_requested",
    "one_line",
    "report",
]

EXIT_OK: Final = 0
#: click's status for a usage error: a missing argument, an unknown option, a bad value.
EXIT_USAGE: Final = click.UsageError.exit_code
#: click's status for its other failures; the base class of policystore's errors exits with it too.
EXIT_OTHER: Final = click.ClickException.exit_code

#: What the exit statuses that no policystore error owns mean.
OWN_EXIT_STATUSES: Final[Mapping[int, str]] = MappingProxyType({EXIT_OK: "done", EXIT_USAGE: "usage"})

#: The exit status of each error class of :mod:`policystore.errors`, read from the classes
#: (a view for callers who want them all at once; :func:`exit_code_for` asks the error itself).
EXIT_CODES: Final[Mapping[type[PolicyStoreError], int]] = MappingProxyType(
    {cls: cls.exit_code for cls in error_classes()}
)


def exit_code_for(exc: PolicyStoreError) -> int:
    """Return the exit status for ``exc``.

    Args:
        exc: a policystore error.

    Returns:
        Its class's :attr:`~policystore.errors.PolicyStoreError.exit_code`, inherited from
        the nearest class that sets one (1 for the base class).
    """
    return exc.exit_code


def exit_statuses() -> dict[int, str]:
    """Return what each exit status means, lowest first: the CLI's own, then the error classes'.

    An error class names its status only where it sets one itself (a class that
    inherits its status is a case of its parent's meaning); classes sharing a
    status are joined ("invalid value or unknown path").

    Returns:
        Status -> meaning.
    """
    titles: dict[int, list[str]] = {code: [meaning] for code, meaning in OWN_EXIT_STATUSES.items()}
    for cls in error_classes():
        if "exit_code" in vars(cls) and cls.title not in titles.setdefault(cls.exit_code, []):
            titles[cls.exit_code].append(cls.title)
    return {code: " or ".join(titles[code]) for code in sorted(titles)}


def exit_status_help() -> str:
    """Return the help's list of exit statuses, one per line, as click prints it unwrapped.

    Returns:
        ``Exit status:`` and then a line ``N meaning`` for each of :func:`exit_statuses`.
    """
    lines = [f"  {code} {meaning}" for code, meaning in exit_statuses().items()]
    return "\b\nExit status:\n" + "\n".join(lines)


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
        message: the sentence to print (and report as ``detail``) instead of the
            error's own, when the command has more to say; the status and the
            facts stay the error's.
    """

    def __init__(self, error: PolicyStoreError, message: str | None = None) -> None:
        super().__init__(one_line(message or str(error)))
        self.error = error
        _set_exit_code(self, exit_code_for(error))

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the sentence alone: it says what was wrong; no "Error:" prefix is needed."""
        click.echo(self.message, err=file is None, file=file)


class CommandFailed(click.ClickException):
    """A command's own failure that is no policystore error (a bad CSV file, a missing log).

    Args:
        message: one sentence.
        exit_code: the status (``PolicyValidationError.exit_code`` for an invalid value).
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
