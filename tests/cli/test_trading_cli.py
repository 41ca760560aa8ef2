"""``policystore trading``, and the trading states and controls in ``show``, ``get``, ``paths``, ``explain``,
``decisions`` and ``replay``: the command line as a real subprocess against a SQLite store of its own.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_support import Cli, one_sentence

from policystore import PolicyStore
from policystore.consumers import EventDrivenExecutor, JsonlDecisionLog, PaperBroker, RLPositionSizingAgent, Signal

#: Each scope a state is set at: its options and the path the write lands on.
SCOPES = [
    pytest.param([], "trading.state", id="firm"),
    pytest.param(["--strategy", "aggressive"], "strategies.aggressive.state", id="strategy"),
    pytest.param(["--symbol", "BTC/USD"], "instruments.BTC/USD.state", id="instrument"),
    pytest.param(["--symbol", "BRK.B"], "instruments.BRK.B.state", id="dotted-symbol"),
    pytest.param(["--symbol", "default"], "instruments.default.state", id="default-instrument"),
]


def _state(store: Cli, path: str) -> str:
    return str(store.json("get", path))


class TestAuthority:
    """An operator may move a state toward halted; only an admin moves it back toward active."""

    @pytest.mark.parametrize(("scope", "path"), SCOPES)
    def test_operator_may_halt_and_the_write_is_recorded_as_theirs(self, store: Cli, scope: list[str], path: str):
        """The operator's write lands on the scope's path, as one version naming the author and reason."""
        out = store("--role", "operator", "trading", "halted", *scope, "--reason", "exchange halt", "--by", "desk-1")

        assert "is now halted (version 2)" in out.stdout
        assert "halted" == _state(store, path)
        newest = store.json("history", "--limit", "1")[0]
        assert ("desk-1", "exchange halt") == (newest["by"], newest["reason"])
        assert path in [c["path"] for c in newest["changes"]]

    @pytest.mark.parametrize(("scope", "path"), SCOPES)
    def test_operator_may_not_loosen_exit_6_and_nothing_changes(self, store: Cli, scope: list[str], path: str):
        """From halted, reducing and active both raise risk: exit 6 naming the admin role; the store keeps halted."""
        store("trading", "halted", *scope, "--reason", "exchange halt")

        for looser in ("reducing", "active"):
            refused = store("--role", "operator", "trading", looser, *scope, "--reason", "reopen", code=6)

            sentence = one_sentence(refused.stderr)
            assert "'admin'" in sentence
            assert path in sentence
        assert "halted" == _state(store, path)
        assert 2 == store.version()

    @pytest.mark.parametrize(("scope", "path"), SCOPES)
    def test_admin_may_loosen(self, store: Cli, scope: list[str], path: str):
        """An admin sets a halted scope back to active."""
        store("--role", "operator", "trading", "halted", *scope, "--reason", "exchange halt")

        store("--role", "admin", "trading", "active", *scope, "--reason", "exchange open")

        assert "active" == _state(store, path)
        assert 3 == store.version()

    def test_viewer_may_not_even_halt(self, store: Cli):
        """Any write needs an operator: a viewer's halt exits 6."""
        store("--role", "viewer", "trading", "halted", "--reason", "panic", code=6)
        assert "active" == _state(store, "trading.state")


class TestBadInput:
    """A state, symbol or strategy the policy cannot hold exits 3 (options misused: 2); nothing is written."""

    def test_unknown_state_exits_3_naming_the_three_states(self, store: Cli):
        """'paused' is no state: the sentence names the three."""
        sentence = one_sentence(store("trading", "paused", "--reason", "x", code=3).stderr)
        assert "'active', 'reducing' or 'halted'" in sentence
        assert 1 == store.version()

    def test_unknown_strategy_exits_3_listing_the_strategies(self, store: Cli):
        """A strategy the policy does not hold is named, with the ones it does hold."""
        sentence = one_sentence(store("trading", "halted", "--strategy", "agressive", "--reason", "x", code=3).stderr)
        assert "no strategy 'agressive' (did you mean aggressive?)" in sentence
        assert "aggressive, conservative, defensive, moderate" in sentence
        assert 1 == store.version()

    @pytest.mark.parametrize("symbol", ["btc", "BTC USD", "-BTC", "X" * 33, "BTC\n"])
    def test_symbol_outside_the_pattern_exits_3_naming_the_pattern(self, store: Cli, symbol: str):
        """Lower case, a space, a leading dash, 33 characters, a newline: each refused with the pattern."""
        sentence = one_sentence(store("trading", "halted", "--symbol", symbol, "--reason", "x", code=3).stderr)
        assert "upper-case letters" in sentence
        assert 1 == store.version()

    def test_strategy_and_symbol_together_are_a_usage_error(self, store: Cli):
        """A state belongs to one scope: both options exit 2."""
        result = store("trading", "halted", "--strategy", "aggressive", "--symbol", "BTC", "--reason", "x", code=2)
        assert "not both" in result.stderr
        assert 1 == store.version()

    def test_a_write_without_reason_is_a_usage_error(self, store: Cli):
        """Setting a state needs --reason."""
        assert "--reason" in store("trading", "halted", code=2).stderr
        assert 1 == store.version()

    def test_outdated_expect_version_exits_4(self, store: Cli):
        """Compare-and-set: a halt based on version 1 is refused once the store is at 2."""
        store("trading", "reducing", "--reason", "first", "--expect-version", "1")
        store("trading", "halted", "--reason", "second", "--expect-version", "1", code=4)
        assert "reducing" == _state(store, "trading.state")


