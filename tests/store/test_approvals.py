"""Four-eyes approval in the store, on SQLite and Redis: refused loosenings, proposals, approvals and their states.

Every store here opens the same URL twice where two people work at once, so
what one admin proposes another approves from a store of its own, as two
processes would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policystore import (
    Actor,
    ApprovalRequiredError,
    PermissionDeniedError,
    PolicyChanged,
    PolicyStore,
    PolicyValidationError,
    ProposalRefusedError,
    ProposalStatus,
    Role,
    UnknownPathError,
    UnknownProposalError,
)
from policystore.model.proposals import STEPS, outcome_key
from support.waiting import eventually

ADA = Actor("ada", Role.ADMIN)
BEA = Actor("bea", Role.ADMIN)
CAT = Actor("cat", Role.ADMIN)
OTTO = Actor("otto", Role.OPERATOR)
VERA = Actor("vera", Role.VIEWER)
LOOSER = {"modes.NORMAL.max_leverage": 6.0}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on SQLite, then on a real redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/policy.db"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def opened(url: str) -> AsyncIterator[Callable[..., object]]:
    """Opens stores on the URL (each one closed at the end)."""
    stores: list[PolicyStore] = []

    async def open_store(**options: object) -> PolicyStore:
        store = await PolicyStore.open(url, lkg_path=None, **options)
        stores.append(store)
        return store

    yield open_store
    for store in stores:
        await store.close()


async def two_required(opened: Callable[..., object]) -> tuple[PolicyStore, PolicyStore]:
    """Two stores on the same URL, with change_control.approvals_required raised to 2 (by an operator)."""
    first: PolicyStore = await opened()  # type: ignore[misc]
    second: PolicyStore = await opened()  # type: ignore[misc]
    await first.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)
    await second.refresh()
    return first, second


async def versions(store: PolicyStore) -> int:
    return len(await store.history(1000))


class TestWritesUnderTwoApprovals:
    """With 2 required, a write that raises risk is refused to anyone; one that tightens applies at once."""

    async def test_admin_loosening_is_refused_with_approval_required_and_nothing_changes(self, opened) -> None:
        """update, switch_mode, the kill switch off, rollback and import that raise risk are each refused."""
        store, _ = await two_required(opened)
        await store.set_emergency_mode(True, reason="halt", actor=OTTO)
        before = await versions(store)

        attempts = [
            store.update(LOOSER, reason="more", actor=ADA),
            store.switch_mode("AGGRESSIVE_SMALL_ACCOUNT", reason="more", actor=ADA),
            store.set_emergency_mode(False, reason="clear", actor=ADA),
            store.rollback(1, reason="back", actor=ADA),
            store.replace_policy({**store.snapshot().document(), "change_control": {}}, reason="x", actor=ADA),
        ]
        for attempt in attempts:
            with pytest.raises(ApprovalRequiredError) as caught:
                await attempt
            assert (2, 1) == (caught.value.approvals_required, caught.value.approvals)
            assert "propose it" in str(caught.value)

        assert before == await versions(store)
        assert 5.0 == (await store.refresh()).modes["NORMAL"].max_leverage

    async def test_operator_and_admin_tighten_at_once(self, opened) -> None:
        """A stricter limit, a stricter mode and the kill switch on are written at once, by either role."""
        store, _ = await two_required(opened)

        await store.update({"modes.NORMAL.max_leverage": 4.0}, reason="tighter", actor=OTTO)
        await store.switch_mode("DEFENSIVE", reason="calm", actor=ADA)
        policy = await store.set_emergency_mode(True, reason="halt", actor=OTTO)

        assert (5, 4.0, "DEFENSIVE", True) == (
            policy.version,
            policy.modes["NORMAL"].max_leverage,
            policy.active_mode,
            policy.emergency.active,
        )

    async def test_lowering_approvals_required_needs_the_approvals_in_force(self, opened) -> None:
        """One admin cannot lower 2 to 1; two admins through a proposal can, and then one admin loosens alone."""
        ada, bea = await two_required(opened)

        with pytest.raises(ApprovalRequiredError):
            await ada.update({"change_control.approvals_required": 1}, reason="fewer", actor=ADA)
        proposal = await ada.propose({"change_control.approvals_required": 1}, reason="fewer", actor=ADA)
        applied = await bea.approve(proposal.id, actor=BEA)

        assert ProposalStatus.APPLIED is applied.status
        loosened = await ada.update(LOOSER, reason="more", actor=ADA)
        assert (1, 6.0) == (loosened.change_control.approvals_required, loosened.modes["NORMAL"].max_leverage)

    async def test_operator_may_raise_the_number_and_not_lower_it(self, opened) -> None:
        """Raising the number tightens; lowering it is refused to an operator (as a risk it may not take)."""
        store, _ = await two_required(opened)

        raised = await store.update({"change_control.approvals_required": 3}, reason="more eyes", actor=OTTO)
        with pytest.raises(PermissionDeniedError):
            await store.update({"change_control.approvals_required": 2}, reason="fewer", actor=OTTO)

        assert 3 == raised.change_control.approvals_required


class TestProposals:
    """propose, approve, reject: one version per applied proposal, naming everyone who agreed."""

    async def test_second_admin_applies_the_proposal_as_one_version_naming_both(self, opened) -> None:
        """ada proposes in one store, bea approves in another: one version, by ada, approved by ada and bea."""
        ada, bea = await two_required(opened)
        before = await versions(ada)

        proposal = await ada.propose(LOOSER, reason="event window", actor=ADA)
        applied = await bea.approve(proposal.id, actor=BEA)

        assert (ProposalStatus.PENDING, ("ada",), 1) == (
            proposal.status,
            proposal.approved_by,
            proposal.approvals_missing,
        )
        assert (ProposalStatus.APPLIED, ("ada", "bea"), 3) == (
            applied.status,
            applied.approved_by,
            applied.applied_version,
        )
        assert before + 1 == await versions(ada)
        entry = (await ada.history(1))[0]
        assert (3, "ada", ("ada", "bea"), proposal.id) == (entry.version, entry.by, entry.approved_by, entry.proposal)
        assert "approved by ada, bea" in entry.reason
        assert [("modes.NORMAL.max_leverage", 5.0, 6.0)] == [(c.path, c.old, c.new) for c in entry.changes]
        assert 6.0 == (await ada.refresh()).modes["NORMAL"].max_leverage

    async def test_same_admin_twice_and_an_operator_are_refused_and_nothing_is_applied(self, opened) -> None:
        """The proposer cannot approve again; an operator cannot approve at all."""
        ada, _ = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)

        with pytest.raises(ProposalRefusedError) as twice:
            await ada.approve(proposal.id, by="ada", actor=ADA)
        with pytest.raises(PermissionDeniedError):
            await ada.approve(proposal.id, actor=OTTO)

        assert ("pending", proposal.id) == (twice.value.status, twice.value.proposal_id)
        assert ProposalStatus.PENDING is (await ada.proposal(proposal.id)).status
        assert 5.0 == (await ada.refresh()).modes["NORMAL"].max_leverage

    async def test_operator_proposes_and_two_admins_apply(self, opened) -> None:
        """An operator's proposal counts no approval of its own: both admins approve, the operator is the author."""
        ada, bea = await two_required(opened)

        proposal = await ada.propose(LOOSER, reason="desk asks", actor=OTTO)
        after_one = await ada.approve(proposal.id, actor=ADA)
        applied = await bea.approve(proposal.id, actor=BEA)

        assert ((), 2) == (proposal.approved_by, proposal.approvals_missing)
        assert ProposalStatus.PENDING is after_one.status
        assert ProposalStatus.APPLIED is applied.status
        entry = (await bea.history(1))[0]
        assert ("otto", ("ada", "bea")) == (entry.by, entry.approved_by)

    async def test_conflicting_write_makes_the_proposal_stale_and_its_approval_refused(self, opened) -> None:
        """A tightening of the same path after the proposal: listed stale, approval refused, nothing applied."""
        ada, bea = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)
        await bea.update({"modes.NORMAL.max_leverage": 4.5}, reason="tighter meanwhile", actor=OTTO)
        before = await versions(ada)

        listed = await bea.proposal(proposal.id)
        with pytest.raises(ProposalRefusedError) as caught:
            await bea.approve(proposal.id, actor=BEA)

        assert (ProposalStatus.STALE, 3) == (listed.status, listed.stale_version)
        assert "stale" == caught.value.status
        assert (before, 4.5) == (await versions(ada), (await ada.refresh()).modes["NORMAL"].max_leverage)

    async def test_write_to_other_paths_leaves_the_proposal_applicable(self, opened) -> None:
        """A change elsewhere is no conflict: the proposal applies on top of it."""
        ada, bea = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)
        await bea.update({"modes.DEFENSIVE.max_positions": 8}, reason="elsewhere", actor=OTTO)

        applied = await bea.approve(proposal.id, actor=BEA)

        policy = await ada.refresh()
        assert (ProposalStatus.APPLIED, 6.0, 8) == (
            applied.status,
            policy.modes["NORMAL"].max_leverage,
            policy.modes["DEFENSIVE"].max_positions,
        )

    async def test_proposal_expires_after_its_lifetime(self, opened) -> None:
        """Past 24 hours a pending proposal is expired; its approval is refused."""
        clock = Clock()
        ada: PolicyStore = await opened(clock=clock)  # type: ignore[misc]
        await ada.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)

        clock.now += timedelta(hours=24)

        assert ProposalStatus.EXPIRED is (await ada.proposal(proposal.id)).status
        with pytest.raises(ProposalRefusedError) as caught:
            await ada.approve(proposal.id, actor=BEA)
        assert "expired" == caught.value.status
        assert proposal.expires_at == proposal.created_at + timedelta(hours=24)

    async def test_rejected_proposal_cannot_be_approved(self, opened) -> None:
        """bea rejects with a reason; an approval after that is refused and nothing changes."""
        ada, bea = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)

        rejected = await bea.reject(proposal.id, reason="not today", actor=BEA)
        with pytest.raises(ProposalRefusedError) as caught:
            await bea.approve(proposal.id, actor=CAT)

        assert (ProposalStatus.REJECTED, "bea", "not today") == (
            rejected.status,
            rejected.decided_by,
            rejected.decision_reason,
        )
        assert "rejected" == caught.value.status
        assert 5.0 == (await ada.refresh()).modes["NORMAL"].max_leverage

    async def test_proposer_may_withdraw_and_another_operator_may_not_reject(self, opened) -> None:
        """An operator's own proposal is its to withdraw; someone else's is an admin's to reject."""
        ada, _ = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="desk asks", actor=OTTO)

        with pytest.raises(PermissionDeniedError):
            await ada.reject(proposal.id, reason="no", actor=Actor("olga", Role.OPERATOR))
        withdrawn = await ada.reject(proposal.id, reason="changed my mind", actor=OTTO)

        assert (ProposalStatus.REJECTED, "otto") == (withdrawn.status, withdrawn.decided_by)

    async def test_tightening_proposal_and_one_admin_loosening_under_one_approval_apply_at_once(self, opened) -> None:
        """A proposal that already has what it needs is applied when made."""
        store: PolicyStore = await opened()  # type: ignore[misc]

        tightening = await store.propose({"modes.NORMAL.max_leverage": 4.0}, reason="tighter", actor=OTTO)
        loosening = await store.propose(LOOSER, reason="more", actor=ADA)

        assert (ProposalStatus.APPLIED, 2) == (tightening.status, tightening.applied_version)
        assert (ProposalStatus.APPLIED, 3) == (loosening.status, loosening.applied_version)

    async def test_bad_proposals_are_refused_and_store_nothing(self, opened) -> None:
        """An unknown path, a change that changes nothing, a viewer, an empty reason, unfit lifetimes."""
        store, _ = await two_required(opened)

        with pytest.raises(UnknownPathError):
            await store.propose({"modes.NORMAL.max_levrage": 6.0}, reason="typo", actor=ADA)
        with pytest.raises(PolicyValidationError, match="nothing to propose"):
            await store.propose({"modes.NORMAL.max_leverage": 5.0}, reason="same", actor=ADA)
        with pytest.raises(PermissionDeniedError):
            await store.propose(LOOSER, reason="more", actor=VERA)
        with pytest.raises(PolicyValidationError) as caught:
            await store.propose(LOOSER, reason=" ", actor=ADA, expires_in=0, lifetime=0)
        assert ["reason", "expires_in", "lifetime"] == list(caught.value.paths)
        with pytest.raises(UnknownProposalError):
            await store.approve("nope", actor=BEA)

        assert [] == await store.proposals()

    async def test_proposals_lists_every_status_newest_first(self, opened) -> None:
        """Applied, rejected and pending proposals, newest first."""
        clock = Clock()
        ada: PolicyStore = await opened(clock=clock)  # type: ignore[misc]
        await ada.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)
        first = await ada.propose(LOOSER, reason="one", actor=ADA)
        clock.now += timedelta(minutes=1)
        second = await ada.propose({"modes.DEFENSIVE.max_leverage": 3.5}, reason="two", actor=ADA)
        clock.now += timedelta(minutes=1)
        third = await ada.propose({"modes.DEFENSIVE.max_positions": 12}, reason="three", actor=ADA)
        await ada.approve(first.id, actor=BEA)
        await ada.reject(second.id, reason="no", actor=BEA)

        listed = [(p.id, p.status) for p in await ada.proposals()]

        assert [
            (third.id, ProposalStatus.PENDING),
            (second.id, ProposalStatus.REJECTED),
            (first.id, ProposalStatus.APPLIED),
        ] == listed

    async def test_each_step_is_announced_as_a_proposal_event(self, opened) -> None:
        """proposed, approved and applied reach a policy.proposal subscriber; default subscribers hear the version."""
        ada, bea = await two_required(opened)
        steps: list[PolicyChanged] = []
        updates: list[PolicyChanged] = []
        bea.subscribe(steps.append, types=["policy.proposal"])
        bea.subscribe(updates.append)

        proposal = await bea.propose(LOOSER, reason="event", actor=ADA)
        await bea.approve(proposal.id, actor=BEA)
        await eventually(lambda: len(steps) == 3)

        assert ["proposed", "approved", "applied"] == [e.proposal["step"] for e in steps if e.proposal]
        assert [3] == [e.version for e in updates]
        assert {proposal.id} == {e.proposal["id"] for e in steps if e.proposal}
        del ada


