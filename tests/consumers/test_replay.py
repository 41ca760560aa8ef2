"""Replay on the shipped sample data, checked against figures recomputed here by plain arithmetic,
and ``policystore replay`` replaying the policy in the store."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from policystore.cli.main import cli
from policystore.consumers.replay import builtin_policy, load_prices, load_signals, replay_mode, sample_paths
from policystore.consumers.replay_store import plan_replay
from policystore.model.changes import apply_patch

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

    @pytest.mark.plot
    def test_replay_compare_modes_json_plot_and_log(self, tmp_path):
        """Three modes in JSON, a PNG, and a log whose lines recount each mode's accepted signals."""
        png, log = tmp_path / "replay.png", tmp_path / "decisions.jsonl"
        result = CliRunner().invoke(
            cli, ["replay", "--sample", "--builtin", "--compare-modes", "--json", "--plot", str(png), "--log", str(log)]
        )
        assert 0 == result.exit_code, result.output
        figures = json.loads(result.stdout)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        accepted = Counter(r["mode"] for r in lines if r["accepted"])
        assert ["NORMAL", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE"] == [f["mode"] for f in figures]
        assert {f["mode"]: f["accepted"] for f in figures} == dict(accepted)
        assert sum(f["signals"] for f in figures) == len(lines)
        assert b"\x89PNG" == png.read_bytes()[:4]

    def test_replay_preset_mode_prints_a_row_for_it_marked_as_a_what_if(self):
        """A preset given with --mode is added to the replayed policy, and the output says it is a what-if."""
        result = CliRunner().invoke(cli, ["replay", "--sample", "--builtin", "--mode", "HIGH_VOLATILITY"])
        assert 0 == result.exit_code, result.output
        rows = result.stdout.splitlines()
        assert "Replayed the built-in policy." == rows[0]
        assert rows[1].startswith("What-if: HIGH_VOLATILITY is a preset")
        assert 4 == len(rows)  # the two sentences, the header, the row
        assert ["HIGH_VOLATILITY", "(preset)"] == rows[3].split()[:2]

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
        result = CliRunner().invoke(cli, ["replay", str(signals), "--prices", str(prices), "--builtin"])
        assert 3 == result.exit_code
        assert "line 2" in result.output
        assert "side" in result.output


class TestReplayPlan:
    """What a replay runs under: the given policy whole, the chosen mode active, the kill switch off."""

    def test_plan_keeps_strategies_and_hard_limits_and_the_version(self):
        """A policy's own strategy override and hard limits are in the replay's document, at its version."""
        policy = apply_patch(
            builtin_policy(), {"strategies.moderate.min_confidence": 0.9, "hard_limits.max_positions": 40}
        )
        policy = dataclasses.replace(policy, version=7)

        plan = plan_replay(policy, "DEFENSIVE")

        assert (7, "DEFENSIVE", False) == (plan.version, plan.document["active_mode"], plan.preset)
        assert 0.9 == plan.document["strategies"]["moderate"]["min_confidence"]
        assert 40 == plan.document["hard_limits"]["max_positions"]

    def test_plan_turns_the_kill_switch_off(self):
        """A version read while trading was stopped still replays its limits."""
        policy = apply_patch(builtin_policy(), {"emergency.active": True, "emergency.reason": "outage"})

        assert {"active": False, "reason": None} == {
            k: plan_replay(policy, "NORMAL").document["emergency"][k] for k in ("active", "reason")
        }

    def test_plan_preset_is_added_and_flagged(self):
        """A preset the policy lacks is added to the copy only, marked as a what-if."""
        plan = plan_replay(builtin_policy(), "BEAR_MARKET")

        assert plan.preset
        assert 3.0 == plan.document["modes"]["BEAR_MARKET"]["max_leverage"]
        assert "BEAR_MARKET" not in builtin_policy().modes

    def test_plan_unknown_mode_names_the_policys_modes(self):
        """Neither a mode of the policy nor a preset: ValueError naming both lists."""
        with pytest.raises(ValueError, match="NORMAL, AGGRESSIVE_SMALL_ACCOUNT, DEFENSIVE"):
            plan_replay(builtin_policy(), "CALM")

    async def test_replay_mode_decisions_record_the_replayed_version(self, sample):
        """Decisions made before any kill-switch write of the replay carry the given version."""
        _, _, signals, prices = sample
        policy = dataclasses.replace(builtin_policy(), version=41)

        result = await replay_mode("NORMAL", signals, prices, policy=policy)

        assert 41 == result.policy_version
        assert 41 == result.decisions[0].policy_version
        assert {41} == {d.policy_version for d in result.decisions if d.policy_version <= 41}


COMMAND = [sys.executable, "-m", "policystore.cli.main"]


class _Cli:
    """``policystore --store URL ...`` as a subprocess in a folder of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.url = f"sqlite:///{tmp_path}/policy.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "RM_"))}
        self.env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def __call__(
        self, *args: str, code: int = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*COMMAND, "--store", self.url, *args],
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=self.cwd,
            timeout=120,
            check=False,
        )
        assert code == result.returncode, f"stdout: {result.stdout}\nstderr: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result

    def log(self, *args: str) -> list[dict]:
        """Replay the sample with ``args`` into a fresh decision log and return its records."""
        path = self.cwd / "decisions.jsonl"
        path.unlink(missing_ok=True)
        self("replay", "--sample", "--log", str(path), *args)
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> _Cli:
    """A fresh SQLite store (version 1) and the command line bound to it."""
    command = _Cli(tmp_path)
    command("init")
    return command


class TestReplayCommandUsesTheStore:
    """policystore replay replays the policy in the store, and says which version."""

    def test_replay_uses_the_stores_limits_and_names_the_version(self, store: _Cli) -> None:
        """position_size_cap 50 in the store: no accepted order above 50, where the built-in policy goes above."""
        store("set", "modes.NORMAL.position_size_cap", "50", "--reason", "small")

        stored = store.log()
        builtin = store.log("--builtin")
        first_line = store("replay", "--sample").stdout.splitlines()[0]

        assert f"Replayed version 2 of {store.url}." == first_line
        assert {2} == {r["policy_version"] for r in stored if r["policy_version"] <= 2}
        assert max(r["notional"] for r in builtin if "notional" in r) > 50
        assert max(r["notional"] for r in stored if "notional" in r) <= 50

    def test_replay_uses_the_stores_strategies(self, store: _Cli) -> None:
        """A strategy override in the store (moderate needs confidence 0.99) refuses its signals in the replay."""
        store("set", "strategies.moderate.min_confidence", "0.99", "--reason", "picky")

        stored = store.log()
        builtin = store.log("--builtin")

        assert any(r["accepted"] for r in builtin if r["strategy"] == "moderate")
        assert not any(r["accepted"] and r["reason"] == "accepted" for r in stored if r["strategy"] == "moderate")

    def test_replay_defaults_to_the_stores_active_mode(self, store: _Cli) -> None:
        """With DEFENSIVE active in the store, a plain replay runs DEFENSIVE."""
        store("mode", "DEFENSIVE", "--reason", "calm")

        figures = json.loads(store("replay", "--sample", "--json").stdout)

        assert [("DEFENSIVE", 2, False)] == [(f["mode"], f["policy_version"], f["preset"]) for f in figures]

    def test_replay_compare_modes_replays_every_mode_in_the_store(self, store: _Cli) -> None:
        """A mode added to the store is replayed with the built-in ones, and is no what-if."""
        store("presets", "BULL_MARKET", "--add", "--reason", "trend")

        figures = json.loads(store("replay", "--sample", "--compare-modes", "--json").stdout)

        assert ["NORMAL", "AGGRESSIVE_SMALL_ACCOUNT", "DEFENSIVE", "BULL_MARKET"] == [f["mode"] for f in figures]
        assert not any(f["preset"] for f in figures)

    def test_replay_mode_the_store_lacks_exits_3_naming_its_modes(self, store: _Cli) -> None:
        """CALM is neither a mode of the store nor a preset."""
        result = store("replay", "--sample", "--mode", "CALM", code=3)

        assert "CALM" in result.stderr
        assert "NORMAL, AGGRESSIVE_SMALL_ACCOUNT, DEFENSIVE" in result.stderr

    def test_replay_preset_is_a_what_if_on_the_stores_policy(self, store: _Cli) -> None:
        """A preset is replayed on the store's version (its strategies and caps), and marked as such."""
        store("set", "strategies.moderate.min_confidence", "0.99", "--reason", "picky")

        out = store("replay", "--sample", "--mode", "HIGH_VOLATILITY").stdout.splitlines()
        records = store.log("--mode", "HIGH_VOLATILITY")

        assert f"Replayed version 2 of {store.url}." == out[0]
        assert out[1].startswith("What-if: HIGH_VOLATILITY is a preset the policy does not hold")
        assert not any(r["accepted"] and r["reason"] == "accepted" for r in records if r["strategy"] == "moderate")

    def test_replay_kill_switch_on_in_the_store_is_off_in_the_replay_and_said(self, store: _Cli) -> None:
        """The replay measures limits: trading stopped now does not refuse every recorded signal."""
        store("emergency", "on", "--reason", "outage")

        out = store("replay", "--sample").stdout.splitlines()

        assert "The kill switch, on in version 2, is off in the replay." == out[1]
        assert int(out[3].split()[2]) > 0  # accepted signals

    def test_replay_missing_store_exits_5_unless_builtin(self, tmp_path: Path) -> None:
        """No store: exit 5 naming it and --builtin; with --builtin, the built-in policy is replayed."""
        command = _Cli(tmp_path)

        refused = command("replay", "--sample", code=5)
        builtin = command("replay", "--sample", "--builtin")

        assert "--builtin" in refused.stderr
        assert "policy.db" in refused.stderr
        assert "Replayed the built-in policy." == builtin.stdout.splitlines()[0]
        assert not (tmp_path / "policy.db").exists()


class TestReplayPlotWithoutMatplotlib:
    """--plot without the plot extra: the figures, then one sentence naming the extra, and exit 1."""

    def test_replay_plot_without_matplotlib_prints_the_table_then_names_the_extra(self, store: _Cli, tmp_path: Path):
        """matplotlib cannot be imported here (a stand-in package refuses); no PNG, no traceback."""
        hidden = tmp_path / "hidden"
        (hidden / "matplotlib").mkdir(parents=True)
        (hidden / "matplotlib" / "__init__.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
        )
        env = store.env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))}

        result = store("replay", "--sample", "--plot", "replay.png", code=1, env=env)

        assert result.stdout.splitlines()[0].startswith("Replayed version 1")
        assert "NORMAL" == result.stdout.splitlines()[-1].split()[0]
        assert "pip install 'policystore[plot]'" in result.stderr.strip().splitlines()[-1]
        assert 1 == len(result.stderr.strip().splitlines())
        assert not (tmp_path / "replay.png").exists()
