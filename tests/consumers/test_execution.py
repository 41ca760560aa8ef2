"""The executor: each refusal reason, the drawdown breaker, mode switches and the decision log."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from click.testing import CliRunner

from policystore import PolicyStore
from policystore.cli.main import cli
from policystore.consumers.brokers import PaperBroker
from policystore.consumers.decision_log import JsonlDecisionLog, MemoryDecisionLog, read_decisions
from policystore.consumers.execution import EventDrivenExecutor, Reason, Signal
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent
from policystore.testing import memory_store

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def signal(
    symbol="BTC", side="buy", confidence=0.9, *, price=100.0, strategy="moderate", seconds=0.0, stop=5.0
) -> Signal:
    return Signal(symbol, side, confidence, price, strategy, T0 + timedelta(seconds=seconds), stop_distance=stop)


class Rig:
    """A memory store, a cost-free paper broker, a sizer without exploration, an executor."""

    def __init__(self, store: PolicyStore, log=None, broker=None) -> None:
        self.store = store
        self.broker = broker if broker is not None else PaperBroker(10_000, fee_bps=0, slippage_bps=0)
        self.log = log if log is not None else MemoryDecisionLog()
        sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
        self.executor = EventDrivenExecutor(policy_store=store, broker=self.broker, sizer=sizer, decision_log=self.log)


class FigureBroker(PaperBroker):
    """A paper broker whose day's loss or equity can be forced to any figure."""

    def __init__(self) -> None:
        super().__init__(10_000, fee_bps=0, slippage_bps=0)
        self.forced_loss: float | None = None
        self.forced_equity: float | None = None

    def daily_loss_fraction(self) -> float:
        return self.forced_loss if self.forced_loss is not None else super().daily_loss_fraction()

    @property
    def equity(self) -> float:
        return self.forced_equity if self.forced_equity is not None else super().equity


class FlakyBroker(PaperBroker):
    """A paper broker whose submit raises for the symbols in ``failing``."""

    def __init__(self) -> None:
        super().__init__(10_000, fee_bps=0, slippage_bps=0)
        self.failing: set[str] = set()

    async def submit(self, order):
        if order.symbol in self.failing:
            raise ConnectionError(f"exchange unreachable for {order.symbol}")
        return await super().submit(order)


class SlowBroker(PaperBroker):
    """A paper broker that yields to the event loop before filling, as a networked broker does."""

    def __init__(self) -> None:
        super().__init__(10_000, fee_bps=0, slippage_bps=0)

    async def submit(self, order):
        for _ in range(3):
            await asyncio.sleep(0)
        return await super().submit(order)


@pytest.fixture
async def store():
    store = await memory_store()
    yield store
    await store.close()


@pytest.fixture
def rig(store):
    return Rig(store)


