"""A change's effect on a real decision log: its signals decided again by the executor, before and after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policystore import PolicyStore
from policystore.consumers.decision_log import JsonlDecisionLog, read_decisions
from policystore.consumers.replay import builtin_policy, load_prices, load_signals, replay_mode, sample_paths
from policystore.consumers.what_if import decide_again, preview_decisions, signals_from_records
from policystore.model.changes import apply_patch


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real decision log: the shipped sample signals and prices replayed under NORMAL of the built-in policy."""
    import asyncio

    signals_csv, prices_csv = sample_paths()
    result = asyncio.run(replay_mode("NORMAL", load_signals(signals_csv), load_prices(prices_csv)))
    path = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    with JsonlDecisionLog(path, sync_every=1000) as written:
        for decision in result.decisions:
            written.record(decision)
    return path


class TestDecideAgain:
    """Both sides decided by the executor; the difference is the change's."""

    async def test_no_change_changes_no_decision(self, log: Path) -> None:
        """The same policy on both sides: nothing differs, and most decisions come out as recorded."""
        policy = builtin_policy()

        impact = await decide_again(read_decisions(log), policy, policy, log=str(log))

        assert (117, 0, 0, 0, {}) == (impact.signals, impact.skipped, impact.changed, impact.resized, impact.by_reason)
        assert impact.reproduced > 100

    async def test_higher_confidence_floor_refuses_accepted_signals_as_low_confidence(self, log: Path) -> None:
        """global_min_confidence 0.6: accepted signals below it become low_confidence, with the executor's words."""
        before = builtin_policy()
        after = apply_patch(before, {"modes.NORMAL.global_min_confidence": 0.6})

        impact = await decide_again(read_decisions(log), before, after)

        assert impact.changed == sum(impact.by_reason.values()) > 0
        assert impact.by_reason["accepted -> low_confidence"] > 0
        example = next(e for e in impact.examples if e["new"] == "low_confidence")
        assert "is below" in example["new_detail"]
        assert "min_confidence 0.6" in example["new_detail"]

    async def test_kill_switch_refuses_every_new_position(self, log: Path) -> None:
        """With the kill switch on, no signal is accepted any more: each accepted one becomes kill_switch."""
        before = builtin_policy()
        after = apply_patch(before, {"emergency.active": True, "emergency.reason": "halt"})

        impact = await decide_again(read_decisions(log), before, after)

        accepted_before = sum(n for pair, n in impact.by_reason.items() if pair.startswith("accepted ->"))
        assert accepted_before == impact.by_reason["accepted -> kill_switch"] > 0
        assert all(pair.endswith("-> kill_switch") for pair in impact.by_reason)

    async def test_records_without_a_signal_are_counted_not_guessed(self, log: Path) -> None:
        """A damaged record and one with no stop distance nor volatility are skipped and counted."""
        records = read_decisions(log)[:10]
        damaged = {"time": "yesterday", "symbol": "BTC"}
        no_stop = {
            k: v for k, v in records[1].items() if k not in {"signal_stop_distance", "volatility", "stop_distance"}
        }

        signals, reasons, skipped = signals_from_records([*records, damaged, no_stop])

        assert (10, 10, 2) == (len(signals), len(reasons), skipped)

    async def test_log_written_before_signals_kept_their_stop_falls_back_to_the_sizing(self, log: Path) -> None:
        """An older record holds only the sizing's stop distance: the signal is decided with it."""
        record = next(r for r in read_decisions(log) if r.get("stop_distance") is not None)
        older = {k: v for k, v in record.items() if k not in {"signal_stop_distance", "volatility"}}

        signals, _, skipped = signals_from_records([older])

        assert (0, record["stop_distance"]) == (skipped, signals[0].stop_distance)


class TestPreviewDecisions:
    """A store's dry run, with the log's figures added."""

    async def test_store_preview_gains_the_decisions_and_writes_nothing(self, log: Path) -> None:
        """preview_decisions fills Preview.decisions; the store stays at version 1."""
        store = await PolicyStore.open("memory://what-if", lkg_path=None)
        try:
            preview = await store.switch_mode("DEFENSIVE", reason="calm", dry_run=True)
            with_log = await preview_decisions(preview, log)
            assert 1 == (await store.refresh()).version
        finally:
            await store.close()

        impact = with_log.decisions
        assert impact is not None
        assert (117, str(log)) == (impact.signals, impact.log)
        assert impact.changed > 0
        assert json.loads(json.dumps(with_log.to_dict()))["decisions"]["changed"] == impact.changed

    async def test_unreadable_log_raises_for_the_caller_to_report(self, tmp_path: Path) -> None:
        """A log with a damaged line in the middle is an error naming the line, not a silent partial count."""
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"a": 1}\nnot json\n{"b": 2}\n', encoding="utf-8")
        store = await PolicyStore.open("memory://what-if-bad", lkg_path=None)
        try:
            preview = await store.switch_mode("DEFENSIVE", reason="calm", dry_run=True)
            with pytest.raises(ValueError, match="line 2"):
                await preview_decisions(preview, bad)
        finally:
            await store.close()
