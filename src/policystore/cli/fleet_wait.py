"""``--wait SECONDS`` on every write command: the write, then the fleet's confirmation of it.

:func:`wait_option` is the one decorator a write command takes to offer it. The
wait itself runs inside the command's store session, right after the write, in
:func:`policystore.cli.writes.write` (which every write command makes its write
with): the option leaves the wait there, under
:data:`~policystore.cli.writes.AFTER_WRITE`. Once the command has printed its result, the decorator reports
the fleet: one line saying who confirmed, or, when a live member had not applied
the version when the wait ran out,
:class:`~policystore.errors.FleetIncompleteError` (exit 7) naming those members.
With ``--json`` the result on stdout carries the outcome as ``fleet`` and the
failure on stderr names the members as ``missing``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from policystore.cli.context import CliContext
from policystore.cli.writes import AFTER_WRITE, AfterWrite
from policystore.errors import FleetIncompleteError, StoreUnavailableError
from policystore.model.fleet import FleetAck
from policystore.store.fleet import MAX_WAIT
from policystore.store.store import PolicyStore

__all__ = ["Seconds", "wait_option"]

F = TypeVar("F", bound=Callable[..., Any])

#: Where the wait's outcome is kept in the click context's ``meta``.
_OUTCOME: Final = "policystore.fleet.outcome"


def _confirm(ctx: click.Context, wait: float) -> AfterWrite:
    async def confirm(store: PolicyStore, version: int) -> FleetAck | None:
        """Wait for the fleet to apply ``version``; a fleet that cannot be read is reported unconfirmed."""
        try:
            ack = await store.wait_for_fleet(version, timeout=wait)
        except StoreUnavailableError as exc:
            ctx.meta[_OUTCOME] = FleetIncompleteError(version, wait, [], unread=str(exc))
            return None
        ctx.meta[_OUTCOME] = ack
        return ack

    return confirm


def wait_option(command: F) -> F:
    """Give a write command ``--wait SECONDS``: after the write, wait for every live member of the fleet to apply it.

    Put it next to the command's other options; the command's callback does not
    see the value. The command must make its write with
    :func:`policystore.cli.writes.write`.

    Args:
        command: the command's callback.

    Returns:
        The callback, taking the option.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, wait: float | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if wait is not None and CliContext.of(ctx).dry_run:
            raise click.UsageError("--wait goes with a write, and a dry run writes no version for the fleet to apply.")
        if wait is not None:
            ctx.meta[AFTER_WRITE] = _confirm(ctx, wait)
        result = command(*args, **kwargs)
        outcome = ctx.meta.pop(_OUTCOME, None)
        if isinstance(outcome, FleetIncompleteError):
            raise outcome
        if isinstance(outcome, FleetAck):
            outcome.check(wait if wait is not None else 0.0)
            if not CliContext.of(ctx).json:
                took = f" (confirmed in {outcome.waited:.3f} s)" if outcome.acked else ""
                click.echo(f"{outcome.summary()[:-1]}{took}.")
        return result

    return click.option(
        "--wait",
        type=Seconds(),
        default=None,
        metavar="SECONDS",
        help=(
            "After the write, wait up to SECONDS for every live member of the fleet to apply it "
            f"(else exit {FleetIncompleteError.exit_code}, naming those that have not)."
        ),
    )(wrapper)  # type: ignore[return-value]


class Seconds(click.ParamType[float]):
    """A number of seconds from 0 to :data:`~policystore.store.fleet.MAX_WAIT`: NaN and infinities are refused."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Return ``value`` as seconds, or fail as a usage error naming the option."""
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT:
            self.fail(f"{value!r} is not a number of seconds from 0 to {MAX_WAIT:g}.", param, ctx)
        return seconds