class TestWriteOutput:
    """What a write says: the new state, what is in force when another scope decides, and no change when none."""

    def test_json_names_the_path_the_state_and_what_is_in_force(self, store: Cli):
        """--json prints the document with path, state, in_force and changed."""
        store("trading", "halted", "--reason", "firm halt")

        done = store.json("trading", "reducing", "--symbol", "ETH", "--reason", "eth only reduces")

        assert ("instruments.ETH.state", "reducing", True) == (done["path"], done["state"], done["changed"])
        assert {"state": "halted", "set_by": "trading.state", "scope": "firm"} == done["in_force"]
        assert "reducing" == done["instruments"]["ETH"]["state"]

    def test_text_says_when_a_wider_scope_decides(self, store: Cli):
        """A strategy set to reducing under a firm halt: the sentence says the firm's halt is in force."""
        store("trading", "halted", "--reason", "firm halt")

        out = store("trading", "reducing", "--strategy", "moderate", "--reason", "x").stdout

        assert (
            "Strategy moderate is now reducing (version 3). In force: halted, decided by trading.state (firm)." in out
        )

    def test_setting_the_state_it_has_writes_no_version(self, store: Cli):
        """Halting a halted instrument says so and leaves the version alone."""
        store("trading", "halted", "--symbol", "BTC", "--reason", "x")

        out = store("trading", "halted", "--symbol", "BTC", "--reason", "again").stdout

        assert "No change: instrument BTC is already halted (version 2)." in out
        assert 2 == store.version()


def _desk(store: Cli) -> None:
    """Limits at every level: BTC's own, the default's, a hard cap, firm-wide controls; aggressive reducing."""
    for path, value in [
        ("instruments.BTC.max_order_notional", "10000"),
        ("instruments.default.price_collar", "0.02"),
        ("hard_limits.max_position_notional", "500000"),
        ("trading.max_orders_per_minute", "60"),
        ("trading.max_daily_loss", "2500"),
        ("strategies.aggressive.state", "reducing"),
    ]:
        store("set", path, value, "--reason", "desk limits")


class TestShow:
    """show lists states per scope, the instrument limits in force with units, and the firm-wide controls."""

    def test_show_text_has_states_limits_and_controls(self, store: Cli):
        """The head says the firm state; the tables say what is in force and where it comes from."""
        _desk(store)
        store("trading", "halted", "--symbol", "ETH", "--reason", "no liquidity")
        store("emergency", "on", "--reason", "outage")

        out = store("show").stdout

        assert "trading      active (in force: reducing, the kill switch is on)" in out
        lines = out.splitlines()
        firm = next(line for line in lines if line.startswith("firm "))
        assert ["firm", "-", "active", "reducing", "emergency.active", "(kill", "switch)"] == firm.split()
        aggressive = next(line for line in lines if line.startswith("strategy ") and "aggressive" in line)
        assert ["reducing", "reducing"] == aggressive.split()[2:4]
        eth = next(line for line in lines if line.startswith("instrument ") and " ETH " in line)
        assert ["halted", "halted", "instruments.ETH.state", "(instrument)"] == eth.split()[2:]
        assert "notional and position in account currency; collar as a fraction of the reference price" in out
        btc = next(line for line in lines if line.startswith("BTC "))
        assert ["BTC", "10,000", "-", "500,000", "(hard", "cap)", "0.02", "(2%,", "default)"] == btc.split()
        assert "max_orders_per_minute  60 orders per minute, per executor" in out
        assert "max_daily_loss         2,500 account currency" in out
        assert "max_gross_exposure     none" in out

    def test_show_json_is_the_document_with_what_is_in_force(self, store: Cli):
        """--json holds the trading and instruments sections, and under effective the values in force with paths."""
        _desk(store)

        shown = store.json("show")

        assert "reducing" == shown["strategies"]["aggressive"]["state"]
        assert 10000 == shown["instruments"]["BTC"]["max_order_notional"]
        assert 60 == shown["trading"]["max_orders_per_minute"]
        effective = shown["effective"]
        assert {"value": 0.02, "set_by": "instruments.default.price_collar"} == effective["instruments"]["BTC"][
            "price_collar"
        ]
        assert {"state": "reducing", "set_by": "strategies.aggressive.state", "scope": "strategy"} == effective[
            "trading"
        ]["strategies"]["aggressive"]
        assert {"state": "active", "set_by": "trading.state", "scope": "firm"} == effective["trading"][
            "effective_state"
        ]


