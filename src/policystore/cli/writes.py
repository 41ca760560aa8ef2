"""How a write command makes its write: whether it wrote a version, then what an option runs after it.

Every write command makes its write with :func:`write`, inside its store
session (:meth:`policystore.cli.context.CliContext.run`). It answers a
:class:`Written`: the policy the store holds after the write and whether a
version was written. Right after the write, and in the same session, it runs
what an option left under :data:`AFTER_WRITE` in the click context's ``meta``
(``--wait``: :func:`policystore.cli.fleet_wait.wait_option`). A command that
does not write through :func:`write` (``approve``, whose approval may apply
nothing) runs that hook itself with :func:`after_write`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import click

from policystore.model.fleet import FleetAck
from policystore.model.policy import Policy
from policystore.store.returns import RETURN_AUTHOR
from policystore.store.store import PolicyStore

__all__ = ["AFTER_WRITE", "AfterWrite", "Written", "after_write", "write"]

#: What a write command runs after its write, inside the same store session (``--wait``:
#: :func:`policystore.cli.fleet_wait.wait_option`): given the store and the version the write left.
AfterWrite = Callable[[PolicyStore, int], Awaitable[FleetAck | None]]
#: Where an option puts its :data:`AfterWrite` in the click context's ``meta``.
AFTER_WRITE: Final = "policystore.after_write"


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
