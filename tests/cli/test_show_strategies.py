"""``policystore show`` lists the strategies: cooldowns, stored overrides, values in force, and clamps explained."""

from __future__ import annotations

import re

from cli_support import Cli


def strategy_rows(out: str) -> dict[str, dict[str, str]]:
    """The strategies table of ``show``'s output: name -> column -> cell (cells split on two or more spaces)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("strategy "))
    headers = re.split(r"\s{2,}", lines[start].strip())
    rows: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        assert len(headers) == len(cells), line
        rows[cells[0]] = dict(zip(headers, cells, strict=True))
    return rows


class TestShowListsStrategies:
    """The text output has a strategies table, not only --json."""

    def test_show_new_store_lists_every_strategy_with_cooldown_overrides_and_values_in_force(self, store: Cli) -> None:
        """Own overrides are marked; a field without one shows the active mode's value."""
        rows = strategy_rows(store("show").stdout)

        assert ["aggressive", "conservative", "defensive", "moderate"] == sorted(rows)
        moderate = rows["moderate"]
        assert ("active", "120.0") == (moderate["state"], moderate["cooldown_seconds"])
        assert ("3.0 (own)", "0.55 (own)") == (moderate["max_leverage"], moderate["min_confidence"])
        assert ("30", "0.015") == (moderate["max_positions"], moderate["max_risk_pct_per_trade"])  # NORMAL's
        assert ("30.0", "5.0", "0.5") == (
            rows["aggressive"]["cooldown_seconds"],
            rows["aggressive"]["max_leverage"],
            rows["aggressive"]["min_confidence"],
        )

    def test_show_marks_an_override_the_mode_clamps_and_says_why_under_the_table(self, store: Cli) -> None:
        """8 is stored and shown as stored; 5.0 applies under NORMAL, then 3.0 under DEFENSIVE, each explained."""
        store("set", "strategies.moderate.max_leverage", "8", "--reason", "room")

        out = store("show").stdout
        assert "5.0 (own 8.0, clamped)" == strategy_rows(out)["moderate"]["max_leverage"]
        assert (
            "note: strategies.moderate.max_leverage: stored override 8.0 is looser than mode NORMAL's "
            "max_leverage 5.0; the mode's value applies."
        ) in out.splitlines()

        store("mode", "DEFENSIVE", "--reason", "calm")
        out = store("show").stdout
        assert "3.0 (own 8.0, clamped)" == strategy_rows(out)["moderate"]["max_leverage"]
        assert "stored override 8.0 is looser than mode DEFENSIVE's max_leverage 3.0" in out
        assert "Values in force under DEFENSIVE" in out

    def test_show_lists_a_strategys_state_and_a_floor_override_the_mode_raises(self, store: Cli) -> None:
        """A reducing strategy reads as such; a min_confidence below the mode's floor is clamped up to it."""
        store("set", "strategies.aggressive.state", "reducing", "--reason", "desk")
        store("set", "strategies.aggressive.min_confidence", "0.35", "--reason", "looser")

        out = store("show").stdout
        aggressive = strategy_rows(out)["aggressive"]
        assert ("reducing", "0.5 (own 0.35, clamped)") == (aggressive["state"], aggressive["min_confidence"])
        assert "note: strategies.aggressive.min_confidence: stored override 0.35 is looser than mode NORMAL's" in out

    def test_show_json_still_holds_the_stored_strategies(self, store: Cli) -> None:
        """--json is the stored document, overrides as stored."""
        store("set", "strategies.moderate.max_leverage", "8", "--reason", "room")

        assert 8.0 == store.json("show")["strategies"]["moderate"]["max_leverage"]
