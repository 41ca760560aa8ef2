"""What every command shares: the global options, the exit-code table, the store runner, lazy commands.

Commands receive a :class:`CliContext` (``ctx.obj``) and hand an async function
of the store to :meth:`CliContext.run`, which opens the store, warns when answers
are stale, and always closes it. Errors of policystore become one plain sentence
on stderr and an exit code from :data:`EXIT_CODES` (with ``--json``, one JSON
object on stderr: see :mod:`policystore.cli.errors`); any other exception is a
bug and keeps its traceback.

``--store``, ``--json`` and ``--role`` are accepted before the command and after
it (``policystore --json show`` and ``policystore show --json``); given after,
they win.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import click

from policystore.cli.errors import (
    EXIT_CODES,
    EXIT_OK,
    EXIT_OTHER,
    EXIT_USAGE,
    PolicyStoreFailure,
    exit_code_for,
    json_requested,
    one_line,
    report,
)
from policystore.cli.output import to_json
from policystore.errors import PolicyStoreError, StoreUnavailableError
from policystore.model.policy import Policy
from policystore.model.roles import Actor, Role
from policystore.store.sources import Source
from policystore.store.store import PolicyStore
from policystore.store.urls import DEFAULT_URL

__all__ = [
    "EXIT_CODES",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_USAGE",
    "CliContext",
    "PolicyStoreGroup",
    "Written",
    "add_shared_options",
    "default_author",
    "exit_code_for",
    "repairable",
    "write",
    "write_options",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Extras of the package and the modules each one brings, for the sentence a missing one gets.
_EXTRAS: Final = {
    "server": ("fastapi", "starlette", "uvicorn", "prometheus_client"),
    "plot": ("matplotlib",),
}


def default_author() -> str:
    """Return the author name writes use without ``--by``: ``local:<user>``, as the store does."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        user = "unknown"
    return f"local:{user}"


def repairable(error: PolicyStoreError | None) -> bool:
    """Tell whether ``error`` says the newest stored version is invalid (not that the store is down).

    Only then may a whole-document write (``rollback``, ``import``) proceed: it
    replaces that version, which is how an invalid store is repaired. The store
    draws the same line (its refusal of such a version is caused by a
    ``ValueError``: a validation error or a document that is not JSON).
    """
    return isinstance(error, StoreUnavailableError) and isinstance(error.__cause__, ValueError)


@dataclass(frozen=True, slots=True)
class Written:
    """What a write command did: the policy the store holds after it, and whether it wrote a version.

    Attributes:
        policy: the policy after the write (the current one when nothing changed).
        changed: False when the write changed nothing, so no version was written.
    """

    policy: Policy
    changed: bool

    def data(self, **more: Any) -> dict[str, Any]:
        """Return the document with ``changed`` (and ``more``), as ``--json`` prints it."""
        return {**self.policy.document(), "changed": self.changed, **more}


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

    def run(
        self,
        action: Callable[[PolicyStore], Awaitable[T]],
        *,
        live: bool = False,
        watch: bool = False,
        create: bool = False,
        repairs: bool = False,
    ) -> T:
        """Open the store, run ``action`` on it, and close the store.

        Args:
            action: the command's work, given the open store.
            live: the command needs the live store (writes, ``init``): fail with
                exit 5 when it cannot be reached instead of answering stale.
            watch: follow changes made by other processes (``watch``).
            create: create the store when there is none (``init`` only); otherwise
                a missing store is an error (exit 5) and nothing is written.
            repairs: the command replaces the whole document (``rollback``,
                ``import``), so it may run while the newest stored version is
                invalid: that is how such a store is repaired.

        Returns:
            What ``action`` returned.

        Raises:
            PolicyStoreError: as the action raised it; :class:`PolicyStoreGroup`
                turns it into its sentence and exit status.
        """

        async def body() -> T:
            store = await PolicyStore.open(self.url, watch=watch, create=create)
            try:
                error = store.last_error
                if store.stale and live and error is not None:
                    if not (repairs and repairable(error)):
                        raise error
                    click.echo(f"warning: {one_line(str(error))} This write replaces it.", err=True)
                elif store.stale:
                    self.warn_stale(store)
                return await action(store)
            finally:
                await store.close()

        return asyncio.run(body())

    @staticmethod
    def warn_stale(store: PolicyStore) -> None:
        """Print one line on stderr saying the answers do not come from the live store."""
        cause = one_line(str(store.last_error)) if store.last_error else "The live store was not read."
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


