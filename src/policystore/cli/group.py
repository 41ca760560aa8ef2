"""The ``policystore`` command group: options every command shares, failures as exit codes, lazy commands.

``--store``, ``--json`` and ``--role`` are accepted before the command and after
it (``policystore --json show`` and ``policystore show --json``); given after,
they win. A failure is reported once, at the top: one sentence on stderr, or
with ``--json`` one JSON object (see :mod:`policystore.cli.errors`).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import click

from policystore.cli.context import CliContext
from policystore.cli.errors import EXIT_OK, EXIT_OTHER, PolicyStoreFailure, json_requested, one_line, report
from policystore.errors import PolicyStoreError
from policystore.model.roles import Role

__all__ = ["PolicyStoreGroup", "add_shared_options"]

C = TypeVar("C", bound=click.Command)

#: Extras of the package and the modules each one brings, for the sentence a missing one gets.
_EXTRAS: Final = {
    "server": ("fastapi", "starlette", "uvicorn", "prometheus_client"),
    "plot": ("matplotlib",),
}


def _override(field: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            return value
        current = CliContext.of(ctx)
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


def add_shared_options(command: C) -> C:
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
        Commands read ``--json`` from their :class:`CliContext`; a failure reads it
        from the arguments, because click may refuse them (a bad value before
        ``--json``) before the option is parsed.
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
