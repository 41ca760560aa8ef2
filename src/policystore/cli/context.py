"""What every command shares: the global options as ``ctx.obj``, the store runner, the write options.

Commands receive a :class:`CliContext` through :func:`pass_cli` and hand an
async function of the store to :meth:`CliContext.run`, which opens the store,
warns when answers are stale, and always closes it. The store URL is resolved
once, by :func:`store_url`. Errors of policystore become one plain sentence on
stderr and their class's exit code (with ``--json``, one JSON object on stderr:
see :mod:`policystore.cli.errors`); any other exception is a bug and keeps its
traceback. The command group itself, with the options every command shares, is
:class:`policystore.cli.group.PolicyStoreGroup`.

``--for DURATION`` (``90s``, ``30m``, ``2h``, ``1h30m``) gives a write a
lifetime. It comes with :func:`write_options`, so every write command takes
it; a command hands it to the store with ``expires_in=obj.lifetime()``, and a
command that never asks for it refuses ``--for`` before it opens the store
(see :meth:`CliContext.run`), so a lifetime is never silently dropped.

Every write command takes ``--dry-run`` (and, with it, ``--decisions FILE``)
through :func:`write_options` (or :func:`dry_run_options`): the command runs as
it would, inside :func:`~policystore.store.previewing.previewing`, so its write
answers a preview instead of writing, and :meth:`CliContext.run` prints that
preview. A command need not know of dry runs for them to apply to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import update_wrapper
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import click

from policystore.cli.errors import CommandFailed, one_line
from policystore.cli.output import to_json
from policystore.errors import (
    FieldError,
    PolicyStoreError,
    PolicyValidationError,
    StoreUnavailableError,
    VersionConflictError,
)
from policystore.model.fleet import FleetAck
from policystore.model.numbers import short_repr
from policystore.model.overrides import lifetime_seconds
from policystore.model.policy import Policy
from policystore.model.previews import Preview
from policystore.model.roles import Actor, Role
from policystore.store.identity import local_author
from policystore.store.previewing import Previewed, previewing
from policystore.store.returns import RETURN_AUTHOR
from policystore.store.sources import Source
from policystore.store.store import PolicyStore
from policystore.store.urls import DEFAULT_URL

__all__ = [
    "AFTER_WRITE",
    "LIFETIME_OPTION",
    "AfterWrite",
    "CliContext",
    "Written",
    "after_write",
    "default_author",
    "dry_run_options",
    "parse_duration",
    "pass_cli",
    "repairable",
    "store_url",
    "write",
    "write_options",
]

T = TypeVar("T")

#: What a write command runs after its write, inside the same store session (``--wait``:
#: :func:`policystore.cli.fleet_wait.wait_option`): given the store and the version the write left.
AfterWrite = Callable[[PolicyStore, int], Awaitable[FleetAck | None]]
#: Where an option puts its :data:`AfterWrite` in the click context's ``meta``.
AFTER_WRITE: Final = "policystore.after_write"
F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")

#: One part of a duration: a number and its unit.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Where click's context says the command asked for its ``--for`` (see CliContext.lifetime).
_LIFETIME_TAKEN = "policystore.lifetime_taken"


def parse_duration(text: str) -> float:
    """Return the seconds a ``--for`` duration stands for: ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``.

    Args:
        text: the duration as typed.

    Returns:
        The seconds, above 0 and at most 31 days.

    Raises:
        PolicyValidationError: not such a duration, not above 0, or longer than 31 days.
    """
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        message = f"is not a duration such as 90s, 30m, 2h or 1h30m (got {short_repr(text)})"
        raise PolicyValidationError([FieldError("--for", message)])
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return lifetime_seconds(seconds, name="--for", shown=text)


def default_author() -> str:
    """Return the author name writes use without ``--by``: ``local:<user>``, as the store does."""
    return local_author()


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
class Written:
    """What a write command did: the policy the store holds after it, and whether it wrote a version.

    Attributes:
        policy: the policy after the write (the current one when nothing changed).
        changed: False when the write changed nothing, so no version was written.
        fleet: how far the fleet got with the version, when the command was given ``--wait``.
    """

    policy: Policy
    changed: bool
    fleet: FleetAck | None = None

    @property
    def until(self) -> str:
        """`` until <end>`` when the write made an expiring change, else ``""``: for the sentence a command prints."""
        made = [change for change in self.policy.overrides if change.version == self.policy.version]
        return f" until {made[0].until.isoformat()}" if made and self.changed else ""

    def data(self, **more: Any) -> dict[str, Any]:
        """Return the document with ``changed``, ``more`` and (after ``--wait``) ``fleet``, as ``--json`` prints it."""
        fleet = {} if self.fleet is None else {"fleet": self.fleet.to_dict()}
        return {**self.policy.document(), "changed": self.changed, **more, **fleet}


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


async def write(store: PolicyStore, change: Callable[[], Awaitable[Policy]]) -> Written:
    """Make a write of ``store`` and tell whether it wrote a version.

    A write that would change nothing writes nothing and returns the current
    policy, so its version is the one the store held before. Then what an
    option put under :data:`AFTER_WRITE` runs: with ``--wait`` (see
    :func:`policystore.cli.fleet_wait.wait_option`), the wait for the fleet to
    apply that version.

    Args:
        store: the open store.
        change: makes the write (``lambda: store.switch_mode(...)``).

    Returns:
        The policy after the write, whether a version was written, and the fleet's outcome after ``--wait``.
    """
    before = await store.backend.current_version()
    policy = await change()
    fleet = await after_write(store, policy.version)
    # A write that found an expiring change past its end records the return first (as the store):
    # that version alone is no change of the command's.
    changed = policy.version != before and policy.updated_by != RETURN_AUTHOR
    return Written(policy, changed=changed, fleet=fleet)


async def after_write(store: PolicyStore, version: int | None) -> FleetAck | None:
    """Run what an option put under :data:`AFTER_WRITE` (``--wait``) for ``version``; None without one.

    Args:
        store: the open store the write was made with.
        version: the version the write left; None when it wrote none (an approval that applied nothing).

    Returns:
        The fleet's outcome after ``--wait``, else None.
    """
    ctx = click.get_current_context(silent=True)
    after: AfterWrite | None = None if ctx is None else ctx.meta.get(AFTER_WRITE)
    return None if after is None or version is None else await after(store, version)


def _set_dry_run(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.obj = dataclasses.replace(CliContext.of(ctx), dry_run=True)
    return value


def _set_decisions(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.obj = dataclasses.replace(CliContext.of(ctx), decisions=value)
    return value


def _require_reason(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Required unless the write is only previewed (--dry-run is eager: it is read first).
    if value is None and not CliContext.of(ctx).dry_run:
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


def dry_run_options(func: F) -> F:
    """Add ``--dry-run`` and ``--decisions FILE`` to a write command (``write_options`` adds them too).

    Neither reaches the command: they are kept in its :class:`CliContext`, and
    :meth:`CliContext.run` turns the command's write into a preview.

    Args:
        func: the command's callback.

    Returns:
        The callback with the two options.
    """
    func = click.option(
        "--decisions",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        default=None,
        expose_value=False,
        callback=_set_decisions,
        help="With --dry-run: decide the signals of this decision log again under the change and count what differs.",
    )(func)
    return click.option(
        "--dry-run",
        is_flag=True,
        is_eager=True,
        expose_value=False,
        callback=_set_dry_run,
        help="Write nothing; print what the change would do, whether it raises risk and who may make it.",
    )(func)


def _lifetime_given(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj = dataclasses.replace(CliContext.of(ctx), expires_in=parse_duration(value))


#: ``--for DURATION``: shared by every write command (see :func:`write_options`).
LIFETIME_OPTION: Final = click.option(
    "--for",
    "lifetime_text",
    default=None,
    metavar="DURATION",
    expose_value=False,
    callback=_lifetime_given,
    help="Make the change for a while only (90s, 30m, 2h, 1h30m; at most 31 days): then every process "
    "returns to the values from before it.",
)


def write_options(
    *, expect_version: bool = True, reason_required: bool = True, lifetime: bool = True
) -> Callable[[F], F]:
    """Add ``--by``, ``--reason``, ``--for``, ``--dry-run``, ``--decisions`` and (optionally) ``--expect-version``.

    Args:
        expect_version: add ``--expect-version N`` (compare-and-set).
        reason_required: a missing ``--reason`` is a usage error (exit 2), unless
            the write is a ``--dry-run``; turn off for commands that only
            sometimes write, which check it themselves.
        lifetime: add ``--for DURATION`` (a write that expires); the command
            passes ``expires_in=obj.lifetime()`` to the store. Off for writes
            of a whole document (``rollback``, ``import``).

    Returns:
        The decorator.
    """

    def decorate(func: F) -> F:
        func = dry_run_options(func)
        if lifetime:
            func = LIFETIME_OPTION(func)
        if expect_version:
            func = click.option(
                "--expect-version",
                type=click.IntRange(min=1),
                default=None,
                metavar="N",
                help=f"Write only if the store is at version N (else exit {VersionConflictError.exit_code}).",
            )(func)
        func = click.option(
            "--reason",
            metavar="TEXT",
            callback=_require_reason if reason_required else None,
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
