"""One rule decides whether new risk may be opened: the executor's gate and can_open_new_trades() never disagree.

The facts the rule reads (the kill switch, a refused newer version, a rewind not
yet confirmed, staleness and the stale rule) live in the one read state the store
swaps in whole, and ``store.gate()`` hands out the policy and the verdict together.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policystore import PolicyChanged, PolicyStore, Source, StaleTradingRule, StoreUnavailableError
from policystore.backends.memory import MemoryBackend
from policystore.consumers.brokers import PaperBroker
from policystore.consumers.decision_log import MemoryDecisionLog
from policystore.consumers.execution import EventDrivenExecutor, ExecutionDecision, Reason, Signal
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent
from policystore.model.history import HistoryEntry
from policystore.store.sources import GateRefusal
from policystore.testing import SwitchableBackend
from support.waiting import eventually

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def buy(symbol: str = "BTC", seconds: float = 0.0) -> Signal:
    """A confident buy that every rule but the gate lets through."""
    return Signal(symbol, "buy", 0.9, 100.0, "moderate", T0 + timedelta(seconds=seconds), stop_distance=5.0)


def executor_for(store: PolicyStore) -> tuple[EventDrivenExecutor, PaperBroker]:
    """An executor on ``store`` with a cost-free paper broker."""
    broker = PaperBroker(10_000, fee_bps=0, slippage_bps=0)
    sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
    executor = EventDrivenExecutor(policy_store=store, broker=broker, sizer=sizer, decision_log=MemoryDecisionLog())
    return executor, broker


def restore(source: Path, target: Path) -> None:
    """Copy one SQLite database over another with SQLite's backup API, as a restore onto a live file does."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.fixture
async def rewound(tmp_path: Path) -> AsyncIterator[PolicyStore]:
    """A one-shot store (watch=False) whose SQLite file was restored to version 1 after it held version 3."""
    db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
    store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=tmp_path / "lkg.json")
    restore(db, backup)
    await store.update({"modes.NORMAL.max_positions": 12}, reason="tune")
    await store.update({"modes.NORMAL.max_positions": 11}, reason="tune")
    restore(backup, db)
    await store.refresh()
    yield store
    await store.close()


