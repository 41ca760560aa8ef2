"""The executor under trading states and pre-trade controls: each state and scope, each limit, each refusal."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from policystore import PolicyStore
from policystore.cli.main import cli
from policystore.consumers.brokers import PaperBroker
from policystore.consumers.decision_log import JsonlDecisionLog, MemoryDecisionLog, read_decisions
from policystore.consumers.execution import EventDrivenExecutor, Reason, Signal
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.pretrade import daily_loss_amount, exposure_measure
from policystore.consumers.sizing import RLPositionSizingAgent, SizingDecision

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def signal(
    symbol="BTC",
    side="buy",
    *,
    price=100.0,
    strategy="moderate",
    seconds=0.0,
    stop=5.0,
    reference=None,
    confidence=0.9,
) -> Signal:
    return Signal(
        symbol,
        side,
        confidence,
        price,
        strategy,
        T0 + timedelta(seconds=seconds),
        stop_distance=stop,
        reference_price=reference,
    )


class FixedSizer:
    """A sizer that proposes ``quantity`` units whatever the limits: the executor must refuse what breaks one."""

    def __init__(self, quantity: float) -> None:
        self.quantity = quantity

    def decide(  # noqa: PLR0917 - the Sizer protocol's positional form
        self, symbol, equity, price, confidence, stop_distance=None, volatility=None, strategy=None, *, policy
    ):
        notional = self.quantity * price
        return SizingDecision(
            symbol,
            self.quantity,
            notional,
            notional / equity,
            self.quantity * (stop_distance or 1.0),
            policy.version,
            policy.active_mode,
            strategy,
            (),
            1.0,
            equity,
            price,
            confidence,
            stop_distance or 1.0,
            volatility,
        )

    def record_outcome(self, decision, pnl) -> None:
        """Nothing to learn."""


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Rig:
    """A memory store, a cost-free paper broker, a sizer (the built-in one unless given), an executor."""

    def __init__(self, store: PolicyStore, *, sizer=None, broker=None, clock=None) -> None:
        self.store = store
        self.broker = broker if broker is not None else PaperBroker(100_000, fee_bps=0, slippage_bps=0)
        self.log = MemoryDecisionLog()
        self.sizer = sizer or RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
        self.executor = EventDrivenExecutor(
            policy_store=store, broker=self.broker, sizer=self.sizer, decision_log=self.log, clock=clock
        )

    async def set(self, **changes) -> None:
        """Write ``changes`` (dots as double underscores) as an admin."""
        await self.store.update({k.replace("__", "."): v for k, v in changes.items()}, reason="test", updated_by="ops")

    async def handle(self, sig: Signal):
        return await self.executor.handle(sig)


@pytest.fixture
async def store():
    store = await PolicyStore.open(f"memory://controls-{uuid.uuid4().hex}", lkg_path=None, watch=False)
    yield store
    await store.close()


@pytest.fixture
def rig(store):
    return Rig(store)


#: Each scope's state path, and the signal it applies to.
SCOPES = [
    ("trading.state", signal()),
    ("strategies.moderate.state", signal()),
    ("instruments.BTC.state", signal()),
    ("instruments.default.state", signal(symbol="SOL")),
]


class TestStates:
    """The strictest state of the firm, the strategy and the instrument decides."""

    @pytest.mark.parametrize(("path", "sig"), SCOPES, ids=[p for p, _ in SCOPES])
    @pytest.mark.parametrize("state", ["reducing", "halted"])
    async def test_open_refused_by_each_state_at_each_scope(self, rig, path, sig, state):
        """An order that would open a position is refused by reducing and halted, naming the path."""
        await rig.store.update({path: state}, reason="test", updated_by="ops")
        decision = await rig.handle(sig)
        assert (False, Reason(state), path) == (decision.accepted, decision.reason, decision.control)
        assert f"{path} is {state}" in decision.detail
        assert [] == rig.broker.fills

    @pytest.mark.parametrize(("path", "sig"), SCOPES, ids=[p for p, _ in SCOPES])
    async def test_close_allowed_while_reducing_at_each_scope(self, rig, path, sig):
        """reducing lets an order that only reduces an open position through."""
        await rig.handle(sig)
        await rig.store.update({path: "reducing"}, reason="test", updated_by="ops")
        closed = await rig.handle(signal(sig.symbol, "sell", seconds=5))
        assert (True, Reason.CLOSED) == (closed.accepted, closed.reason)
        assert 0 == rig.broker.open_position_count()

    @pytest.mark.parametrize(("path", "sig"), SCOPES, ids=[p for p, _ in SCOPES])
    async def test_close_refused_while_halted_at_each_scope(self, rig, path, sig):
        """halted refuses even the way out: the position stays open."""
        await rig.handle(sig)
        await rig.store.update({path: "halted"}, reason="test", updated_by="ops")
        refused = await rig.handle(signal(sig.symbol, "sell", seconds=5))
        assert (False, Reason.HALTED, path) == (refused.accepted, refused.reason, refused.control)
        assert 1 == rig.broker.open_position_count()

    async def test_strictest_scope_wins_and_other_symbols_trade(self, rig):
        """An instrument halted and its strategy reducing: halted; another symbol of another strategy trades."""
        await rig.set(strategies__moderate__state="reducing", instruments__BTC__state="halted")
        btc = await rig.handle(signal())
        eth = await rig.handle(signal("ETH"))
        sol = await rig.handle(signal("SOL", strategy="aggressive"))
        assert [Reason.HALTED, Reason.REDUCING, Reason.ACCEPTED] == [btc.reason, eth.reason, sol.reason]
        assert ["instruments.BTC.state", "strategies.moderate.state"] == [btc.control, eth.control]

    async def test_own_active_state_overrides_a_halted_default(self, rig):
        """An instrument's own state applies before the default's."""
        await rig.set(instruments__default__state="halted", instruments__BTC__state="active")
        assert [Reason.ACCEPTED, Reason.HALTED] == [(await rig.handle(signal(s))).reason for s in ("BTC", "ETH")]

    async def test_kill_switch_refuses_opens_and_lets_closes_out(self, rig):
        """The kill switch makes the firm reducing in effect: kill_switch for an open, a close goes through."""
        await rig.handle(signal())
        await rig.store.set_emergency_mode(True, reason="halt", updated_by="ops")
        opened = await rig.handle(signal("ETH"))
        closed = await rig.handle(signal(side="sell", seconds=5))
        assert "reducing" == rig.store.get("trading.effective_state")
        assert [Reason.KILL_SWITCH, Reason.CLOSED] == [opened.reason, closed.reason]

    async def test_unlisted_instrument_refused_when_not_allowed(self, rig):
        """With allow_unlisted false only instruments with an entry trade."""
        await rig.set(trading__allow_unlisted=False, instruments__BTC__state="active")
        listed, unlisted = await rig.handle(signal()), await rig.handle(signal("DOGE"))
        assert [Reason.ACCEPTED, Reason.INSTRUMENT_NOT_ALLOWED] == [listed.reason, unlisted.reason]
        assert "DOGE has no entry under instruments and trading.allow_unlisted is false" == unlisted.detail
        assert "trading.allow_unlisted" == unlisted.control


class TestOrderLimits:
    """A sizer's proposal above an instrument limit is refused with the figures; the built-in sizer sizes down."""

    async def test_order_notional_refused_with_figures(self, store):
        """124 units at 100 is 12,400 above a 10,000 limit."""
        rig = Rig(store, sizer=FixedSizer(124))
        await rig.set(instruments__BTC__max_order_notional=10_000)
        decision = await rig.handle(signal())
        assert Reason.ORDER_NOTIONAL == decision.reason
        assert "order notional 12,400 above instruments.BTC.max_order_notional 10,000" == decision.detail
        assert (124, "instruments.BTC.max_order_notional") == (decision.sizing.quantity, decision.control)
        assert [] == rig.broker.fills

    async def test_notional_worked_out_from_quantity_not_taken_from_the_sizer(self, store):
        """A sizer that under-reports its notional is still refused: the executor multiplies quantity by price."""

        class UnderReporting(FixedSizer):
            def decide(self, *args, **kwargs):
                return dataclasses.replace(super().decide(*args, **kwargs), notional=1.0)

        rig = Rig(store, sizer=UnderReporting(124))
        await rig.set(instruments__BTC__max_order_notional=10_000)
        decision = await rig.handle(signal())
        assert "order notional 12,400 above instruments.BTC.max_order_notional 10,000" == decision.detail

    async def test_order_quantity_refused_falls_back_to_default(self, store):
        """A symbol without its own limit takes instruments.default's."""
        rig = Rig(store, sizer=FixedSizer(12))
        await rig.set(instruments__default__max_order_quantity=10)
        decision = await rig.handle(signal("ETH"))
        assert "order quantity 12 above instruments.default.max_order_quantity 10" == decision.detail

    async def test_position_notional_refused(self, store):
        """The notional held after the order is checked against max_position_notional."""
        rig = Rig(store, sizer=FixedSizer(30))
        await rig.set(instruments__BTC__max_position_notional=2_500)
        decision = await rig.handle(signal())
        assert (Reason.POSITION_NOTIONAL, "instruments.BTC.max_position_notional") == (
            decision.reason,
            decision.control,
        )
        assert "position notional 3,000 after the order above instruments.BTC.max_position_notional 2,500" == (
            decision.detail
        )

    async def test_hard_cap_applies_where_no_limit_is_set(self, store):
        """hard_limits.max_order_notional binds an instrument with no limit of its own."""
        rig = Rig(store, sizer=FixedSizer(60))
        await rig.set(hard_limits__max_order_notional=5_000)
        decision = await rig.handle(signal())
        assert "order notional 6,000 above hard_limits.max_order_notional 5,000" == decision.detail

    @pytest.mark.parametrize(
        ("changes", "cap"),
        [
            ({"instruments.BTC.max_order_notional": 400}, "max_order_notional"),
            ({"instruments.default.max_order_quantity": 3}, "max_order_quantity"),
            ({"instruments.BTC.max_position_notional": 350}, "max_position_notional"),
            ({"trading.max_gross_exposure": 300}, "max_gross_exposure"),
        ],
    )
    async def test_builtin_sizer_sizes_down_to_the_limit(self, rig, changes, cap):
        """The built-in sizer proposes what fits, says which cap bound, and the executor accepts it."""
        await rig.store.update(changes, reason="test", updated_by="ops")
        decision = await rig.handle(signal())
        assert Reason.ACCEPTED == decision.reason
        assert cap in decision.sizing.binding_caps
        assert decision.sizing.notional <= 400
        assert decision.sizing.quantity <= 4