class TestRefusals:
    """Each policy rule refuses with its reason, and nothing reaches the broker."""

    async def test_handle_kill_switch_on_refuses(self, rig):
        """While the kill switch is on, no trade opens."""
        await rig.store.set_emergency_mode(True, reason="test halt", updated_by="ops")
        decision = await rig.executor.handle(signal())
        assert (False, Reason.KILL_SWITCH) == (decision.accepted, decision.reason)
        assert [] == rig.broker.fills

    async def test_handle_low_confidence_uses_the_stores_threshold(self, rig):
        """The threshold is the strategy's effective min_confidence, read from the store."""
        await rig.store.update({"strategies.moderate.min_confidence": 0.8}, updated_by="ops", reason="stricter")
        refused = await rig.executor.handle(signal(confidence=0.7))
        accepted = await rig.executor.handle(signal(symbol="ETH", confidence=0.85))
        assert Reason.LOW_CONFIDENCE == refused.reason
        assert Reason.ACCEPTED == accepted.reason

    async def test_handle_reentry_inside_cooldown_refuses(self, rig):
        """After an entry, a close and a re-entry 30 s later are inside moderate's 120 s cooldown."""
        await rig.executor.handle(signal(seconds=0))
        closed = await rig.executor.handle(signal(side="sell", seconds=10))
        again = await rig.executor.handle(signal(seconds=30))
        later = await rig.executor.handle(signal(seconds=121))
        assert [Reason.CLOSED, Reason.COOLDOWN, Reason.ACCEPTED] == [closed.reason, again.reason, later.reason]

    async def test_handle_beyond_max_positions_refuses(self, rig):
        """The conservative strategy holds at most five positions."""
        reasons = [
            (await rig.executor.handle(signal(symbol=f"S{i}", strategy="conservative"))).reason for i in range(6)
        ]
        assert [Reason.ACCEPTED] * 5 + [Reason.MAX_POSITIONS] == reasons

    async def test_handle_unknown_strategy_refuses(self, rig):
        """A strategy the policy does not know is refused, not guessed."""
        decision = await rig.executor.handle(signal(strategy="martingale"))
        assert Reason.UNKNOWN_STRATEGY == decision.reason

    async def test_handle_same_side_while_held_refuses(self, rig):
        """No second position in a held symbol."""
        await rig.executor.handle(signal())
        decision = await rig.executor.handle(signal(seconds=500))
        assert Reason.POSITION_OPEN == decision.reason

    async def test_handle_opposite_signal_under_kill_switch_still_closes(self, rig):
        """Closing lowers risk, so it is allowed while the kill switch is on."""
        await rig.executor.handle(signal())
        await rig.store.set_emergency_mode(True, reason="halt", updated_by="ops")
        decision = await rig.executor.handle(signal(side="sell", seconds=5))
        assert (True, Reason.CLOSED) == (decision.accepted, decision.reason)
        assert 0 == rig.broker.open_position_count()


class TestDrawdownBreaker:
    """A day's loss at max_daily_drawdown refuses and turns the kill switch on through the store."""

    async def test_handle_after_daily_loss_turns_kill_switch_on(self, rig):
        """A 6 % loss (NORMAL allows 5 %) refuses the next signal; the store shows the executor's kill switch."""
        opened = await rig.executor.handle(signal(stop=1.5))
        assert 10 == pytest.approx(opened.sizing.quantity)  # 1000 notional cap at price 100
        rig.broker.mark("BTC", 40.0, T0 + timedelta(minutes=1))  # stop hit: 10 x 60 = 600 lost
        refused = await rig.executor.handle(signal(symbol="ETH", seconds=120))
        after = await rig.executor.handle(signal(symbol="SOL", seconds=180))
        emergency = rig.store.snapshot().emergency
        history = await rig.store.history(limit=1)
        assert Reason.DAILY_DRAWDOWN == refused.reason
        assert Reason.KILL_SWITCH == after.reason
        assert (True, "executor") == (emergency.active, emergency.activated_by)
        assert "executor" == history[0].by
        assert not await rig.store.can_open_new_trades()

    @pytest.mark.parametrize(
        ("loss", "equity", "named"),
        [
            (math.nan, None, "nan"),
            (math.inf, None, "inf"),
            (None, math.nan, "equity is nan"),
            (None, -math.inf, "equity is -inf"),
            (None, 0.0, "equity is 0.0"),
        ],
    )
    async def test_handle_unusable_loss_or_equity_trips_the_breaker(self, store, loss, equity, named):
        """A NaN loss passes ``loss >= limit``; any unusable figure refuses and turns the kill switch on."""
        broker = FigureBroker()
        broker.forced_loss, broker.forced_equity = loss, equity
        rig = Rig(store, broker=broker)
        refused = await rig.executor.handle(signal())
        emergency = store.snapshot().emergency
        assert (False, Reason.DAILY_DRAWDOWN) == (refused.accepted, refused.reason)
        assert named in refused.detail
        assert [] == broker.fills
        assert (True, "executor") == (emergency.active, emergency.activated_by)
        assert named in emergency.reason
        assert [Reason.DAILY_DRAWDOWN] == [d.reason for d in rig.log.decisions]

    async def test_handle_unusable_loss_while_kill_switch_on_writes_no_new_version(self, store):
        """The kill switch is turned on once; later signals are refused by it without another write."""
        broker = FigureBroker()
        broker.forced_loss = math.nan
        rig = Rig(store, broker=broker)
        await rig.executor.handle(signal())
        version = store.snapshot().version
        after = await rig.executor.handle(signal(symbol="ETH"))
        assert Reason.KILL_SWITCH == after.reason
        assert version == store.snapshot().version


