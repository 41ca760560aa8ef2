"""The public API as a user writes it; checked with ``mypy --strict tests/typing/api.py``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import policystore
from policystore import (
    Actor,
    ApprovalRequiredError,
    EventType,
    Explanation,
    FleetAck,
    FleetIncompleteError,
    FleetMember,
    FleetStatus,
    HistoryEntry,
    Override,
    Policy,
    PolicyChanged,
    PolicyStore,
    PolicyValidationError,
    Preview,
    Proposal,
    ProposalRefusedError,
    ProposalStatus,
    RiskMode,
    RiskModeConfig,
    Role,
    Source,
    StoreUnavailableError,
    SyncPolicyStore,
    TradingState,
    UnknownPathError,
    VersionConflictError,
)


async def use_async(url: str) -> float:
    """Open, read, write, audit and listen with the async store."""
    store = await PolicyStore.open(url)
    snap: Policy = store.snapshot()
    leverage: float = snap.risk.max_leverage
    confidence: float = (await store.get_active_risk_config()).global_min_confidence
    explanation: Explanation = store.explain("risk.max_leverage")
    source: Source = explanation.source
    stale: bool = explanation.stale or store.stale
    paths: list[str] = store.paths()
    value = store.get("risk.max_leverage", None)
    del source, stale, paths, value, confidence

    def on_change(event: PolicyChanged) -> None:
        print(event.type.value, event.version, event.by, event.new)  # noqa: T201

    unsubscribe = store.subscribe(on_change)
    operator = Actor("desk", Role.OPERATOR)
    try:
        new: Policy = await store.switch_mode(RiskMode.DEFENSIVE, reason="volatility", actor=operator)
        await store.update(
            {"modes.NORMAL.max_leverage": 4.0}, updated_by="ann", reason="tune", expected_version=new.version
        )
    except VersionConflictError as conflict:
        current: int = conflict.current_version
        del current
    except PolicyValidationError as invalid:
        failed: tuple[str, ...] = invalid.paths
        del failed
    except UnknownPathError as unknown:
        nearest: tuple[str, ...] = unknown.suggestions
        del nearest
    await store.set_emergency_mode(True, reason="halt", updated_by="ops")
    allowed: bool = await store.can_open_new_trades()
    entries: list[HistoryEntry] = await store.history(limit=10)
    changed = [c.path for c in await store.diff(1)]
    await store.rollback(entries[-1].version, reason="undo", updated_by="ada")
    del allowed, changed
    unsubscribe()
    await store.close()
    return leverage


async def fleet(url: str) -> list[str]:
    """Join the fleet by name, list it, and wait for it to apply a kill switch."""
    store = await PolicyStore.open(url, name="executor-1")
    member_id: str | None = store.member_id
    members: list[FleetMember] = await store.fleet()
    lost = [m.label for m in members if m.status is FleetStatus.LOST]
    policy = await store.set_emergency_mode(True, reason="halt", updated_by="ops")
    ack: FleetAck = await store.wait_for_fleet(policy.version, timeout=5.0)
    try:
        ack.check(5.0)
    except FleetIncompleteError as incomplete:
        missing: list[str] = [str(m["name"]) for m in incomplete.missing]
        del missing
    failing: policystore.PolicyStoreError | None = store.fleet_error
    del member_id, failing
    await store.close()
    return [*lost, *(m.name for m in ack.missing), *(m.name for m in ack.lost)]


async def follow(store: PolicyStore) -> None:
    """Print every change event as it comes, then only mode switches and kill-switch events."""
    async for event in store.watch():
        print(event.event_id, event.previous, event.new)  # noqa: T201
    async for event in store.watch(types=[EventType.MODE_CHANGED, "policy.emergency"]):
        print(event.type.value)  # noqa: T201
    store.subscribe(lambda _event: None, types={EventType.EMERGENCY})


async def trade_carefully(store: PolicyStore) -> TradingState:
    """Move the firm to reduce-only through the generic write, and read the state in force."""
    await store.update({"trading.state": TradingState.REDUCING}, reason="volatility", updated_by="desk")
    await store.update({"instruments.BTC.max_order_notional": 10_000.0}, reason="cap", updated_by="desk")
    store.subscribe(lambda _event: None, types=[EventType.TRADING])
    policy: Policy = store.snapshot()
    collar: float | None = policy.instruments["BTC"].price_collar
    del collar
    return TradingState(store.get("trading.effective_state"))


async def grant_room_for_a_while(store: PolicyStore) -> datetime | None:
    """More leverage for two hours, then back by itself; read what expires and when."""
    await store.update({"modes.NORMAL.max_leverage": 6.0}, reason="CPI print", expires_in=7200)
    await store.switch_mode("DEFENSIVE", reason="calm", expires_in=timedelta(minutes=30))
    await store.set_emergency_mode(False, reason="close out", expires_in=600.0)
    changes: tuple[Override, ...] = store.get("overrides")
    replaced: dict[str, object] = dict(changes[0].replaced) if changes else {}
    del replaced
    return store.explain("risk.max_leverage").expires_at


async def open_existing(url: str) -> None:
    """Open a store that must exist already; older code's constructor and closing call."""
    try:
        store = await PolicyStore.open(url, create=False)
    except StoreUnavailableError as missing:
        reason: str = missing.reason
        del reason
        return
    await store.shutdown()
    older = PolicyStore(redis_client=None, event_bus=None, create=True)
    await older.initialize()
    await older.shutdown()


async def four_eyes(store: PolicyStore) -> int | None:
    """Preview a loosening, propose it, and let a second admin approve it."""
    ada, bea = Actor("ada", Role.ADMIN), Actor("bea", Role.ADMIN)
    preview: Preview = await store.update({"modes.NORMAL.max_leverage": 6.0}, reason="x", actor=ada, dry_run=True)
    needed: int = preview.approvals_required
    raised: tuple[str, ...] = preview.raises_risk
    del needed, raised
    try:
        written: Policy = await store.update({"modes.NORMAL.max_leverage": 6.0}, reason="x", actor=ada)
        del written
    except ApprovalRequiredError as refused:
        required: int = refused.approvals_required
        del required
    proposal: Proposal = await store.propose({"modes.NORMAL.max_leverage": 6.0}, reason="event", actor=ada)
    try:
        approved: Proposal = await store.approve(proposal.id, actor=bea)
    except ProposalRefusedError as step:
        status: str = step.status
        del status
        return None
    pending = [p.id for p in await store.proposals() if p.status is ProposalStatus.PENDING]
    store.subscribe(lambda event: print(event.proposal), types=[EventType.PROPOSAL])  # noqa: T201
    del pending
    return approved.applied_version


def use_sync(url: str) -> RiskModeConfig:
    """The same calls without await."""
    with SyncPolicyStore.open(url) as store:
        store.switch_mode("DEFENSIVE", reason="calm", updated_by="trader")
        store.update({"modes.NORMAL.max_leverage": 6.0}, reason="CPI print", expires_in=7200)
        seen: Preview = store.switch_mode("NORMAL", reason="back", dry_run=True)
        made: Proposal = store.propose({"active_mode": "NORMAL"}, reason="back", by="ada")
        del seen, made
        versions: list[int] = [e.version for e in store.history()]
        modes = store.watch(types=[EventType.MODE_CHANGED])
        del versions, modes
        return store.get_active_risk_config()


if __name__ == "__main__":
    asyncio.run(use_async("memory://"))
    use_sync("memory://")
    print(policystore.__all__)  # noqa: T201
