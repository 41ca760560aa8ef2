"""What every command shares: the global options as ``ctx.obj``, and the run of its work on the store.

Commands receive a :class:`CliContext` through :func:`pass_cli` and hand an
async function of the store to :meth:`CliContext.run`, which opens the store,
warns when answers are stale, and always closes it. The store URL is resolved
once, by :func:`store_url`. Errors of policystore become one plain sentence on
stderr and their class's exit code (with ``--json``, one JSON object on stderr:
see :mod:`policystore.cli.errors`); any other exception is a bug and keeps its
traceback. The command group itself, with the options every command shares, is
:class:`policystore.cli.group.PolicyStoreGroup`.

The options of a write (:mod:`policystore.cli.write_options`) leave ``--for``,
``--dry-run`` and ``--decisions`` here, and :meth:`CliContext.run` acts on
them: it refuses ``--for`` to a command that did not ask for its lifetime
(:meth:`CliContext.lifetime`), so a lifetime is never silently dropped, and
with ``--dry-run`` it runs the command inside
:func:`~policystore.store.previewing.previewing`, so its write answers a
preview instead of writing, and prints that preview. How the write itself is
made and reported is :mod:`policystore.cli.writes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import update_wrapper
from typing import Any, Concatenate, ParamSpec, TypeVar

import click

from policystore.cli.errors import CommandFailed, one_line
from policystore.cli.output import to_json
from policystore.errors import PolicyStoreError, PolicyValidationError, StoreUnavailableError
from policystore.model.previews import Preview
from policystore.model.roles import Actor, Role
from policystore.store.previewing import Previewed, previewing
from policystore.store.sources import Source
from policystore.store.store import PolicyStore
from policystore.store.urls import DEFAULT_URL

__all__ = ["CliContext", "pass_cli", "repairable", "store_url"]

T = TypeVar("T")
P = ParamSpec("P")

#: Where click's context says the command asked for its ``--for`` (see CliContext.lifetime).
_LIFETIME_TAKEN = "policystore.lifetime_taken"


def repairable(error: PolicyStoreError | None) -> bool:
    """Tell whether ``error`` says the newest stored version is invalid (not that the store is down).

    Only then may a whole-document write (``rollback``, ``import``) proceed: it
    replaces that version, which is how an invalid store is repaired. The store
    draws the same line (its refusal of such a version is caused by a
    ``ValueError``: a validation error or a document that is not JSON).
    """
    return isinstance(error, StoreUnavailableError) and isinstance(error.__cause__, ValueError)


def store_url(given: str | None) -> str:
    """Return the store URL a command uses: ``given`` (``--store``), else ``$POLICYSTORE_URL``, else the default.

    The one place the command line resolves it; an empty value counts as not given.

    Args:
        given: the ``--store`` option's value, or None when it was not given.

    Returns:
        The URL.
    """
    return given or os.environ.get("POLICYSTORE_URL") or DEFAULT_URL


@dataclass(frozen=True, slots=True)
class CliContext:
    """The global options, as every command sees them in ``ctx.obj``.

    Attributes:
        url: the store URL (see :func:`store_url`).
        json: print machine-readable JSON instead of tables.
        role: the role writes are made with (``--role``).
        dry_run: print what the command's write would do instead of writing (``--dry-run``).
        decisions: a decision log whose signals the dry run decides again (``--decisions FILE``).
        expires_in: the write's lifetime in seconds (``--for``), or None.
    """

    url: str
    json: bool
    role: Role
    dry_run: bool = False
    decisions: str | None = None
    expires_in: float | None = None

    @classmethod
    def of(cls, ctx: click.Context) -> CliContext:
        """Return the options in force for ``ctx``: the nearest ones set, after the command or before it.

        A command run on its own, outside the ``policystore`` group, gets the
        defaults (the URL of :func:`store_url`, text, admin).
        """
        found = ctx.find_object(cls)
        if found is not None:
            return found
        return cls(url=store_url(None), json=False, role=Role.ADMIN)

    def actor(self, by: str) -> Actor:
        """Return the principal a write is made for.

        Args:
            by: the author recorded in history (``--by``).

        Returns:
            ``Actor(by, role)``.
        """
        return Actor(by, self.role)

    def lifetime(self) -> float | None:
        """Return the write's lifetime (``--for``, in seconds) for the store's ``expires_in``, or None.

        A command that can give its write a lifetime asks for it here, before it
        runs; :meth:`run` refuses ``--for`` to a command that did not.
        """
        context = click.get_current_context(silent=True)
        if context is not None:
            context.meta[_LIFETIME_TAKEN] = True
        return self.expires_in

    def run(
        self,
        action: Callable[[PolicyStore], Awaitable[T]],
        *,
        live: bool = False,
        watch: bool = False,
        create: bool = False,
        repairs: bool = False,
        audits: bool = False,
    ) -> T:
        """Open the store, run ``action`` on it, and close the store.

        Args:
            action: the command's work, given the open store.
            live: the command needs the live store (writes, ``init``): fail with
                :class:`StoreUnavailableError` when it cannot be reached instead of
                answering stale.
            watch: follow changes made by other processes (``watch``).
            create: create the store when there is none (``init`` only); otherwise
                a missing store is a :class:`StoreUnavailableError` and nothing is written.
            repairs: the command replaces the whole document (``rollback``,
                ``import``), so it may run while the newest stored version is
                invalid: that is how such a store is repaired.
            audits: the command reads the stored history entries (``history``),
                which need no valid policy, so it also runs while the newest
                stored version is invalid, and says so on stderr.

        Returns:
            What ``action`` returned.

        Raises:
            PolicyStoreError: as the action raised it; :class:`PolicyStoreGroup`
                turns it into its sentence and exit status.
            click.exceptions.Exit: with ``--dry-run``, once the preview of the
                action's write is printed (status 0).
            click.UsageError: ``--for`` was given to a command that did not ask
                for it (:meth:`lifetime`); nothing was opened or written.
        """
        if self.decisions is not None and not self.dry_run:
            raise click.UsageError("--decisions FILE goes with --dry-run: it previews the change against that log.")
        context = click.get_current_context(silent=True)
        if self.expires_in is not None and not (context is not None and context.meta.get(_LIFETIME_TAKEN)):
            name = context.command_path if context is not None else "this command"
            message = f"--for gives a write a lifetime; '{name}' as given makes no write that can take one."
            raise click.UsageError(message)

        async def body() -> T:
            store = await PolicyStore.open(self.url, watch=watch, create=create)
            try:
                error = store.last_error
                if store.stale and live and error is not None and not self.dry_run:
                    if not ((repairs or audits) and repairable(error)):
                        raise error
                    what = "This write replaces it." if repairs else "Its entry is listed, marked (invalid)."
                    click.echo(f"warning: {one_line(str(error))} {what}", err=True)
                elif store.stale:
                    self.warn_stale(store)
                with previewing() if self.dry_run else contextlib.nullcontext():
                    return await action(store)
            except Previewed as done:
                raise Previewed(await self._with_decisions(done)) from None
            finally:
                await store.close()

        try:
            return asyncio.run(body())
        except Previewed as done:
            from policystore.cli.output_proposals import render_preview

            self.emit(render_preview(done.preview), done.preview.to_dict())
            raise click.exceptions.Exit(0) from None

    async def _with_decisions(self, done: Previewed) -> Preview:
        """The preview, with what it would do to the ``--decisions`` log when one was given."""
        if self.decisions is None:
            return done.preview
        from policystore.consumers.what_if import preview_decisions

        try:
            return await preview_decisions(done.preview, self.decisions)
        except FileNotFoundError:
            raise _invalid_log(f"There is no decision log at {self.decisions}.", self.decisions) from None
        except (OSError, ValueError) as exc:
            message = f"The decision log {self.decisions} cannot be read: {one_line(str(exc))}."
            raise _invalid_log(message, self.decisions) from exc

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


def _invalid_log(message: str, log: str) -> CommandFailed:
    # A log that cannot be read is bad input, as for 'policystore decisions'.
    return CommandFailed(message, exit_code=PolicyValidationError.exit_code, error="InvalidInput", log=log)


def pass_cli(command: Callable[Concatenate[CliContext, P], T]) -> Callable[P, T]:
    """Call ``command`` with the options in force (:meth:`CliContext.of`) as its first argument.

    Inside the ``policystore`` group that is the nearest ``ctx.obj``; a command
    run on its own gets the defaults.

    Args:
        command: the command's callback.

    Returns:
        The callback click calls.
    """

    def callback(*args: P.args, **kwargs: P.kwargs) -> T:
        return command(CliContext.of(click.get_current_context()), *args, **kwargs)

    return update_wrapper(callback, command)
