"""The paper broker: fills, fees, slippage, stops, targets and the day's loss, checked by hand arithmetic."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from policystore.consumers.brokers import Order, PaperBroker

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def order(side="buy", qty=10.0, price=100.0, *, stop=None, target=None, minutes=0) -> Order:
    return Order("BTC", side, qty, price, T0 + timedelta(minutes=minutes), "moderate", stop, target)


class TestFills:
    """Fills move against the trader by the slippage and pay the fee."""

    async def test_submit_round_trip_pnl_is_net_of_slippage_and_fees(self):
        """Buy 10 at 100 and sell at 110 with 10 bps slippage and 5 bps fees, by hand."""
        broker = PaperBroker(10_000, fee_bps=5, slippage_bps=10)
        entry = await broker.submit(order())
        exit_ = await broker.submit(order(side="sell", price=110.0, minutes=5))
        entry_price, exit_price = 100 * 1.001, 110 * 0.999
        fees = (entry_price + exit_price) * 10 * 0.0005
        expected = (exit_price - entry_price) * 10 - fees
        assert entry_price == pytest.approx(entry.price)
        assert ("close", "opposite_signal") == (exit_.action, exit_.reason)
        assert expected == pytest.approx(exit_.realized_pnl)
        assert 10_000 + expected == pytest.approx(broker.equity)

    async def test_submit_second_position_same_symbol_raises(self):
        """The broker holds one position per symbol."""
        broker = PaperBroker(fee_bps=0, slippage_bps=0)
        await broker.submit(order())
        with pytest.raises(ValueError, match="already open"):
            await broker.submit(order())


class TestMarks:
    """Marks update unrealised PnL and trigger stops and targets."""

    async def test_mark_through_stop_closes_at_the_mark(self):
        """A short stopped out by a gap fills at the gapped price."""
        broker = PaperBroker(10_000, fee_bps=0, slippage_bps=0)
        await broker.submit(order(side="sell", stop=105.0, target=90.0))
        assert broker.mark("BTC", 103.0, T0) is None
        assert -30 == pytest.approx(broker.unrealized_pnl)
        fill = broker.mark("BTC", 108.0, T0 + timedelta(minutes=1))
        assert ("stop", 108.0) == (fill.reason, fill.price)
        assert -80 == pytest.approx(broker.closed[0].pnl)

    async def test_mark_reaching_target_closes(self):
        """A long reaching its target is closed with reason target."""
        broker = PaperBroker(10_000, fee_bps=0, slippage_bps=0)
        await broker.submit(order(stop=95.0, target=110.0))
        fill = broker.mark("BTC", 111.0, T0)
        assert "target" == fill.reason
        assert 0 == broker.open_position_count()

    async def test_daily_loss_fraction_resets_on_a_new_utc_day(self):
        """The day's loss is measured from the equity at the day's first event."""
        broker = PaperBroker(10_000, fee_bps=0, slippage_bps=0)
        await broker.submit(order(qty=10))
        broker.mark("BTC", 50.0, T0 + timedelta(hours=1))
        assert 500 / 10_000 == pytest.approx(broker.daily_loss_fraction())
        broker.mark("BTC", 50.0, T0 + timedelta(days=1))
        assert 0 == broker.daily_loss_fraction()


class TestNonFiniteFigures:
    """Infinite prices are refused and an unmeasurable loss is reported as NaN, never as no loss."""

    @pytest.mark.parametrize(("qty", "price"), [(10.0, float("inf")), (float("inf"), 100.0), (10.0, float("nan"))])
    async def test_submit_non_finite_quantity_or_price_raises(self, qty, price):
        """An infinite or NaN order would make the equity non-finite."""
        broker = PaperBroker(fee_bps=0, slippage_bps=0)
        with pytest.raises(ValueError, match="positive finite"):
            await broker.submit(order(qty=qty, price=price))
        assert 0 == broker.open_position_count()

    @pytest.mark.parametrize("price", [float("inf"), float("nan"), 0.0])
    async def test_mark_non_finite_price_raises(self, price):
        """A long marked at inf would make the unrealised PnL inf - inf = NaN."""
        broker = PaperBroker(fee_bps=0, slippage_bps=0)
        await broker.submit(order())
        with pytest.raises(ValueError, match="price"):
            broker.mark("BTC", price, T0)
        assert 10_000 == pytest.approx(broker.equity)

    def test_daily_loss_fraction_nan_equity_is_nan_not_zero(self):
        """A NaN equity reports a NaN loss, so the drawdown breaker sees it (max() would report 0)."""
        broker = PaperBroker(10_000)
        broker.starting_equity = float("nan")
        assert math.isnan(broker.daily_loss_fraction())

    def test_daily_loss_fraction_day_started_without_equity_is_nan(self):
        """With no positive equity at the day's start, there is no base to measure the loss against."""
        broker = PaperBroker(10_000)
        broker.day_start_equity = 0.0
        assert math.isnan(broker.daily_loss_fraction())
