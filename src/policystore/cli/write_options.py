"""The options of every write command: who, why, for how long, only a preview, and at which version.

:func:`write_options` adds them all (``--by``, ``--reason``, ``--for``,
``--dry-run``, ``--decisions`` and ``--expect-version``), :func:`dry_run_options`
only the two of a preview. ``--by``, ``--reason`` and ``--expect-version`` reach
the command as arguments; the others never do: their callbacks keep them in the
command's :class:`~policystore.cli.context.CliContext`, which acts on them.

``--for DURATION`` (``90s``, ``30m``, ``2h``, ``1h30m``) gives a write a
lifetime, read by :func:`parse_duration`. A command hands it to the store with
``expires_in=obj.lifetime()``, and a command that never asks for it refuses
``--for`` before it opens the store (see
:meth:`~policystore.cli.context.CliContext.run`), so a lifetime is never
silently dropped.

``--dry-run`` (and, with it, ``--decisions FILE``) makes
:meth:`~policystore.cli.context.CliContext.run` run the command as it would,
inside :func:`~policystore.store.previewing.previewing`, so its write answers a
preview instead of writing, and print that preview. A command need not know of
dry runs for them to apply to it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from policystore.cli.context import CliContext
from policystore.errors import FieldError, PolicyValidationError, VersionConflictError
from policystore.model.numbers import short_repr
from policystore.model.overrides import lifetime_seconds
from policystore.store.identity import local_author

__all__ = ["LIFETIME_OPTION", "default_author", "dry_run_options", "parse_duration", "write_options"]

F = TypeVar("F", bound=Callable[..., Any])

#: One part of a duration: a number and its unit.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
