"""What the executor and the sizer work out once per snapshot never outlives it: the next signal sees a change.

The executor keeps, for each strategy and symbol, what the snapshot it decides
from says (states, listing, limits, the strategy's config), and the sizer keeps
each mode's limits and each instrument's caps. Each test decides one signal,
changes the policy, and decides the next signal of the same strategy in the same
symbol: the second decision must follow the new version, in both directions.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from policystore import PolicyStore
from policystore.consumers.brokers import PaperBroker
from policystore.consumers.decision_log import MemoryDecisionLog
from policystore.consumers.execution import EventDrivenExecutor, Reason, Signal
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent, SizingDecision

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
#: Far enough apart that the moderate strategy's cooldown never refuses the second signal.
LATER = 3600.0


def signal(side="buy", *, seconds=0.0, confidence=0.9, reference=None) -> Signal:
    return Signal(
        "BTC", side, confidence, 100.0, "moderate", T0 + timedelta(seconds=seconds), stop_distance=5.0,
        reference_price=reference,
    )  # fmt: skip


class FixedSizer:
    """A sizer that proposes ``quantity`` units whatever the limits: only the executor's checks can refuse it."""

    def __init__(self, quantity: float) -> None:
        self.quantity = quantity

    def decide(  # noqa: PLR0917 - the Sizer protocol's positional form
        self, symbol, equity, price, confidence, stop_distance=None, volatility=None, strategy=None, *, policy
    ):
        notional = self.quantity * price
        return SizingDecision(
            symbol, self.quantity, notional, notional / equity, self.quantity * stop_distance, policy.version,
            policy.active_mode, strategy, (), 1.0, equity, price, confidence, stop_distance, volatility,
        )  # fmt: skip

    def record_outcome(self, decision, pnl) -> None:
        """Nothing to learn."""


class Rig:
    """A store, a cost-free paper broker, a sizer without exploration (unless given), an executor."""

    def __init__(self, store: PolicyStore, sizer=None) -> None:
        self.store = store
        self.broker = PaperBroker(100_000, fee_bps=0, slippage_bps=0)
        self.sizer = sizer or RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
        self.log = MemoryDecisionLog()
        self.executor = EventDrivenExecutor(
            policy_store=store, broker=self.broker, sizer=self.sizer, decision_log=self.log
        )

    async def set(self, changes: dict) -> None:
        await self.store.update(changes, reason="test", updated_by="ops")

    async def handle(self, sig: Signal):
        return await self.executor.handle(sig)

    async def opened_then_flat(self, sig: Signal):
        """Handle ``sig`` (an open), then close what it opened outside the executor."""
        decision = await self.handle(sig)
        self.broker.close_all(sig.time)
        return decision


@pytest.fixture
async def store():
    store = await PolicyStore.open(f"memory://snapshots-{uuid.uuid4().hex}", lkg_path=None, watch=False)
    yield store
    await store.close()


@pytest.fixture
def rig(store):
    return Rig(store)