class TestExpiringProposals:
    """A loosening for a while needs the same approvals as one for good; its end needs nobody."""

    async def test_loosening_for_two_hours_needs_two_admins_and_applies_as_an_expiring_change(self, opened) -> None:
        """Refused as one write; proposed with expires_in and approved, it is in force and ends on time."""
        clock = Clock()
        ada: PolicyStore = await opened(clock=clock)  # type: ignore[misc]
        await ada.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)

        with pytest.raises(ApprovalRequiredError):
            await ada.update(LOOSER, reason="event", actor=ADA, expires_in=7200)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA, expires_in=timedelta(hours=2))
        applied = await ada.approve(proposal.id, actor=BEA)

        assert (ProposalStatus.APPLIED, 7200.0) == (applied.status, proposal.expires_in)
        policy = await ada.refresh()
        assert [clock.now + timedelta(hours=2)] == [change.until for change in policy.overrides]
        assert 6.0 == ada.get("modes.NORMAL.max_leverage")
        clock.now += timedelta(hours=2)
        assert 5.0 == ada.snapshot().modes["NORMAL"].max_leverage


class TestAppliedOnce:
    """However approvals race, a proposal makes one version."""

    async def test_concurrent_last_approvals_from_two_stores_apply_once(self, opened) -> None:
        """With 3 required, bea and cat approve at the same moment from two stores: one version, applied."""
        ada, bea = await two_required(opened)
        await ada.update({"change_control.approvals_required": 3}, reason="three", actor=OTTO)
        await bea.refresh()
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)
        before = await versions(ada)

        results = await asyncio.gather(
            ada.approve(proposal.id, actor=BEA), bea.approve(proposal.id, actor=CAT), return_exceptions=True
        )

        assert not [r for r in results if isinstance(r, BaseException)], results
        assert before + 1 == await versions(ada)
        final = await ada.proposal(proposal.id)
        assert (ProposalStatus.APPLIED, {"ada", "bea", "cat"}) == (final.status, set(final.approved_by))

    async def test_two_appliers_at_once_make_one_version(self, opened) -> None:
        """The application itself, started twice at once from two stores, writes once."""
        ada, bea = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)
        await ada._book.approve(proposal.id, BEA)
        ready = await ada.proposal(proposal.id)
        before = await versions(ada)

        await asyncio.gather(ada._book.apply(ready, BEA), bea._book.apply(ready, BEA))

        assert before + 1 == await versions(ada)

    async def test_lost_claim_cannot_apply_it_a_second_time(self, opened) -> None:
        """Even with its outcome record gone (a lost reply, a damaged table), the history stops a second write."""
        ada, bea = await two_required(opened)
        proposal = await ada.propose(LOOSER, reason="event", actor=ADA)
        applied = await bea.approve(proposal.id, actor=BEA)
        await ada.backend.records.delete(STEPS, outcome_key(proposal.id))
        await ada.backend.records.delete(STEPS, f"{proposal.id}/applied")
        before = await versions(ada)

        again = await ada._book.apply(applied, CAT)

        assert (before, ProposalStatus.APPLIED, 3) == (await versions(ada), again.status, again.applied_version)


class TestEveryBackEnd:
    """Proposals live in the store's records, whichever back end holds it."""

    async def test_proposal_made_in_one_store_is_listed_and_approved_in_another(self, store_url: str) -> None:
        """memory, SQLite, Redis and PostgreSQL: the second store sees the proposal and applies it."""
        first = await PolicyStore.open(store_url, lkg_path=None)
        second = await PolicyStore.open(store_url, lkg_path=None)
        try:
            await first.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)
            proposal = await first.propose(LOOSER, reason="event", actor=ADA)

            listed = await second.proposals()
            applied = await second.approve(proposal.id, actor=BEA)

            assert [(proposal.id, ProposalStatus.PENDING, ("ada",))] == [
                (p.id, p.status, p.approved_by) for p in listed
            ]
            assert (ProposalStatus.APPLIED, ("ada", "bea")) == (applied.status, applied.approved_by)
            assert ("bea",) != (await first.proposal(proposal.id)).approved_by
            assert 6.0 == (await first.refresh()).modes["NORMAL"].max_leverage
        finally:
            await second.close()
            await first.close()