class TestExposure:
    """Gross exposure: the sum of the open positions' notionals after the order."""

    async def test_no_room_left_refused_before_sizing(self, rig):
        """Positions already at the limit leave no room: refused with the figure."""
        await rig.set(trading__max_gross_exposure=1_000)
        first = await rig.handle(signal())  # the 1000 size cap of NORMAL: exactly the limit
        second = await rig.handle(signal("ETH"))
        assert 1_000 == pytest.approx(rig.broker.gross_exposure())
        assert [Reason.ACCEPTED, Reason.GROSS_EXPOSURE] == [first.reason, second.reason]
        assert "gross exposure 1,000 leaves no room under trading.max_gross_exposure 1,000" == second.detail

    async def test_sized_order_above_room_refused(self, store):
        """A fixed sizer's order that would take exposure past the limit is refused, with the sum."""
        rig = Rig(store, sizer=FixedSizer(6))
        await rig.set(trading__max_gross_exposure=1_000)
        first = await rig.handle(signal())
        second = await rig.handle(signal("ETH"))
        assert [Reason.ACCEPTED, Reason.GROSS_EXPOSURE] == [first.reason, second.reason]
        assert "gross exposure 600 + order 600 = 1,200 above trading.max_gross_exposure 1,000" == second.detail

    async def test_builtin_sizer_fills_exactly_the_room(self, rig):
        """The second position is sized to what the limit leaves."""
        await rig.set(trading__max_gross_exposure=1_500)
        await rig.handle(signal())
        second = await rig.handle(signal("ETH"))
        assert Reason.ACCEPTED == second.reason
        assert 500 == pytest.approx(second.sizing.notional)
        assert "max_gross_exposure" in second.sizing.binding_caps

    async def test_broker_without_exposure_measure_counts_the_positions_it_opened(self, store):
        """A broker with no gross_exposure() is asked for each position the executor opened."""

        class PlainBroker:
            """A paper broker reached only through the Broker protocol."""

            def __init__(self) -> None:
                self._inner = PaperBroker(100_000, fee_bps=0, slippage_bps=0)
                self.equity = 100_000.0

            async def submit(self, order):
                return await self._inner.submit(order)

            def position(self, symbol):
                return self._inner.position(symbol)

            def open_position_count(self):
                return self._inner.open_position_count()

            def daily_loss_fraction(self):
                return self._inner.daily_loss_fraction()

            def on_close(self, callback):
                self._inner.on_close(callback)

        broker = PlainBroker()
        rig = Rig(store, broker=broker)
        await rig.set(trading__max_gross_exposure=1_000)
        await rig.handle(signal())
        refused = await rig.handle(signal("ETH"))
        assert Reason.GROSS_EXPOSURE == refused.reason
        assert 1_000 == pytest.approx(exposure_measure(broker, lambda: ["BTC", "ETH"])())


