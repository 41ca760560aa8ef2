"""Expiring changes over time: what is in force at a moment, how a write gains a lifetime, who may make one.

A policy's ``overrides`` (:class:`~policystore.model.policy.Override`) are its
expiring changes. At a moment ``now`` the policy in force is the stored one
with every change whose end has come returned (:func:`in_force`); nothing
needs to be written for that, so every process computes it from its own copy
and its own clock.

A write is judged over time, not only now (:func:`authorize_timeline`): the
role a write needs is the one its change needs now and at every end to come,
compared with what would be in force without it. So a loosening with a
lifetime needs an admin, as one without does; the end of a loosening is a
tightening and needs nobody; a timed tightening may be written by an operator,
since its end only brings back values that were in force (authorised when
they were written); making a temporary loosening last longer, or for good, is
a loosening. Turning the kill switch on for a limited time needs an admin:
its end turns the kill switch off, which only an admin may do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from policystore.model.changes import stored_values
from policystore.model.overrides import covers, returned_document
from policystore.model.policy import STRATEGY_FIELDS, Override, Policy
from policystore.model.risk_direction import risk_increases
from policystore.model.roles import Actor, Role, authorize_change
from policystore.model.validation import build_policy

__all__ = [
    "authorize_timeline",
    "ended",
    "in_force",
    "next_end",
    "overrides_for",
    "return_reason",
    "with_lifetime",
]


def ended(policy: Policy, now: datetime) -> tuple[Override, ...]:
    """Return the expiring changes of ``policy`` whose end has come at ``now`` (``until <= now``)."""
    return tuple(change for change in policy.overrides if change.until <= now)


def next_end(policy: Policy) -> datetime | None:
    """Return when the next expiring change of ``policy`` ends, or None when it holds none."""
    return min((change.until for change in policy.overrides), default=None)


def in_force(policy: Policy, now: datetime) -> Policy:
    """Return the policy in force at ``now``: ``policy`` with every change ended by then returned.

    The result keeps ``policy``'s record (version, time, author, reason): it is
    what that version means at ``now``, not a new version. Without an ended
    change it is ``policy`` itself.

    Raises:
        PolicyValidationError: a return leads to an invalid policy (a policy that
            was validated never does: validation checks every return).
    """
    gone = ended(policy, now)
    if not gone:
        return policy
    return build_policy(returned_document(policy.document(), gone))


def _named(before: dict[str, Any], after: dict[str, Any], keys: Collection[str]) -> set[str]:
    """The stored leaf paths a write names: those it changed, and those its patch's paths cover."""
    paths = before.keys() | after.keys()
    named = {path for path in paths if before.get(path) != after.get(path)}
    if keys:
        named.update(path for path in paths if any(covers(key, path) for key in keys))
    return named


def with_lifetime(
    base: Policy,
    candidate: Policy,
    *,
    keys: Collection[str],
    expires_in: float | None,
    at: datetime,
    by: str,
    reason: str,
) -> Policy:
    """Return ``candidate`` with its expiring changes: ``base``'s, less what the write replaces, and its own.

    A write replaces every expiring change on the paths it names (those it
    changed, and those its patch's ``keys`` cover, even when the value stays):
    without a lifetime the new values are there for good; with one, they return
    at the end to what the replaced change would have returned them to, or else
    to ``base``'s values. A path whose value and return are the same is no part
    of the new change.

    Args:
        base: the policy in force the write is made on.
        candidate: the write's result, without expiring changes.
        keys: the paths the write's patch names (empty for a write that has none).
        expires_in: the lifetime in seconds, or None for a write for good.
        at: when the write is made.
        by: who makes it.
        reason: why.

    Returns:
        The policy to commit, validated with every return.

    Raises:
        PolicyValidationError: a return would lead to an invalid policy.
    """
    if expires_in is None and not base.overrides:
        return candidate  # nothing to replace and nothing to add: most writes, which need no path compared
    before, after = stored_values(base), stored_values(candidate)
    named = _named(before, after, keys)
    kept: list[Override] = []
    returns: dict[str, Any] = {}
    for change in base.overrides:
        hit = named & change.values.keys()
        if not hit:
            kept.append(change)
            continue
        returns.update({path: change.replaced[path] for path in hit})
        rest = [path for path in change.values if path not in hit]
        if rest:
            values = {path: change.values[path] for path in rest}
            kept.append(dataclasses.replace(change, values=values, replaced={p: change.replaced[p] for p in rest}))
    if expires_in is not None:
        values, replaced = {}, {}
        for path in sorted(named):
            back = returns[path] if path in returns else before.get(path)
            if back != after.get(path):
                values[path], replaced[path] = after.get(path), back
        if values:
            until = at + timedelta(seconds=expires_in)
            kept.append(Override(base.version + 1, at, until, by, reason, values, replaced))
    if not kept:
        return candidate
    return build_policy({**candidate.document(), "overrides": [change.to_dict() for change in kept]})


