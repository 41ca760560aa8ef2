"""Dry runs: every write, with dry_run=True, is checked as the write would be and writes nothing.

The preview says what the write would change (effective values), whether it
raises risk, the role and approvals it needs and whether the caller may make it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from policystore import (
    Actor,
    PolicyStore,
    PolicyValidationError,
    Preview,
    Role,
    SyncPolicyStore,
    UnknownPathError,
    VersionConflictError,
)
from policystore.backends.memory import MemoryBackend
from policystore.model.changes import stored_values
from policystore.store.previewing import Previewed, previewing
from policystore.testing import SwitchableBackend

ADA = Actor("ada", Role.ADMIN)
OTTO = Actor("otto", Role.OPERATOR)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PolicyStore]:
    """A store on SQLite, then on Redis, needing 2 approvals to raise risk, with the kill switch on (version 3)."""
    url = f"sqlite:///{tmp_path}/policy.db" if request.param == "sqlite" else request.getfixturevalue("redis_url")
    opened = await PolicyStore.open(url, lkg_path=None)
    await opened.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)
    await opened.set_emergency_mode(True, reason="halt", actor=OTTO)
    yield opened
    await opened.close()


async def unchanged_after(store: PolicyStore) -> tuple[int, int, dict[str, object]]:
    """Version, history length and stored values as the store holds them."""
    policy = await store.refresh()
    return policy.version, len(await store.history(1000)), stored_values(policy)


class TestEveryWrite:
    """Each write method previews instead of writing."""

    async def test_every_write_method_with_dry_run_writes_nothing(self, store: PolicyStore) -> None:
        """switch_mode, update, the kill switch, rollback, import and propose: version and history unchanged."""
        before = await unchanged_after(store)
        document = {**store.snapshot().document(), "active_mode": "DEFENSIVE"}

        previews = [
            await store.switch_mode("DEFENSIVE", reason="calm", actor=OTTO, dry_run=True),
            await store.update({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=ADA, dry_run=True),
            await store.set_emergency_mode(False, reason="clear", actor=ADA, dry_run=True),
            await store.rollback(1, reason="back", actor=OTTO, dry_run=True),
            await store.replace_policy(document, reason="import", actor=ADA, dry_run=True),
            await store.propose({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=ADA, dry_run=True),
        ]

        assert all(isinstance(p, Preview) and p.base_version == 3 for p in previews)
        assert before == await unchanged_after(store)
        assert [] == await store.proposals()

    async def test_preview_reports_risk_role_and_approvals(self, store: PolicyStore) -> None:
        """A loosening needs 2 admins and a proposal; a tightening an operator; a rollback an admin."""
        looser = await store.update({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=ADA, dry_run=True)
        tighter = await store.switch_mode("DEFENSIVE", reason="calm", actor=OTTO, dry_run=True)
        off = await store.set_emergency_mode(False, reason="clear", actor=OTTO, dry_run=True)
        rollback = await store.rollback(2, reason="back", actor=OTTO, dry_run=True)

        assert ("admin", 2, True, False) == (
            looser.required_role.value,
            looser.approvals_required,
            looser.proposal_required,
            looser.allowed,
        )
        assert "propose it" in (looser.refusal or "")
        assert {"modes.NORMAL.max_leverage", "risk.max_leverage"} <= set(looser.raises_risk)
        assert ("operator", 0, True, ()) == (
            tighter.required_role.value,
            tighter.approvals_required,
            tighter.allowed,
            tighter.raises_risk,
        )
        assert (5.0, 3.0) == next((c.old, c.new) for c in tighter.changes if c.path == "risk.max_leverage")
        assert (("emergency.active",), False) == (off.raises_risk, off.allowed)
        assert ("admin", False) == (rollback.required_role.value, rollback.allowed)

    async def test_dry_run_refuses_what_the_write_would_refuse(self, store: PolicyStore) -> None:
        """An unknown path, an invalid value and a stale expected_version fail the dry run as the write."""
        with pytest.raises(UnknownPathError):
            await store.update({"modes.NORMAL.max_levrage": 6.0}, reason="x", dry_run=True)
        with pytest.raises(PolicyValidationError):
            await store.update({"modes.NORMAL.max_leverage": -1}, reason="x", dry_run=True)
        with pytest.raises(VersionConflictError):
            await store.switch_mode("DEFENSIVE", reason="x", expected_version=1, dry_run=True)

    async def test_approve_dry_run_previews_the_application_and_records_no_approval(self, store: PolicyStore) -> None:
        """What bea's approval would apply, allowed with her approval counted; the proposal stays as it was."""
        proposal = await store.propose({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=ADA)

        preview = await store.approve(proposal.id, actor=Actor("bea", Role.ADMIN), dry_run=True)

        assert (True, 2) == (preview.allowed, preview.approvals_required)
        assert ("ada",) == (await store.proposal(proposal.id)).approved_by


class TestPreviewingBlock:
    """Inside previewing(), a write made without dry_run raises its preview: how the command line does --dry-run."""

    async def test_write_inside_previewing_raises_previewed_and_writes_nothing(self, store: PolicyStore) -> None:
        """update and rollback (whose admin check becomes part of the preview) answer Previewed."""
        before = await unchanged_after(store)

        with previewing():
            with pytest.raises(Previewed) as update:
                await store.update({"modes.NORMAL.max_positions": 20}, reason="fewer", actor=OTTO)
            with pytest.raises(Previewed) as rollback:
                await store.rollback(1, reason="back", actor=OTTO)

        assert (True, False) == (update.value.preview.allowed, rollback.value.preview.allowed)
        assert before == await unchanged_after(store)
        assert 4 == (await store.update({"modes.NORMAL.max_positions": 20}, reason="fewer", actor=OTTO)).version


class TestUnreachable:
    """A dry run while the store is down previews this process's copy and says so."""

    async def test_dry_run_while_unreachable_is_stale_preview_of_held_version(self) -> None:
        """The preview is made on the held version, marked stale; the write itself is refused."""
        backend = SwitchableBackend(MemoryBackend("dry-run-down"))
        store = PolicyStore(backend, lkg_path=None)
        await store.initialize()
        try:
            with backend.outage():
                preview = await store.set_emergency_mode(True, reason="outage", actor=OTTO, dry_run=True)
        finally:
            await store.close()

        assert (True, 1, True) == (preview.stale, preview.base_version, preview.allowed)


class TestSync:
    """The blocking facade previews, proposes and approves as the async store does."""

    def test_sync_store_dry_run_and_proposal(self, tmp_path: Path) -> None:
        """A dry run returns a Preview; a proposal approved by a second admin applies."""
        with SyncPolicyStore.open(f"sqlite:///{tmp_path}/policy.db", lkg_path=None) as store:
            store.update({"change_control.approvals_required": 2}, reason="four eyes", actor=OTTO)
            preview = store.update({"modes.NORMAL.max_leverage": 6.0}, reason="more", actor=ADA, dry_run=True)
            version = store.get("version")
            proposal = store.propose({"modes.NORMAL.max_leverage": 6.0}, reason="more", by="ada")
            applied = store.approve(proposal.id, by="bea")

            assert (2, 2, 3) == (preview.approvals_required, version, store.get("version"))
            assert ("applied", ("ada", "bea")) == (applied.status.value, applied.approved_by)
            assert [applied.id] == [p.id for p in store.proposals()]