class TestCollar:
    """The price collar applies against a reference price, and only with one."""

    async def test_price_outside_collar_refused_with_figures(self, rig):
        """103.5 is 3.5% from 100, beyond a 2% collar."""
        await rig.set(instruments__BTC__price_collar=0.02)
        decision = await rig.handle(signal(price=103.5, reference=100.0))
        assert Reason.PRICE_COLLAR == decision.reason
        assert (
            "price 103.5 is 3.5% from the reference price 100, beyond instruments.BTC.price_collar 2%"
            == decision.detail
        )

    async def test_price_inside_collar_accepted(self, rig):
        """1.5% from the reference is inside a 2% collar."""
        await rig.set(instruments__default__price_collar=0.02)
        decision = await rig.handle(signal(price=101.5, reference=100.0))
        assert (Reason.ACCEPTED, "sized within the policy") == (decision.reason, decision.detail)

    async def test_no_reference_price_collar_not_applied_and_said(self, rig):
        """Without a reference price the order is judged without the collar, and the decision says so."""
        await rig.set(instruments__BTC__price_collar=0.02)
        decision = await rig.handle(signal(price=150.0))
        assert Reason.ACCEPTED == decision.reason
        assert "price collar not applied: the signal has no reference price (instruments.BTC.price_collar 2%)" in (
            decision.detail
        )

    async def test_close_passes_any_collar(self, rig):
        """A close far from the reference price still goes out: it only reduces."""
        await rig.handle(signal())
        await rig.set(instruments__BTC__price_collar=0.01)
        closed = await rig.handle(signal(side="sell", price=80.0, reference=100.0, seconds=5))
        assert Reason.CLOSED == closed.reason


