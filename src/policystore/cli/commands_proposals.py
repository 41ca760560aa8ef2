"""Proposal commands: ``propose``, ``proposals``, ``approve`` and ``reject``.

While ``change_control.approvals_required`` is 2 or more, a change that raises
risk is refused as one write (exit 6) and made through a proposal that enough
admins approve; ``--role`` and ``--by`` say who acts, as for every write.
"""

from __future__ import annotations

import click

from policystore.cli.context import CliContext, pass_cli
from policystore.cli.documents import clip, load_yaml
from policystore.cli.fleet_wait import wait_option
from policystore.cli.output_proposals import proposal_line, render_proposals
from policystore.cli.write_options import default_author, dry_run_options, write_options
from policystore.cli.writes import after_write
from policystore.model.fleet import FleetAck
from policystore.model.proposals import DEFAULT_LIFETIME, Proposal, ProposalStatus
from policystore.store.store import PolicyStore

__all__ = ["approve", "proposals", "propose", "reject"]


def _changes(assignments: tuple[str, ...]) -> dict[str, object]:
    """Read ``PATH=VALUE`` arguments; each VALUE as YAML, as ``set`` reads it."""
    changes: dict[str, object] = {}
    for assignment in assignments:
        path, sep, value = assignment.partition("=")
        if not sep or not path.strip():
            raise click.UsageError(f"{clip(assignment)} is not PATH=VALUE (such as modes.NORMAL.max_leverage=6).")
        changes[path.strip()] = load_yaml(value, where=path.strip(), what=f"the value {clip(value)}")
    return changes


@click.command(short_help="Propose a change for other admins to approve.")
@click.argument("assignments", metavar="PATH=VALUE...", nargs=-1, required=True)
@click.option(
    "--lifetime",
    type=click.FloatRange(min=1, max=7 * 24 * 3600),
    default=DEFAULT_LIFETIME,
    show_default=True,
    metavar="SECONDS",
    help="How long the proposal waits for its approvals.",
)
@write_options(expect_version=False)
@pass_cli
def propose(obj: CliContext, *, assignments: tuple[str, ...], lifetime: float, by: str, reason: str) -> None:
    """Propose PATH=VALUE changes as one proposal; the proposer counts as the first approval when an admin.

    \b
    Needed while change_control.approvals_required is 2 or more for a change
    that raises risk. A proposal that already has the approvals it needs (a
    change that only tightens, or an admin's while one approval is enough) is
    applied at once. With --for, the change expires that long after the
    approval that applies it.

    \b
    Example:
      policystore propose modes.NORMAL.max_leverage=6 --reason "event window" --by ada
    """  # noqa: D301 - click reads \b as "keep these lines as written"
    changes = _changes(assignments)
    expires_in = obj.lifetime()

    async def action(store: PolicyStore) -> Proposal:
        return await store.propose(
            changes, reason=reason, expires_in=expires_in, lifetime=lifetime, actor=obj.actor(by)
        )

    proposal = obj.run(action, live=True)
    obj.emit(proposal_line(proposal), proposal.to_dict())


@click.command(name="proposals", short_help="List proposals, newest first.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in ProposalStatus]),
    default=None,
    help="Only proposals in this state.",
)
@pass_cli
def proposals(obj: CliContext, *, status: str | None) -> None:
    """List proposals of every status, newest first: id, status, approvals, who, when it expires, what it changes."""

    async def action(store: PolicyStore) -> list[Proposal]:
        return await store.proposals()

    found = [p for p in obj.run(action, live=True) if status is None or p.status.value == status]
    obj.emit(render_proposals(found), [p.to_dict() for p in found])


@click.command(short_help="Approve a proposal; the last approval needed applies it.")
@click.argument("proposal_id", metavar="ID")
@click.option(
    "--by", default=default_author, show_default="local:$USER", metavar="NAME", help="Approver recorded in history."
)
@dry_run_options
@wait_option
@pass_cli
def approve(obj: CliContext, *, proposal_id: str, by: str) -> None:
    """Approve proposal ID as an admin; the approval that brings enough applies it as one version.

    Refused (exit 4) when the approver approved it already or it is not
    pending: applied, rejected, expired, or stale (a path it changes was
    changed after it was made). --dry-run previews what applying it would do;
    --wait waits for the fleet to apply the version an approval applies.
    """

    async def action(store: PolicyStore) -> tuple[Proposal, FleetAck | None]:
        proposal = await store.approve(proposal_id, actor=obj.actor(by))
        return proposal, await after_write(store, proposal.applied_version)

    proposal, fleet = obj.run(action, live=True)
    data = proposal.to_dict() | ({} if fleet is None else {"fleet": fleet.to_dict()})
    obj.emit(f"Approved by {by}. {proposal_line(proposal)}", data)


@click.command(short_help="Reject a pending proposal.")
@click.argument("proposal_id", metavar="ID")
@write_options(expect_version=False, lifetime=False)
@pass_cli
def reject(obj: CliContext, *, proposal_id: str, by: str, reason: str) -> None:
    """Reject pending proposal ID (any admin, or its proposer); nothing is written to the policy."""
    given = reason if reason is not None or not obj.dry_run else "(reason to be given)"

    async def action(store: PolicyStore) -> Proposal:
        return await store.reject(proposal_id, reason=given, actor=obj.actor(by), dry_run=obj.dry_run)

    proposal = obj.run(action, live=True)
    if obj.dry_run:
        obj.emit(f"Dry run: proposal {proposal.id} would be rejected; nothing recorded.", proposal.to_dict())
        return
    obj.emit(proposal_line(proposal), proposal.to_dict())