class TestReads:
    """get and paths answer every new path, symbols with a slash or a dot included."""

    def test_get_and_paths_answer_the_new_paths(self, store: Cli):
        """The firm state and its effective state, each strategy's and instrument's state, and their limits."""
        store("trading", "halted", "--symbol", "BTC/USD", "--reason", "x")
        store("trading", "reducing", "--symbol", "BRK.B", "--reason", "x")
        store("emergency", "on", "--reason", "outage")

        listed = store.json("paths")
        for path in (
            "trading.state",
            "trading.effective_state",
            "trading.allow_unlisted",
            "trading.max_daily_loss",
            "strategies.moderate.state",
            "instruments.default.state",
            "instruments.default.price_collar",
            "instruments.BTC/USD.state",
            "instruments.BRK.B.max_order_quantity",
        ):
            assert path in listed
        assert "halted" == store("get", "instruments.BTC/USD.state").stdout.strip()
        assert "reducing" == store("get", "instruments.BRK.B.state").stdout.strip()
        assert ("active", "reducing") == (_state(store, "trading.state"), _state(store, "trading.effective_state"))
        assert None is store.json("get", "instruments.BRK.B.max_order_notional")


class TestExplain:
    """explain names what set a trading value and, for a state, the scope that decided the state in force."""

    def _in_force(self, store: Cli, path: str) -> dict[str, str]:
        return store.json("explain", path)["in_force"]

    def test_instrument_state_decided_by_the_instrument(self, store: Cli):
        """BTC halted on its own: the instrument decides."""
        store("trading", "halted", "--symbol", "BTC", "--reason", "x")

        explained = store("explain", "instruments.BTC.state").stdout

        assert "set by    instruments.BTC.state" in explained
        assert "in force  halted, decided by instruments.BTC.state (instrument)" in explained

    def test_instrument_state_decided_by_the_default(self, store: Cli):
        """BTC listed without a state of its own, the default reducing: the default decides."""
        store("set", "instruments.BTC.max_order_quantity", "5", "--reason", "x")
        store("trading", "reducing", "--symbol", "default", "--reason", "x")

        explained = store.json("explain", "instruments.BTC.state")

        assert ("reducing", "instruments.default.state") == (explained["value"], explained["set_by"])
        assert {"state": "reducing", "set_by": "instruments.default.state", "scope": "default"} == explained["in_force"]

    def test_instrument_state_decided_by_the_firm_on_a_tie_or_when_stricter(self, store: Cli):
        """BTC reducing, the firm halted: the firm decides; both halted: the wider scope is named."""
        store("trading", "reducing", "--symbol", "BTC", "--reason", "x")
        store("trading", "halted", "--reason", "x")
        assert {"state": "halted", "set_by": "trading.state", "scope": "firm"} == self._in_force(
            store, "instruments.BTC.state"
        )
        store("trading", "halted", "--symbol", "BTC", "--reason", "x")
        assert "trading.state" == self._in_force(store, "instruments.BTC.state")["set_by"]

    def test_instrument_state_decided_by_the_kill_switch(self, store: Cli):
        """Everything active and the kill switch on: the kill switch makes it reducing."""
        store("set", "instruments.BTC.max_order_quantity", "5", "--reason", "x")
        store("emergency", "on", "--reason", "outage")

        assert {"state": "reducing", "set_by": "emergency.active", "scope": "kill switch"} == self._in_force(
            store, "instruments.BTC.state"
        )
        assert (
            "in force  reducing, decided by emergency.active (kill switch)"
            in store("explain", "trading.effective_state").stdout
        )

    def test_strategy_state_decided_by_the_strategy(self, store: Cli):
        """A strategy's own reducing under an active firm: the strategy decides for its orders."""
        store("trading", "reducing", "--strategy", "aggressive", "--reason", "x")

        assert {"state": "reducing", "set_by": "strategies.aggressive.state", "scope": "strategy"} == self._in_force(
            store, "strategies.aggressive.state"
        )

    def test_read_form_names_the_strategy_when_it_decides_for_a_symbol(self, store: Cli):
        """trading --symbol S --strategy N answers for an instrument with no entry too."""
        store("trading", "reducing", "--strategy", "aggressive", "--reason", "x")

        answer = store.json("trading", "--symbol", "ETH", "--strategy", "aggressive")

        assert ("reducing", "strategies.aggressive.state", "strategy") == (
            answer["state"],
            answer["set_by"],
            answer["scope"],
        )
        assert (
            "meet reducing, decided by strategies.aggressive.state (strategy)"
            in store("trading", "--symbol", "ETH", "--strategy", "aggressive").stdout
        )
        store("trading", "--strategy", "nosuch", code=3)
        store("trading", "--symbol", "eth", code=3)

    def test_limits_name_their_source_the_default_or_a_hard_cap(self, store: Cli):
        """An inherited collar names the default's path; a limit set nowhere but the cap names the cap."""
        _desk(store)

        assert "instruments.default.price_collar" == store.json("explain", "instruments.BTC.price_collar")["set_by"]
        assert (
            "hard_limits.max_position_notional"
            == store.json("explain", "instruments.BTC.max_position_notional")["set_by"]
        )
        assert None is store.json("explain", "instruments.BTC.max_order_quantity")["set_by"]
        assert "set by   nothing: no limit applies" in store("explain", "trading.max_gross_exposure").stdout
        assert "in_force" not in store.json("explain", "risk.max_leverage")


