"""``policystore fleet``: the processes that follow the store, the version each runs, and how long since each was heard.

The command opens the store without following it, so it is no member itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from policystore.cli.context import CliContext, pass_cli
from policystore.cli.output import table
from policystore.model.fleet import DROP_AFTER, LOST_AFTER, FleetMember, FleetStatus
from policystore.redaction import redact
from policystore.store.store import PolicyStore

__all__ = ["fleet", "render_fleet"]


def _heard(seconds: float) -> str:
    if seconds < 60:  # noqa: PLR2004 - a minute
        return f"{seconds:.1f} s ago"
    return f"{seconds / 60:.1f} min ago"


def _note(member: FleetMember) -> str:
    notes = []
    if member.stale:
        notes.append("stale: answering from a fallback")
    if member.error:
        notes.append(f"cannot report: {member.error}")
    return "; ".join(notes) or "-"


def render_fleet(url: str, version: int, members: Sequence[FleetMember]) -> str:
    """Return the fleet as a table under one line that counts it.

    Args:
        url: the store's URL, safe to show.
        version: the store's current version.
        members: the members (see :meth:`PolicyStore.fleet`).

    Returns:
        The text.
    """
    if not members:
        return (
            f"No process follows {url} (version {version}): a store opened to follow changes "
            "(watch=True, the default, as servers and traders open it) joins its fleet."
        )
    lost = sum(m.status is FleetStatus.LOST for m in members)
    behind = sum(m.status is FleetStatus.LIVE and m.lag_versions > 0 for m in members)
    head = (
        f"{url} is at version {version}: {len(members)} member{'s' if len(members) != 1 else ''}, "
        f"{len(members) - lost} live, {lost} lost (not heard for {LOST_AFTER:g} s; dropped after "
        f"{DROP_AFTER / 60:g} min), {behind} behind."
    )
    rows = [
        [
            m.name,
            m.host,
            str(m.pid),
            str(m.version),
            str(m.lag_versions),
            _heard(m.lag_seconds),
            m.status.value.upper() if m.status is FleetStatus.LOST else m.status.value,
            _note(m),
        ]
        for m in members
    ]
    headers = ["name", "host", "pid", "version", "behind", "last heard", "status", "note"]
    return head + "\n\n" + table(headers, rows)


@click.command(short_help="List the processes that follow the store and the version each runs.")
@pass_cli
def fleet(obj: CliContext) -> None:
    """List every process that follows the store: its name, host and pid, the version it has
    applied, how many versions it is behind, when it was last heard, and whether it is lost.

    \b
    A member not heard from for 5 s is lost (it holds up no --wait); one not heard
    from for 5 minutes is dropped from the list. Heard times are measured from the
    member's own clock: keep the hosts' clocks in step.
    """  # noqa: D205, D301 - click reads \\b as "keep these lines as written"; the summary runs two lines

    async def action(store: PolicyStore) -> tuple[int, list[FleetMember]]:
        members = await store.fleet()
        return await store.backend.current_version(), members

    version, members = obj.run(action, live=True)
    url = redact(obj.url)
    data: dict[str, Any] = {"url": url, "version": version, "members": [m.to_dict() for m in members]}
    obj.emit(render_fleet(url, version, members), data)