class TestTheNextSignalSeesTheNewVersion:
    """One signal, a write, the next signal of the same strategy in the same symbol."""

    async def test_kill_switch_turned_on_between_two_signals_refuses_the_next(self, rig):
        """The first opens; with the kill switch on, the next is refused for it, from the new version."""
        first = await rig.opened_then_flat(signal())
        await rig.store.set_emergency_mode(True, reason="halt", updated_by="ops")
        second = await rig.handle(signal(seconds=LATER))
        assert (Reason.ACCEPTED, Reason.KILL_SWITCH) == (first.reason, second.reason)
        assert rig.store.snapshot().version == second.policy_version > first.policy_version

    async def test_instrument_halted_between_two_signals_refuses_the_next_even_a_close(self, rig):
        """Halted after an open: the close that follows is refused, naming the instrument's state."""
        opened = await rig.handle(signal())
        await rig.set({"instruments.BTC.state": "halted"})
        closing = await rig.handle(signal("sell", seconds=5))
        assert (Reason.ACCEPTED, Reason.HALTED) == (opened.reason, closing.reason)
        assert "instruments.BTC.state" == closing.control
        assert 1 == rig.broker.open_position_count()

    async def test_halt_lifted_between_two_signals_lets_the_next_through(self, rig):
        """What a snapshot refused is not kept either: active again, the next signal opens."""
        await rig.set({"instruments.BTC.state": "halted"})
        refused = await rig.handle(signal())
        await rig.set({"instruments.BTC.state": "active"})
        accepted = await rig.handle(signal(seconds=LATER))
        assert (Reason.HALTED, Reason.ACCEPTED) == (refused.reason, accepted.reason)

    async def test_limit_lowered_between_two_signals_sizes_the_next_within_it(self, rig):
        """The built-in sizer sizes the next order to the lowered instrument limit, and names it."""
        first = await rig.opened_then_flat(signal())
        await rig.set({"instruments.BTC.max_order_notional": first.sizing.notional / 2})
        second = await rig.handle(signal(seconds=LATER))
        assert (Reason.ACCEPTED, Reason.ACCEPTED) == (first.reason, second.reason)
        assert first.sizing.notional / 2 == pytest.approx(second.sizing.notional)
        assert "max_order_notional" in second.sizing.binding_caps
        assert "max_order_notional" not in first.sizing.binding_caps

    async def test_default_limit_lowered_between_two_signals_sizes_the_next_unlisted_within_it(self, rig):
        """An instrument without an entry trades under the default entry: lowering it binds the next order."""
        first = await rig.opened_then_flat(signal())
        await rig.set({"instruments.default.max_order_notional": first.sizing.notional / 4})
        second = await rig.handle(signal(seconds=LATER))
        assert (Reason.ACCEPTED, Reason.ACCEPTED) == (first.reason, second.reason)
        assert first.sizing.notional / 4 == pytest.approx(second.sizing.notional)
        assert "max_order_notional" in second.sizing.binding_caps

    async def test_default_halted_between_two_signals_refuses_the_next_unlisted_and_not_a_listed_one(self, rig):
        """The default entry's state, set after a first signal, refuses the next one in a symbol without an entry."""
        await rig.set({"instruments.ETH.max_order_quantity": 1_000})
        first = await rig.opened_then_flat(signal())
        await rig.set({"instruments.default.state": "halted"})
        second = await rig.handle(signal(seconds=LATER))
        listed = await rig.handle(replace(signal(seconds=LATER + 1), symbol="ETH"))
        assert (Reason.ACCEPTED, Reason.HALTED, "instruments.default.state") == (
            first.reason,
            second.reason,
            second.control,
        )
        assert "instruments.default.state is halted: no order in BTC may be sent" == second.detail
        assert Reason.HALTED == listed.reason  # ETH sets no state of its own: the default's applies to it too

    async def test_limit_lowered_between_two_signals_refuses_a_proposal_above_it(self, store):
        """A sizer that ignores limits: its next proposal, above the lowered limit, is refused with the figures."""
        rig = Rig(store, sizer=FixedSizer(10))
        await rig.set({"instruments.BTC.max_order_notional": 5_000})
        first = await rig.opened_then_flat(signal())
        await rig.set({"instruments.BTC.max_order_notional": 500})
        second = await rig.handle(signal(seconds=LATER))
        assert (Reason.ACCEPTED, Reason.ORDER_NOTIONAL) == (first.reason, second.reason)
        assert "order notional 1,000 above instruments.BTC.max_order_notional 500" == second.detail

    @pytest.mark.parametrize(
        ("changes", "reason", "control"),
        [
            ({"strategies.moderate.state": "reducing"}, Reason.REDUCING, "strategies.moderate.state"),
            ({"trading.allow_unlisted": False}, Reason.INSTRUMENT_NOT_ALLOWED, "trading.allow_unlisted"),
            ({"instruments.BTC.price_collar": 0.01}, Reason.PRICE_COLLAR, "instruments.BTC.price_collar"),
            ({"trading.max_orders_per_minute": 1}, Reason.ORDER_RATE, "trading.max_orders_per_minute"),
            ({"strategies.moderate.min_confidence": 0.95}, Reason.LOW_CONFIDENCE, None),
        ],
        ids=["reducing", "unlisted", "collar", "order-rate", "strategy-config"],
    )
    async def test_control_set_between_two_signals_refuses_the_next(self, rig, changes, reason, control):
        """Each control, set after a first signal opened, refuses the next one of the same pair."""
        first = await rig.opened_then_flat(signal(reference=105.0))
        await rig.set(changes)
        second = await rig.handle(signal(seconds=LATER, reference=105.0))
        assert (Reason.ACCEPTED, reason, control) == (first.reason, second.reason, second.control)

    async def test_expiring_change_ended_between_two_signals_is_undone_for_the_next(self):
        """A halt lifted for an hour: inside the hour the signal opens; after it, by the store's clock, halted."""
        now = [datetime.now(UTC)]
        store = await PolicyStore.open(
            f"memory://snapshots-{uuid.uuid4().hex}", lkg_path=None, watch=False, clock=lambda: now[0]
        )
        try:
            rig = Rig(store)
            await rig.set({"instruments.BTC.state": "halted"})
            await store.update({"instruments.BTC.state": "active"}, reason="event", updated_by="ops", expires_in=3600)
            inside = await rig.opened_then_flat(signal())
            now[0] += timedelta(hours=2)
            after = await rig.handle(signal(seconds=LATER))
            assert (Reason.ACCEPTED, Reason.HALTED) == (inside.reason, after.reason)
        finally:
            await store.close()