async def write(store: PolicyStore, change: Callable[[], Awaitable[Policy]]) -> Written:
    """Make a write of ``store`` and tell whether it wrote a version.

    A write that would change nothing writes nothing and returns the current
    policy, so its version is the one the store held before.

    Args:
        store: the open store.
        change: makes the write (``lambda: store.switch_mode(...)``).

    Returns:
        The policy after the write, and whether a version was written.
    """
    before = await store.backend.current_version()
    policy = await change()
    return Written(policy, changed=policy.version != before)


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


def _context_of(ctx: click.Context) -> CliContext:
    found = ctx.find_object(CliContext)
    if found is not None:
        return found
    # A command run on its own, outside the policystore group.
    return CliContext(url=os.environ.get("POLICYSTORE_URL") or DEFAULT_URL, json=False, role=Role.ADMIN)


def _override(field: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            return value
        current = _context_of(ctx)
        if field == "url":
            ctx.obj = dataclasses.replace(current, url=str(value))
        elif field == "json":
            ctx.obj = dataclasses.replace(current, json=True)
        else:
            ctx.obj = dataclasses.replace(current, role=Role(value))
        return value

    return callback


def _shared_options() -> list[click.Option]:
    return [
        click.Option(
            ["--store", "shared_store"],
            default=None,
            metavar="URL",
            expose_value=False,
            callback=_override("url"),
            help="Store URL, as the global --store (which this overrides).",
        ),
        click.Option(
            ["--json", "shared_json"],
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_override("json"),
            help="Print machine-readable JSON (errors too, on stderr).",
        ),
        click.Option(
            ["--role", "shared_role"],
            type=click.Choice([r.value for r in Role]),
            default=None,
            expose_value=False,
            callback=_override("role"),
            help="Role writes are made with, as the global --role.",
        ),
    ]


def add_shared_options(command: click.Command) -> click.Command:
    """Let ``command`` (and, for a group, its commands) take ``--store``, ``--json`` and ``--role`` too.

    An option the command already has of its own (``serve --store``) is left as it is.

    Args:
        command: the command.

    Returns:
        The same command.
    """
    taken = {name for param in command.params for name in param.opts}
    command.params.extend(option for option in _shared_options() if not taken.intersection(option.opts))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_shared_options(sub)
    return command


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

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Add ``cmd``, with the options every command shares (see :func:`add_shared_options`)."""
        super().add_command(add_shared_options(cmd), name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return the eager and the lazy command names, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command ``cmd_name``, importing a lazy one now.

        A lazy command whose module cannot be imported becomes a command that
        fails with a sentence naming the module and why (and, for an optional
        dependency, the extra that installs it), not a traceback.
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
            raise PolicyStoreFailure(exc) from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; report a failure as one sentence (or, with ``--json``, one JSON object).

        Click's own standalone handling prints failures as text; this one prints
        them as JSON when ``--json`` is among the arguments, wherever it stands.
        """
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            report(exc, as_json=json_requested(argv))
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_OTHER)
        # Without standalone handling click returns the status of an explicit exit, or the command's result.
        sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK)


def _unavailable(name: str, target: str, short_help: str, exc: Exception) -> click.Command:
    module_name = target.partition(":")[0]
    missing = getattr(exc, "name", None) or ""
    extra = next((e for e, modules in _EXTRAS.items() if missing.partition(".")[0] in modules), None)
    if extra is not None:
        message = (
            f"The '{name}' command needs the {extra} extra, which is not installed "
            f"({missing} is missing): pip install 'policystore[{extra}]'."
        )
    else:
        message = f"The '{name}' command is not available: {target} cannot be loaded ({one_line(str(exc))})."

    def fail() -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        help=f"{short_help}\n\nNot available: {module_name} cannot be imported.",
        short_help=short_help,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