class TestExecutorAfterTheStoreWentBack:
    """A store that went back is live and not stale, and still no new trade may open."""

    async def test_executor_refuses_new_entries_after_a_restore_without_watching(self, rewound: PolicyStore) -> None:
        """watch=False never halts the store itself: every entry is refused as store_rewound, none sent."""
        executor, broker = executor_for(rewound)
        decisions = [await executor.handle(buy(f"S{n}", seconds=n)) for n in range(5)]
        assert [] == broker.fills
        assert (False, 1) == (rewound.stale, rewound.get("version"))
        assert [Reason.STORE_REWOUND] * 5 == [d.reason for d in decisions]
        assert "went back to version 1" in decisions[0].detail
        assert not await rewound.can_open_new_trades()

    async def test_gate_and_can_open_new_trades_answer_from_one_state(self, rewound: PolicyStore) -> None:
        """gate() carries the policy the verdict was made on; can_open_new_trades() is its verdict."""
        gate = rewound.gate()
        assert (GateRefusal.STORE_REWOUND, False, 1) == (gate.refusal, gate.allowed, gate.policy.version)
        assert gate.policy is rewound.snapshot()
        assert gate.allowed == await rewound.can_open_new_trades()

    async def test_a_confirming_write_opens_the_gate_again(self, rewound: PolicyStore) -> None:
        """The next write confirms the policy; the executor then trades again."""
        executor, _broker = executor_for(rewound)
        await rewound.update({"modes.NORMAL.max_positions": 25}, reason="confirm after the restore")
        decision = await executor.handle(buy())
        assert (Reason.ACCEPTED, None) == (decision.reason, rewound.gate().refusal)

    async def test_closing_a_position_is_still_allowed_after_a_restore(self, tmp_path: Path) -> None:
        """The gate blocks new risk only: an opposite signal for a held position still closes it."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            executor, broker = executor_for(store)
            restore(db, backup)
            assert Reason.ACCEPTED == (await executor.handle(buy())).reason
            await store.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            restore(backup, db)
            await store.refresh()
            closing = Signal("BTC", "sell", 0.9, 101.0, "moderate", T0 + timedelta(seconds=9), stop_distance=5.0)
            decision = await executor.handle(closing)
            assert (Reason.CLOSED, 0) == (decision.reason, broker.open_position_count())
        finally:
            await store.close()

    async def test_no_entry_slips_through_before_a_follower_halts_the_store(self, tmp_path: Path) -> None:
        """A watching follower turns the kill switch on after a rewind; signals decided before that are refused too."""
        db, backup = tmp_path / "policy.db", tmp_path / "backup.db"
        follower = await PolicyStore.open(f"sqlite:///{db}", lkg_path=None, refresh_interval=3600)
        executor, broker = executor_for(follower)
        in_the_window: list[ExecutionDecision] = []

        async def trade_on_each_change(event: PolicyChanged) -> None:
            # Delivered after the rewound version is installed and before the follower writes its halt.
            if event.version == 1 and not follower.get("emergency.active"):
                in_the_window.append(await executor.handle(buy(f"S{len(in_the_window)}")))

        try:
            restore(db, backup)
            await follower.update({"modes.NORMAL.max_positions": 12}, reason="tune")
            follower.subscribe(trade_on_each_change)
            restore(backup, db)
            # The follower's own polling notices the restore, installs version 1 and then halts the store.
            await eventually(lambda: follower.get("emergency.active") is True)
            assert [Reason.STORE_REWOUND] == [d.reason for d in in_the_window]
            assert [] == broker.fills
            assert Reason.KILL_SWITCH == (await executor.handle(buy("LATE"))).reason
        finally:
            await follower.close()


class TestEveryRefusalHasItsOwnReason:
    """The executor names which fact of the gate refused the signal."""

    @pytest.fixture
    async def backend(self) -> SwitchableBackend:
        """A named in-process store no other test shares, with an outage switch."""
        return SwitchableBackend(MemoryBackend(f"gate-{uuid.uuid4().hex}"))

    async def test_refused_newer_version_refuses_as_version_refused(self, backend: SwitchableBackend) -> None:
        """A newer version the model refuses (its kill switch cannot be known) stops entries, while live."""
        store = await PolicyStore.open(backend, lkg_path=None, watch=False, environ={})
        try:
            document = store.snapshot().document() | {"version": 2}
            document["modes"]["NORMAL"]["max_leverage"] = 1000.0
            await backend.commit(document, HistoryEntry(2, datetime.now(UTC), "faulty-tool", "bad write", ()))
            with pytest.raises(StoreUnavailableError):
                await store.refresh()
            executor, broker = executor_for(store)
            decision = await executor.handle(buy())
            assert [] == broker.fills
            # Answered from the held copy, which the stale rule alone would trade on.
            assert (Reason.VERSION_REFUSED, Source.LAST_KNOWN_GOOD) == (decision.reason, store.source)
            assert "version 2" in decision.detail
            assert not await store.can_open_new_trades()
        finally:
            await store.close()

    @pytest.mark.parametrize(
        ("rule", "saved", "expected"),
        [
            (StaleTradingRule.NEVER, True, Reason.STORE_UNAVAILABLE),
            (StaleTradingRule.LAST_KNOWN_GOOD, False, Reason.STORE_UNAVAILABLE),
            (StaleTradingRule.LAST_KNOWN_GOOD, True, Reason.ACCEPTED),
            (StaleTradingRule.FOLLOW, False, Reason.ACCEPTED),
        ],
    )
    async def test_stale_rule_decides_for_the_executor_too(
        self, backend: SwitchableBackend, tmp_path: Path, rule: StaleTradingRule, saved: bool, expected: Reason
    ) -> None:
        """While the store cannot be reached, the executor follows the stale rule, as can_open_new_trades does."""
        lkg = tmp_path / "lkg.json"
        if saved:
            seeded = await PolicyStore.open(backend, lkg_path=lkg, watch=False, environ={})
            await seeded.close()
        backend.set_available(False)
        store = await PolicyStore.open(backend, lkg_path=lkg, watch=False, environ={}, stale_trading=rule)
        try:
            executor, _broker = executor_for(store)
            decision = await executor.handle(buy())
            assert (expected, True) == (decision.reason, store.stale)
            assert (expected is Reason.ACCEPTED) == await store.can_open_new_trades()
        finally:
            await store.close()

    async def test_kill_switch_refusal_names_its_reason(self, backend: SwitchableBackend) -> None:
        """The kill switch comes first, and the decision says why it is on."""
        store = await PolicyStore.open(backend, lkg_path=None, watch=False, environ={})
        try:
            await store.set_emergency_mode(True, reason="venue down", updated_by="ops")
            decision = await executor_for(store)[0].handle(buy())
            assert (Reason.KILL_SWITCH, GateRefusal.KILL_SWITCH) == (decision.reason, store.gate().refusal)
            assert "venue down" in decision.detail
        finally:
            await store.close()
