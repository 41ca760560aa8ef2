"""Replay applies every trading control to the sample data, and the plot marks refusals by reason."""

from __future__ import annotations

import csv

import pytest

from policystore.consumers.execution import Reason
from policystore.consumers.replay import (
    REFUSAL_MARKERS,
    _refusal_points,
    builtin_policy,
    load_prices,
    load_signals,
    plot_equity,
    replay_mode,
    sample_paths,
)
from policystore.consumers.replay_store import plan_replay
from policystore.model.changes import apply_patch

COLLAR = 0.02


@pytest.fixture(scope="module")
def sample():
    signals_csv, prices_csv = sample_paths()
    return load_signals(signals_csv), load_prices(prices_csv)


def _distance(decision) -> float:
    s = decision.signal
    return abs(s.price - s.reference_price) / s.reference_price


class TestSampleData:
    """The shipped sample carries a reference price per signal, a few of them stale quotes."""

    def test_every_signal_has_a_reference_price_some_far_from_the_price(self, sample):
        """Each row has one; some are more than the 2 % collar away."""
        signals, _ = sample
        assert all(s.reference_price is not None for s in signals)
        assert sum(abs(s.price - s.reference_price) / s.reference_price > COLLAR for s in signals) >= 3

    def test_csv_without_reference_column_still_loads(self, tmp_path):
        """The column is optional: older files load, their signals without a reference price."""
        path = tmp_path / "s.csv"
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(
                [
                    ("time", "symbol", "side", "confidence", "price", "strategy"),
                    (
                        "2024-03-04T00:00:00+00:00",
                        "BTC",
                        "buy",
                        "0.7",
                        "100",
                        "moderate",
                    ),
                ]
            )
        (loaded,) = load_signals(path)
        assert loaded.reference_price is None


class TestReplayAppliesControls:
    """A policy's trading controls refuse in the replay as they would live."""

    async def test_collar_refuses_the_stale_quotes_and_accepts_none_beyond_it(self, sample):
        """A 2 % default collar: price_collar refusals, and no accepted order further than 2 % from its reference."""
        signals, prices = sample
        policy = apply_patch(builtin_policy(), {"instruments.default.price_collar": COLLAR})
        result = await replay_mode("NORMAL", signals, prices, policy=policy)
        assert result.refused.get("price_collar", 0) >= 1
        accepted = [d for d in result.decisions if d.reason is Reason.ACCEPTED]
        assert accepted
        assert all(_distance(d) <= COLLAR for d in accepted)
        refused = [d for d in result.decisions if d.reason is Reason.PRICE_COLLAR]
        assert all(_distance(d) > COLLAR for d in refused)
        assert {"instruments.default.price_collar"} == {d.control for d in refused}

    async def test_states_and_notional_limits_apply(self, sample):
        """SOL halted, moderate reducing, BTC orders at most 200: each shows in the figures."""
        signals, prices = sample
        patch = {
            "instruments.SOL.state": "halted",
            "strategies.moderate.state": "reducing",
            "instruments.BTC.max_order_notional": 200,
        }
        result = await replay_mode("NORMAL", signals, prices, policy=apply_patch(builtin_policy(), patch))
        opened = [d for d in result.decisions if d.reason is Reason.ACCEPTED]
        assert {"halted", "reducing"} <= set(result.refused)
        assert not [d for d in opened if d.signal.symbol == "SOL" or d.signal.strategy == "moderate"]
        btc = [d for d in opened if d.signal.symbol == "BTC"]
        assert btc
        assert all(d.sizing.notional <= 200 for d in btc)
        assert all("max_order_notional" in d.sizing.binding_caps for d in btc)

    async def test_daily_loss_limit_trips_and_the_next_day_trades_again(self, sample):
        """A 5 (money) daily loss limit trips the kill switch on the losing day; the next day starts with it off."""
        signals, prices = sample
        policy = apply_patch(builtin_policy(), {"trading.max_daily_loss": 5})
        result = await replay_mode("NORMAL", signals, prices, policy=policy)
        trips = [d for d in result.decisions if d.reason is Reason.DAILY_LOSS]
        assert trips
        trip_day = trips[0].signal.time.date()
        assert "kill_switch" in result.refused
        assert [d for d in result.decisions if d.reason is Reason.ACCEPTED and d.signal.time.date() > trip_day]
        assert {"trading.max_daily_loss"} == {d.control for d in trips}

    def test_plan_starts_the_firm_active_and_keeps_scoped_states(self):
        """trading.state halted in the version: active in the replay; an instrument's halted state stays."""
        policy = apply_patch(builtin_policy(), {"trading.state": "halted", "instruments.SOL.state": "halted"})
        plan = plan_replay(policy, "NORMAL")
        assert ("active", "halted") == (plan.document["trading"]["state"], plan.document["instruments"]["SOL"]["state"])


@pytest.mark.plot
class TestPlot:
    """Refusals are marked on each curve by reason."""

    async def test_refusal_points_by_reason_and_png_drawn(self, sample, tmp_path):
        """Every refusal is a point of its reason; the PNG is written."""
        signals, prices = sample
        policy = apply_patch(builtin_policy(), {"instruments.default.price_collar": COLLAR})
        result = await replay_mode("NORMAL", signals, prices, policy=policy)
        times = [t for t, _ in result.curve]
        values = [v for _, v in result.curve]
        points = _refusal_points(result, times, values)
        assert {Reason(r) for r in result.refused} == set(points)
        assert {r: len(points[Reason(r)][0]) for r in result.refused} == result.refused
        assert set(points) <= set(REFUSAL_MARKERS)
        png = tmp_path / "replay.png"
        plot_equity([result], png)
        assert b"\x89PNG" == png.read_bytes()[:4]