class TestThrottle:
    """At most max_orders_per_minute orders per executor in any 60 seconds of its clock."""

    async def test_third_order_in_a_minute_refused_then_allowed(self, store):
        """Two orders sent; the third inside the minute is refused, one after the minute passes."""
        clock = Clock()
        rig = Rig(store, clock=clock)
        await rig.set(trading__max_orders_per_minute=2)
        reasons = []
        for n, symbol in enumerate(("A", "B", "C")):
            clock.now = T0 + timedelta(seconds=10 * n)
            reasons.append((await rig.handle(signal(symbol))).reason)
        clock.now = T0 + timedelta(seconds=61)
        later = await rig.handle(signal("D"))
        assert [Reason.ACCEPTED, Reason.ACCEPTED, Reason.ORDER_RATE] == reasons
        assert Reason.ACCEPTED == later.reason
        refused = rig.log.decisions[2]
        assert (
            "this executor sent 2 orders in the last 60 s; trading.max_orders_per_minute is 2 (counted per executor)"
            == refused.detail
        )

    async def test_counts_per_executor(self, store):
        """A second executor on the same store has its own count."""
        clock = Clock()
        first, second = Rig(store, clock=clock), Rig(store, clock=clock)
        await first.set(trading__max_orders_per_minute=1)
        assert Reason.ACCEPTED == (await first.handle(signal("A"))).reason
        assert Reason.ORDER_RATE == (await first.handle(signal("B"))).reason
        assert Reason.ACCEPTED == (await second.handle(signal("C"))).reason

    async def test_closes_are_never_throttled(self, store):
        """A close at the limit goes out (and counts)."""
        clock = Clock()
        rig = Rig(store, clock=clock)
        await rig.handle(signal())
        await rig.set(trading__max_orders_per_minute=1)
        closed = await rig.handle(signal(side="sell", seconds=5))
        again = await rig.handle(signal("ETH"))
        assert [Reason.CLOSED, Reason.ORDER_RATE] == [closed.reason, again.reason]


