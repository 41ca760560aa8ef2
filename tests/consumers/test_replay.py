"""Replay on the shipped sample data, checked against figures recomputed here by plain arithmetic."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from policystore.cli.main import cli
from policystore.consumers.replay import load_prices, load_signals, replay_mode, sample_paths

FEE = 5 / 10_000  # the replay's default fee_bps


@pytest.fixture(scope="module")
def sample():
    signals_csv, prices_csv = sample_paths()
    return signals_csv, prices_csv, load_signals(signals_csv), load_prices(prices_csv)


class TestReplayFigures:
    """The NORMAL replay's figures agree with a recount from its trades, decisions and curve."""

    async def test_replay_mode_normal_figures_match_recount(self, sample):
        """Counts, PnL and drawdown recomputed independently equal the reported ones."""
        signals_csv, _, signals, prices = sample
        with signals_csv.open() as handle:
            rows = sum(1 for _ in csv.DictReader(handle))
        result = await replay_mode("NORMAL", signals, prices)
        reasons = Counter(d.reason.value for d in result.decisions)
        recomputed = []
        for t in result.closed:
            sign = 1 if t.side == "buy" else -1
            recomputed.append(
                sign * (t.exit_price - t.entry_price) * t.quantity - FEE * t.quantity * (t.entry_price + t.exit_price)
            )
        peak, worst = 0.0, 0.0
        for _, equity in result.curve:
            peak = max(peak, equity)
            worst = max(worst, 1 - equity / peak)
        assert rows == result.signals
        assert result.signals == result.accepted + sum(result.refused.values())
        assert reasons["accepted"] == result.trades  # every opened position is closed by the end
        assert reasons["closed"] == sum(1 for t in result.closed if t.reason == "opposite_signal")
        assert sum(recomputed) == pytest.approx(result.pnl, abs=1e-6)
        assert worst == pytest.approx(result.max_drawdown)
        assert {"cooldown", "daily_drawdown", "kill_switch", "low_confidence", "max_positions"} <= set(result.refused)

    async def test_replay_mode_every_order_within_its_modes_caps(self, sample):
        """Under each built-in mode, every accepted order obeys that mode's size cap and risk budget."""
        _, _, signals, prices = sample
        caps = {"NORMAL": (1000, 0.015), "AGGRESSIVE_SMALL_ACCOUNT": (300, 0.03), "DEFENSIVE": (500, 0.0075)}
        pnls = set()
        for mode, (size_cap, risk_pct) in caps.items():
            result = await replay_mode(mode, signals, prices)
            pnls.add(round(result.pnl, 2))
            for d in result.decisions:
                if d.sizing is not None:
                    assert d.sizing.notional <= size_cap
                    assert d.sizing.risk_amount <= d.sizing.equity * risk_pct
                    assert mode == d.mode
        assert 3 == len(pnls)

    async def test_replay_mode_unknown_mode_raises(self, sample):
        """A mode that is neither built in nor a preset is named in the error."""
        _, _, signals, prices = sample
        with pytest.raises(ValueError, match="CALM"):
            await replay_mode("CALM", signals, prices)


class TestCommands:
    """policystore replay and policystore decisions, through the real command group."""

    def test_replay_compare_modes_json_plot_and_log(self, tmp_path):
        """Three modes in JSON, a PNG, and a log whose lines recount each mode's accepted signals."""
        png, log = tmp_path / "replay.png", tmp_path / "decisions.jsonl"
        result = CliRunner().invoke(
            cli, ["replay", "--sample", "--compare-modes", "--json", "--plot", str(png), "--log", str(log)]
        )
        assert 0 == result.exit_code, result.output
        figures = json.loads(result.output)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        accepted = Counter(r["mode"] for r in lines if r["accepted"])
        assert ["NORMAL", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE"] == [f["mode"] for f in figures]
        assert {f["mode"]: f["accepted"] for f in figures} == dict(accepted)
        assert sum(f["signals"] for f in figures) == len(lines)
        assert b"\x89PNG" == png.read_bytes()[:4]

    def test_replay_preset_mode_prints_a_row_for_it(self):
        """A preset given with --mode is added to the replay store and reported."""
        result = CliRunner().invoke(cli, ["replay", "--sample", "--mode", "HIGH_VOLATILITY"])
        assert 0 == result.exit_code, result.output
        rows = result.output.splitlines()
        assert 2 == len(rows)
        assert "HIGH_VOLATILITY" == rows[1].split()[0]

    def test_decisions_limit_json_prints_newest(self, tmp_path):
        """--limit 2 --json prints the last two records of the log."""
        log = tmp_path / "d.jsonl"
        log.write_text("".join(json.dumps({"reason": r, "policy_version": 1}) + "\n" for r in "abc"))
        result = CliRunner().invoke(cli, ["decisions", "--log", str(log), "--limit", "2", "--json"])
        assert 0 == result.exit_code, result.output
        assert ["b", "c"] == [r["reason"] for r in json.loads(result.output)]

    def test_replay_bad_csv_exits_3_naming_the_line(self, tmp_path):
        """A bad value stops the replay with exit 3 and one sentence naming file and line."""
        signals = tmp_path / "s.csv"
        signals.write_text("time,symbol,side,confidence,price,strategy\n2024-01-01T00:00:00+00:00,X,hold,0.5,1,m\n")
        prices = tmp_path / "p.csv"
        prices.write_text("time,symbol,price\n")
        result = CliRunner().invoke(cli, ["replay", str(signals), "--prices", str(prices)])
        assert 3 == result.exit_code
        assert "line 2" in result.output
        assert "side" in result.output
