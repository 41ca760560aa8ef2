"""What every command shares: the global options, the exit-code table, the store runner, lazy commands.

Commands receive a :class:`CliContext` (``ctx.obj``) and hand an async function
of the store to :meth:`CliContext.run`, which opens the store, warns when answers
are stale, and always closes it. Errors of policystore become one plain sentence
on stderr and an exit code from :data:`EXIT_CODES`; any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

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
from policystore.model.roles import Actor, Role
from policystore.store.sources import Source
from policystore.store.store import PolicyStore

__all__ = [
    "EXIT_CODES",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliContext",
    "PolicyStoreGroup",
    "default_author",
    "exit_code_for",
    "write_options",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
#: Exit status for a failure no table row names (also click's own failures).
EXIT_OTHER: Final = 1

#: The one table from error class to exit status; the most specific class wins.
EXIT_CODES: Final[Mapping[type[PolicyStoreError], int]] = {
    UnknownPathError: 3,
    PolicyValidationError: 3,
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


def default_author() -> str:
    """Return the author name writes use without ``--by``: ``local:<user>``, as the store does."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        user = "unknown"
    return f"local:{user}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class CliContext:
    """The global options, as every command sees them in ``ctx.obj``.

    Attributes:
        url: the store URL (``--store`` or ``$POLICYSTORE_URL``).
        json: print machine-readable JSON instead of tables.
        role: the role writes are made with (``--role``).
    """

    url: str
    json: bool
    role: Role

    def actor(self, by: str) -> Actor:
        """Return the principal a write is made for.

        Args:
            by: the author recorded in history (``--by``).

        Returns:
            ``Actor(by, role)``.
        """
        return Actor(by, self.role)

    def run(self, action: Callable[[PolicyStore], Awaitable[T]], *, live: bool = False, watch: bool = False) -> T:
        """Open the store, run ``action`` on it, and close the store.

        Args:
            action: the command's work, given the open store.
            live: the command needs the live store (writes, ``init``): fail with
                exit 5 when it cannot be reached instead of answering stale.
            watch: follow changes made by other processes (``watch``).

        Returns:
            What ``action`` returned.

        Raises:
            PolicyStoreError: as the action raised it; :class:`PolicyStoreGroup`
                turns it into its sentence and exit status.
        """

        async def body() -> T:
            store = await PolicyStore.open(self.url, watch=watch)
            try:
                if store.stale:
                    if live and store.last_error is not None:
                        raise store.last_error
                    self.warn_stale(store)
                return await action(store)
            finally:
                await store.close()

        return asyncio.run(body())

    @staticmethod
    def warn_stale(store: PolicyStore) -> None:
        """Print one line on stderr saying the answers do not come from the live store."""
        cause = _one_line(str(store.last_error)) if store.last_error else "The live store was not read."
        if store.source is Source.LAST_KNOWN_GOOD:
            layer = f"the last-known-good copy (version {store.snapshot().version})"
        else:
            layer = "the environment and the built-in defaults"
        click.echo(f"warning: {cause} Answering from {layer}; values may be stale.", err=True)

    def emit(self, human: str, data: Any) -> None:
        """Print ``data`` as JSON with ``--json``, else the ``human`` text.

        Args:
            human: the text for people.
            data: the JSON-ready data for programs.
        """
        click.echo(to_json(data) if self.json else human)


def write_options(*, expect_version: bool = True, reason_required: bool = True) -> Callable[[F], F]:
    """Add ``--by``, ``--reason`` and (optionally) ``--expect-version`` to a write command.

    Args:
        expect_version: add ``--expect-version N`` (compare-and-set).
        reason_required: a missing ``--reason`` is a usage error (exit 2); turn
            off for commands that only sometimes write, which check it themselves.

    Returns:
        The decorator.
    """

    def decorate(func: F) -> F:
        if expect_version:
            func = click.option(
                "--expect-version",
                type=click.IntRange(min=1),
                default=None,
                metavar="N",
                help="Write only if the store is at version N (else exit 4).",
            )(func)
        func = click.option(
            "--reason",
            required=reason_required,
            metavar="TEXT",
            help="Why the policy changes (recorded in history).",
        )(func)
        return click.option(
            "--by",
            default=default_author,
            show_default="local:$USER",
            metavar="NAME",
            help="Author recorded in history.",
        )(func)

    return decorate


class PolicyStoreGroup(click.Group):
    """A group that maps policystore errors to exit codes and loads some commands on first use.

    Args:
        lazy_commands: command name -> (``"module:attribute"``, one-line help).
            Their modules are imported only when the command runs or is asked
            for by name, so heavy dependencies (the web server) cost nothing
            elsewhere, and a missing module breaks only its own command.
        **attrs: the arguments of :class:`click.Group`.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, tuple[str, str]] | None = None, **attrs: Any) -> None:
        super().__init__(*args, **attrs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return the eager and the lazy command names, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command ``cmd_name``, importing a lazy one now.

        A lazy command whose module cannot be imported becomes a command that
        fails with a sentence naming the module and why, not a traceback.
        """
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy_commands:
            return command
        target, short_help = self.lazy_commands[cmd_name]
        module_name, _, attribute = target.partition(":")
        try:
            loaded = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            return _unavailable(cmd_name, target, short_help, exc)
        if not isinstance(loaded, click.Command):
            return _unavailable(cmd_name, target, short_help, TypeError(f"{target} is not a click command"))
        self.add_command(loaded, cmd_name)
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands in ``--help`` without importing the lazy ones."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
            else:
                rows.append((name, self.lazy_commands[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a policystore error becomes its message and exit status."""
        try:
            return super().invoke(ctx)
        except PolicyStoreError as exc:
            click.echo(_one_line(str(exc)), err=True)
            ctx.exit(exit_code_for(exc))


def _unavailable(name: str, target: str, short_help: str, exc: Exception) -> click.Command:
    module_name = target.partition(":")[0]
    message = f"The '{name}' command is not available: {target} cannot be loaded ({_one_line(str(exc))})."

    def fail() -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        help=f"{short_help}\n\nNot available: {module_name} cannot be imported.",
        short_help=short_help,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