class TestBrokerFailure:
    """A broker that raises gives a recorded broker_rejected refusal, and trading goes on."""

    async def test_handle_submit_raises_returns_recorded_refusal(self, store):
        """The error is in the detail, the decision is logged, and no position counts as opened."""
        broker = FlakyBroker()
        broker.failing.add("BTC")
        rig = Rig(store, broker=broker)
        decision = await rig.executor.handle(signal())
        assert (False, Reason.BROKER_REJECTED) == (decision.accepted, decision.reason)
        assert "ConnectionError" in decision.detail
        assert "exchange unreachable for BTC" in decision.detail
        assert (None, "BTC") == (decision.fill, decision.order.symbol)
        assert decision.sizing.quantity > 0  # what was refused is on record
        assert [decision] == rig.log.decisions
        assert 0 == broker.open_position_count()

    async def test_handle_after_rejected_open_no_cooldown_started(self, store):
        """The rejected open did not happen, so a retry inside the cooldown is not refused for it."""
        broker = FlakyBroker()
        broker.failing.add("BTC")
        rig = Rig(store, broker=broker)
        await rig.executor.handle(signal())
        broker.failing.clear()
        retry = await rig.executor.handle(signal(seconds=10))
        assert Reason.ACCEPTED == retry.reason

    async def test_handle_close_submit_raises_returns_refusal_position_kept(self, store):
        """A failed close is recorded too; the position is still held."""
        broker = FlakyBroker()
        rig = Rig(store, broker=broker)
        await rig.executor.handle(signal())
        broker.failing.add("BTC")
        decision = await rig.executor.handle(signal(side="sell", seconds=5))
        assert (False, Reason.BROKER_REJECTED) == (decision.accepted, decision.reason)
        assert "closing the buy position" in decision.detail
        assert 1 == broker.open_position_count()

    async def test_run_submit_raises_loop_continues_and_logs(self, store, tmp_path):
        """The queue loop records the rejection and goes on to the next signal."""
        broker = FlakyBroker()
        broker.failing.add("BAD")
        path = tmp_path / "decisions.jsonl"
        with JsonlDecisionLog(path) as log:
            rig = Rig(store, log, broker=broker)
            queue: asyncio.Queue[Signal | None] = asyncio.Queue()
            for item in (signal(symbol="BAD"), signal(symbol="ETH"), None):
                queue.put_nowait(item)
            handled = await rig.executor.run(queue)
        records = read_decisions(path)
        assert 2 == handled
        assert ["broker_rejected", "accepted"] == [r["reason"] for r in records]
        assert "exchange unreachable for BAD" in records[0]["detail"]
        assert 1 == broker.open_position_count()

    async def test_decisions_command_shows_broker_rejected(self, store, tmp_path):
        """``policystore decisions`` lists the new reason, in text and JSON."""
        broker = FlakyBroker()
        broker.failing.add("BTC")
        path = tmp_path / "decisions.jsonl"
        with JsonlDecisionLog(path) as log:
            await Rig(store, log, broker=broker).executor.handle(signal())
        text = CliRunner().invoke(cli, ["decisions", "--log", str(path)])
        as_json = CliRunner().invoke(cli, ["decisions", "--log", str(path), "--json"])
        assert 0 == text.exit_code, text.output
        assert "refused  broker_rejected" in text.output
        assert "broker_rejected" == json.loads(as_json.output)[0]["reason"]