class TestTheSizerFollowsTheSnapshotItIsGiven:
    """The sizer keeps limits per snapshot object: the one it is given decides, back and forth."""

    async def test_each_snapshot_sizes_by_its_own_limits(self, store):
        """Sizing under a new version, then again under the old snapshot, applies each one's limit."""
        sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
        old = store.snapshot()
        await store.update({"instruments.BTC.max_order_notional": 250}, reason="test", updated_by="ops")
        new = store.snapshot()

        def notional(policy) -> float:
            return sizer.decide("BTC", 100_000, 100.0, 0.9, 5.0, strategy="moderate", policy=policy).notional

        sized = [notional(old), notional(new), notional(old), notional(new)]
        assert sized[0] == sized[2] > 250
        assert 250 == pytest.approx(sized[1]) == pytest.approx(sized[3])


class TestConsumersOfTwoStoresInOneProcess:
    """The rules of a snapshot are shared by every consumer deciding from it, and by nothing else."""

    async def test_executors_of_two_stores_each_decide_by_their_own_limits(self, store):
        """Two stores with different limits, their signals interleaved: each executor sizes by its store's."""
        other = await PolicyStore.open(f"memory://snapshots-{uuid.uuid4().hex}", lkg_path=None, watch=False)
        try:
            low, high = Rig(store), Rig(other)
            await low.set({"instruments.BTC.max_order_notional": 300})
            await high.set({"instruments.BTC.max_order_notional": 600})
            notionals = []
            for n in range(4):
                for rig in (low, high):
                    decision = await rig.opened_then_flat(signal(seconds=n * LATER))
                    notionals.append(decision.sizing.notional)
            assert [300, 600] * 4 == pytest.approx(notionals)
        finally:
            await other.close()

    async def test_more_snapshots_than_are_kept_each_decide_by_their_own_limits(self, store):
        """Twelve versions, each with its own limit, decided from in turn twice: every one sizes by its own."""
        sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
        snapshots = []
        for n in range(12):
            await store.update({"instruments.BTC.max_order_notional": 100 + n}, reason="test", updated_by="ops")
            snapshots.append(store.snapshot())
        for _ in range(2):
            sized = [
                sizer.decide("BTC", 100_000, 100.0, 0.9, 5.0, strategy="moderate", policy=policy).notional
                for policy in snapshots
            ]
            assert [100 + n for n in range(12)] == pytest.approx(sized)