class TestDailyLoss:
    """The day's loss in money against trading.max_daily_loss: refused, and the kill switch is turned on."""

    async def test_loss_in_money_trips_the_kill_switch(self, rig):
        """A 600 loss on the day (under NORMAL's 5 % drawdown of 100,000) reaches a 500 limit."""
        await rig.set(trading__max_daily_loss=500)
        await rig.handle(signal(stop=1.5))  # 10 units: the 1000 size cap at 100
        rig.broker.mark("BTC", 40.0, T0 + timedelta(minutes=1))  # the stop: 10 x 60 = 600 lost
        refused = await rig.handle(signal("ETH", seconds=120))
        after = await rig.handle(signal("SOL", seconds=180))
        emergency = rig.store.snapshot().emergency
        assert (Reason.DAILY_LOSS, "trading.max_daily_loss") == (refused.reason, refused.control)
        assert "the day's loss of 600 reached trading.max_daily_loss 500" == refused.detail
        assert Reason.KILL_SWITCH == after.reason
        assert (True, "executor") == (emergency.active, emergency.activated_by)
        assert emergency.reason.startswith("daily loss limit: the day's loss of 600")

    async def test_hard_cap_is_the_loss_limit_when_none_is_set(self, rig):
        """hard_limits.max_daily_loss applies where trading.max_daily_loss is null."""
        await rig.set(hard_limits__max_daily_loss=300)
        await rig.handle(signal(stop=1.5))
        rig.broker.mark("BTC", 40.0, T0 + timedelta(minutes=1))
        refused = await rig.handle(signal("ETH", seconds=120))
        assert "hard_limits.max_daily_loss" == refused.control

    def test_loss_amount_is_the_fraction_of_the_days_starting_equity(self):
        """10,000 at the start, 9,400 now: 6 % of 10,000 is 600."""
        assert 600 == pytest.approx(daily_loss_amount(0.06, 9_400))
        assert 0.0 == daily_loss_amount(0.0, 9_400)


class TestRecorded:
    """The new refusals reach the decision log and ``policystore decisions``."""

    async def test_decision_log_records_reason_control_and_reference(self, store, tmp_path):
        """A collar refusal is one JSON line with its reason, control and reference price."""
        path = tmp_path / "decisions.jsonl"
        await store.update({"instruments.BTC.price_collar": 0.01}, reason="collar", updated_by="ops")
        with JsonlDecisionLog(path) as log:
            executor = EventDrivenExecutor(
                policy_store=store,
                broker=PaperBroker(10_000),
                sizer=RLPositionSizingAgent(policy_store=store),
                decision_log=log,
            )
            await executor.handle(signal(price=105.0, reference=100.0))
        (record,) = read_decisions(path)
        assert ("price_collar", "instruments.BTC.price_collar", 100.0, 2) == (
            record["reason"],
            record["control"],
            record["reference_price"],
            record["policy_version"],
        )
        text = CliRunner().invoke(cli, ["decisions", "--log", str(path)])
        as_json = CliRunner().invoke(cli, ["decisions", "--log", str(path), "--json"])
        assert "refused  price_collar" in text.output
        assert "beyond instruments.BTC.price_collar 1%" in text.output
        assert "price_collar" == json.loads(as_json.output)[0]["reason"]

    def test_signal_reference_price_must_be_positive_and_finite(self):
        """A reference price is validated like the price."""
        for bad in (0.0, -1.0, float("nan"), 10**400):
            with pytest.raises(ValueError, match="reference_price"):
                signal(reference=bad)