class TestConcurrency:
    """Signals decided at the same time each see the positions opened before them."""

    async def test_handle_concurrent_signals_cannot_both_pass_max_positions(self, store):
        """With four of conservative's five positions open, two simultaneous signals open one more, not two."""
        broker = SlowBroker()
        rig = Rig(store, broker=broker)
        for i in range(4):
            await rig.executor.handle(signal(symbol=f"S{i}", strategy="conservative"))
        both = await asyncio.gather(
            rig.executor.handle(signal(symbol="A", strategy="conservative")),
            rig.executor.handle(signal(symbol="B", strategy="conservative")),
        )
        assert [Reason.ACCEPTED, Reason.MAX_POSITIONS] == [d.reason for d in both]
        assert 5 == broker.open_position_count()

    async def test_handle_concurrent_signals_same_symbol_open_once(self, store):
        """Two simultaneous buys of one symbol: one opens, the other sees it open."""
        broker = SlowBroker()
        rig = Rig(store, broker=broker)
        both = await asyncio.gather(rig.executor.handle(signal()), rig.executor.handle(signal()))
        assert [Reason.ACCEPTED, Reason.POSITION_OPEN] == [d.reason for d in both]
        assert 1 == broker.open_position_count()

    async def test_run_and_direct_call_share_the_gate(self, store):
        """The queue loop and a direct call running together still respect max_positions."""
        broker = SlowBroker()
        rig = Rig(store, broker=broker)
        for i in range(4):
            await rig.executor.handle(signal(symbol=f"S{i}", strategy="conservative"))
        queue: asyncio.Queue[Signal | None] = asyncio.Queue()
        queue.put_nowait(signal(symbol="Q", strategy="conservative"))
        queue.put_nowait(None)
        handled, direct = await asyncio.gather(
            rig.executor.run(queue), rig.executor.handle(signal(symbol="D", strategy="conservative"))
        )
        assert 1 == handled
        assert 5 == broker.open_position_count()
        reasons = sorted(d.reason.value for d in rig.log.decisions[4:])
        assert ["accepted", "max_positions"] == reasons
        assert direct.reason in {Reason.ACCEPTED, Reason.MAX_POSITIONS}


class TestPolicyVersions:
    """Each decision carries the version it was made under."""

    async def test_handle_mode_switch_between_signals_changes_version_and_limits(self, rig):
        """The second signal, after a switch to DEFENSIVE, is sized smaller under the new version."""
        first = await rig.executor.handle(signal(symbol="A", stop=50))
        await rig.store.switch_mode("DEFENSIVE", updated_by="ops", reason="volatility")
        second = await rig.executor.handle(signal(symbol="B", stop=50))
        assert (1, "NORMAL") == (first.policy_version, first.mode)
        assert (2, "DEFENSIVE") == (second.policy_version, second.mode)
        assert 10_000 * 0.015 == pytest.approx(first.sizing.risk_amount)
        assert 10_000 * 0.0075 * 0.7 == pytest.approx(second.sizing.risk_amount)
        assert 2 == second.order.policy_version


class TestRunAndLog:
    """Signals flow from a queue; every decision lands in the JSON Lines log."""

    async def test_run_queue_until_sentinel_logs_every_decision(self, tmp_path):
        """Three signals then None: three lines, each with reason and policy version."""
        store = await memory_store()
        path = tmp_path / "decisions.jsonl"
        try:
            with JsonlDecisionLog(path) as log:
                rig = Rig(store, log)
                queue: asyncio.Queue[Signal | None] = asyncio.Queue()
                for item in (signal(), signal(confidence=0.1, symbol="X"), signal(strategy="nope"), None):
                    queue.put_nowait(item)
                handled = await rig.executor.run(queue)
            records = read_decisions(path)
            assert 3 == handled
            assert ["accepted", "low_confidence", "unknown_strategy"] == [r["reason"] for r in records]
            assert [1, 1, 1] == [r["policy_version"] for r in records]
            assert 1000 == pytest.approx(records[0]["notional"])
        finally:
            await store.close()

    def test_read_decisions_torn_last_line_skipped(self, tmp_path):
        """A record cut short by a crash is skipped; the ones before it are read."""
        path = tmp_path / "log.jsonl"
        path.write_text('{"reason": "accepted"}\n{"reason": "cool')
        assert [{"reason": "accepted"}] == read_decisions(path)


