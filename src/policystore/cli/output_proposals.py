"""How the command line shows a write's preview (``--dry-run``) and proposals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from policystore.cli.output import clipped, table, value_text
from policystore.model.previews import DecisionImpact, Preview
from policystore.model.proposals import Proposal, ProposalStatus

__all__ = ["proposal_line", "render_decision_impact", "render_preview", "render_proposals"]

#: The longest a value is shown in a preview's table.
_VALUE_WIDTH: Final = 40


def _shown(value: object) -> str:
    return clipped(value_text(value), _VALUE_WIDTH)


def render_preview(preview: Preview) -> str:
    """Return what a write would do, as the lines ``--dry-run`` prints.

    Args:
        preview: the write's preview.

    Returns:
        A heading, the values that would change (those that raise risk marked),
        who may make the change, and what it would do to a decision log.
    """
    source = "this process's copy (the store cannot be reached)" if preview.stale else "the store"
    lines = [f"Dry run: nothing written. {preview.action[:1].upper()}{preview.action[1:]} on version "]
    lines[0] += f"{preview.base_version} of {source}:"
    if not preview.changed:
        lines.append("It changes nothing: no version would be written.")
    else:
        raised = set(preview.raises_risk)
        rows = [
            [c.path, _shown(c.old), _shown(c.new), "raises risk" if c.path in raised else ""] for c in preview.changes
        ]
        lines.append(table(["path", "now", "after", ""], rows))
    lines.append(_who(preview))
    if preview.refusal is not None:
        lines.append(f"Refused as one write: {preview.refusal}")
    if preview.decisions is not None:
        lines.append(render_decision_impact(preview.decisions))
    return "\n".join(lines)


def _who(preview: Preview) -> str:
    if not preview.raises_risk:
        needs = "an admin" if preview.approvals_required else "an operator (it raises no risk)"
        return f"Needs {needs}."
    raised = ", ".join(preview.raises_risk[:3]) + (" and more" if len(preview.raises_risk) > 3 else "")  # noqa: PLR2004
    if preview.proposal_required:
        return (
            f"Raises risk ({raised}): needs {preview.approvals_required} admins to agree; "
            "propose it with 'policystore propose' for them to approve."
        )
    return f"Raises risk ({raised}): needs an admin."


def render_decision_impact(impact: DecisionImpact) -> str:
    """Return what a change would do to a decision log's signals, as counts by old -> new reason.

    Args:
        impact: the figures.

    Returns:
        The lines.
    """
    skipped = f" ({impact.skipped} records held no signal to decide)" if impact.skipped else ""
    head = (
        f"Decision log {impact.log}: {impact.signals} signals decided again{skipped}; "
        f"{impact.changed} would be decided otherwise, {impact.resized} accepted with another size "
        f"({impact.reproduced} of {impact.signals} decided as recorded before the change)."
    )
    lines = [head]
    lines += [f"  {count:>5}  {pair}" for pair, count in impact.by_reason.items()]
    for example in impact.examples:
        lines.append(
            f"  e.g. {example['time']} {example['symbol']} {example['side']} ({example['strategy']}): "
            f"{example['old']} -> {example['new']}: {example['new_detail']}"
        )
    return "\n".join(lines)


def proposal_line(proposal: Proposal) -> str:
    """Return where one proposal stands, as one sentence.

    Args:
        proposal: the proposal.

    Returns:
        The sentence.
    """
    approvers = ", ".join(proposal.approved_by) or "none yet"
    status = proposal.status
    if status is ProposalStatus.APPLIED:
        return f"Proposal {proposal.id} is applied as version {proposal.applied_version} (approved by {approvers})."
    if status is ProposalStatus.REJECTED:
        return f"Proposal {proposal.id} is rejected by {proposal.decided_by}: {proposal.decision_reason}"
    if status is not ProposalStatus.PENDING:
        return f"Proposal {proposal.id} is {status.value}."
    missing = proposal.approvals_missing
    more = f"{missing} more admin{'s' if missing > 1 else ''} must approve it with 'policystore approve {proposal.id}'"
    return (
        f"Proposal {proposal.id} is pending: {len(proposal.approved_by)} of {proposal.approvals_required} "
        f"approvals ({approvers}); {more}."
    )


def render_proposals(proposals: Sequence[Proposal]) -> str:
    """Return proposals as a table, newest first.

    Args:
        proposals: the proposals.

    Returns:
        The table, or a sentence when there are none.
    """
    if not proposals:
        return "No proposals."
    rows = []
    for p in proposals:
        changes = ", ".join(f"{path}={value_text(value)}" for path, value in p.changes.items())
        approvals = f"{len(p.approved_by)}/{p.approvals_required}" if p.status is ProposalStatus.PENDING else ""
        rows.append(
            [
                p.id,
                p.status.value,
                approvals,
                p.proposed_by,
                ", ".join(p.approved_by),
                p.expires_at.strftime("%Y-%m-%d %H:%M"),
                _shown(changes),
                _shown(p.reason),
            ]
        )
    return table(["id", "status", "approvals", "by", "approved by", "expires (UTC)", "changes", "reason"], rows)