def authorize_timeline(
    actor: Actor, base: Policy, candidate: Policy, action: str, *, approvals: int | None = None
) -> None:
    """Check that ``actor`` may turn ``base`` into ``candidate``, now and at every end to come.

    Now, and at each end of an expiring change of either, the policy the write
    leaves in force is compared with the one ``base`` would leave; a write that
    is looser at any of those moments needs an admin (see the module's text),
    and the approvals ``change_control.approvals_required`` asks for then.

    Args:
        actor: who writes.
        base: the version in force the write is made on.
        candidate: the policy it would make.
        action: what the write does, for a refusal.
        approvals: how many distinct admins agreed (a proposal's); by default the actor's own write.

    Raises:
        PermissionDeniedError: the actor may not make this change
            (:class:`~policystore.errors.ApprovalRequiredError` when more admins must agree).
    """
    authorize_change(actor, base, candidate, action, approvals=approvals)
    held = {change.version for change in base.overrides}
    for change in candidate.overrides:
        if change.version not in held and change.replaced.get("emergency.active") is False:
            actor.require(Role.ADMIN, "turning the kill switch on for a limited time (its end turns it off)")
    for end in sorted({change.until for change in (*base.overrides, *candidate.overrides)}):
        before, after = in_force(base, end), in_force(candidate, end)
        if risk_increases(before, after):
            moment = f"{action}, from {end.isoformat()} when an expiring change ends,"
            authorize_change(actor, before, after, moment, approvals=approvals)


def overrides_for(policy: Policy, path: str, changes: Sequence[Override] | None = None) -> tuple[Override, ...]:
    """Return the expiring changes of ``policy`` (or ``changes``) that set the value read at ``path``.

    A readable path answers from stored paths: ``risk.*`` from the active
    mode (and which mode is active), a strategy's effective field from its
    override and the active mode, an instrument's field from its entry, the
    default entry and the hard cap, ``trading.effective_state`` from the
    firm-wide state and the kill switch.
    """
    changes = policy.overrides if changes is None else changes
    if not changes:
        return ()
    sources = {path}
    head, _, rest = path.partition(".")
    active = policy.active_mode
    if head in {"risk", "ai"}:
        sources |= {f"modes.{active}.{rest}", "active_mode"}
    elif head == "strategies":
        mode_field = STRATEGY_FIELDS.get(rest.rpartition(".")[2])
        if mode_field is not None:
            sources |= {f"modes.{active}.{mode_field}", "active_mode"}
    elif path == "trading.effective_state":
        sources |= {"trading.state", "emergency.active"}
    elif head == "instruments":
        field = rest.rpartition(".")[2]
        sources |= {f"instruments.default.{field}", f"hard_limits.{field}"}
    elif head == "trading":
        sources.add(f"hard_limits.{rest}")
    return tuple(change for change in changes if sources & change.values.keys())


#: How much of a change's reason the reason of its return quotes.
_QUOTED = 80


def _clipped(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _QUOTED else f"{line[: _QUOTED - 1]}\u2026"


def return_reason(changes: Sequence[Override]) -> str:
    """Return the reason the store records with the return of ``changes``: which ended, by whom, and when."""
    parts = [f"version {c.version} ({c.by}: {_clipped(c.reason)}) ended at {c.until.isoformat()}" for c in changes]
    if len(parts) == 1:
        return f"the expiring change of {parts[0]}; its values returned"
    return f"the expiring changes of {'; '.join(parts)}; their values returned"