class TestSignal:
    """Signals validate their fields."""

    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [
            ({"side": "hold"}, "side"),
            ({"confidence": 2.0}, "confidence"),
            ({"price": -1.0}, "price"),
            ({"stop_distance": 0.0}, "stop_distance"),
            ({"time": datetime(2024, 1, 1)}, "time"),  # noqa: DTZ001
        ],
    )
    def test_init_bad_field_raises_naming_it(self, kwargs, named):
        """Each bad field raises ValueError naming it."""
        args = {
            "symbol": "X",
            "side": "buy",
            "confidence": 0.5,
            "price": 1.0,
            "strategy": "moderate",
            "time": T0,
            **kwargs,
        }
        with pytest.raises(ValueError, match=named):
            Signal(**args)


class ReportingBroker(PaperBroker):
    """A paper broker whose day's loss and equity report whatever figure a test gives, None and strings included."""

    def __init__(self, loss: object, equity: object) -> None:
        super().__init__(10_000, fee_bps=0, slippage_bps=0)
        self.reported_loss, self.reported_equity = loss, equity

    def daily_loss_fraction(self):
        return self.reported_loss

    @property
    def equity(self):
        return self.reported_equity


class TestUnusableBrokerFigures:
    """A loss or equity that is no usable number refuses with daily_drawdown and trips the breaker; run() goes on."""

    @pytest.mark.parametrize(
        ("loss", "equity", "named"),
        [
            (None, 10_000.0, "the day's loss is None"),
            ("0.01", 10_000.0, "the day's loss is '0.01'"),
            (10**400, 10_000.0, "the day's loss is an integer of about 401 digits"),
            (0.0, None, "the equity is None"),
            (0.0, "10000", "the equity is '10000'"),
            (0.0, 10**400, "the equity is an integer of about 401 digits"),
        ],
        ids=["loss-none", "loss-str", "loss-huge", "equity-none", "equity-str", "equity-huge"],
    )
    async def test_handle_unusable_figure_refuses_and_trips_the_breaker(self, store, loss, equity, named):
        """None or a string raised TypeError from handle(); now it is a refusal naming the figure."""
        rig = Rig(store, broker=ReportingBroker(loss, equity))
        refused = await rig.executor.handle(signal())
        emergency = store.snapshot().emergency
        assert (False, Reason.DAILY_DRAWDOWN) == (refused.accepted, refused.reason)
        assert named in refused.detail
        assert (True, "executor") == (emergency.active, emergency.activated_by)
        assert named in emergency.reason
        assert [] == rig.broker.fills

    async def test_run_goes_on_after_an_unusable_figure(self, store):
        """The loop handles every signal: the first is refused by the breaker, the next by the kill switch."""
        rig = Rig(store, broker=ReportingBroker(None, 10_000.0))
        queue: asyncio.Queue[Signal | None] = asyncio.Queue()
        for item in (signal(), signal(symbol="ETH"), None):
            queue.put_nowait(item)
        assert 2 == await rig.executor.run(queue)
        assert [Reason.DAILY_DRAWDOWN, Reason.KILL_SWITCH] == [d.reason for d in rig.log.decisions]

    async def test_handle_decimal_and_fraction_figures_are_used(self, store):
        """Decimal equity and a Fraction loss are numbers: compared, and sized from."""
        rig = Rig(store, broker=ReportingBroker(Fraction(1, 100), Decimal(10_000)))
        decision = await rig.executor.handle(signal())
        assert Reason.ACCEPTED == decision.reason
        assert store.snapshot().emergency.active is False

    def test_signal_price_too_large_for_a_float_refused(self):
        """10**400 compares below inf, so it passed the check; no float holds it."""
        with pytest.raises(ValueError, match="price"):
            signal(price=10**400)