def _decide(url: str, log_path: Path) -> None:
    """Run the real executor over signals each refused by a new control, recording the decisions."""

    async def main() -> None:
        store = await PolicyStore.open(url)
        sizer = RLPositionSizingAgent(policy_store=store)
        with JsonlDecisionLog(log_path) as log:
            executor = EventDrivenExecutor(
                policy_store=store, broker=PaperBroker(100_000), sizer=sizer, decision_log=log
            )
            now = datetime.now(UTC)
            for signal in (
                Signal("ETH", "buy", 0.8, 3_000.0, "moderate", now, stop_distance=90.0),
                Signal("SOL", "buy", 0.8, 150.0, "moderate", now, stop_distance=9.0, reference_price=140.0),
                Signal("SOL", "buy", 0.8, 140.0, "aggressive", now, stop_distance=9.0),
            ):
                await executor.handle(signal)
        await store.close()

    asyncio.run(main())


class TestDecisionsAndReplay:
    """decisions lists the new refusal reasons with their figures; replay says it runs the firm's state as active."""

    def test_decisions_show_the_new_reasons_with_their_detail(self, store: Cli, tmp_path: Path):
        """halted, price_collar and reducing, each with the sentence and the policy path that refused."""
        store("trading", "halted", "--symbol", "ETH", "--reason", "x")
        store("set", "instruments.default.price_collar", "0.01", "--reason", "x")
        store("trading", "reducing", "--strategy", "aggressive", "--reason", "x")
        _decide(store.url, tmp_path / "d.jsonl")

        lines = store("decisions", "--log", "d.jsonl").stdout.splitlines()

        rows = [line.split() for line in lines[2::2]]
        assert ["halted", "price_collar", "reducing"] == [row[7] for row in rows]
        assert "instruments.ETH.state is halted: no order in ETH may be sent" in lines[3]
        assert "7.143% from the reference price 140, beyond instruments.default.price_collar 1%" in lines[5]
        assert "strategies.aggressive.state is reducing" in lines[7]
        records = json.loads(store("decisions", "--log", "d.jsonl", "--json").stdout)
        assert ["instruments.ETH.state", "instruments.default.price_collar", "strategies.aggressive.state"] == [
            r["control"] for r in records
        ]

    def test_replay_header_says_the_firm_state_runs_as_active(self, store: Cli):
        """A halted store replays as active, and the header says so with the version."""
        store("trading", "halted", "--reason", "x")

        out = store("replay", "--sample").stdout

        assert (
            "The firm-wide trading state, halted in version 2, is active in the replay "
            "(strategy and instrument states apply as stored)." in out
        )
        assert "is active in the replay" not in store("replay", "--sample", "--builtin").stdout
