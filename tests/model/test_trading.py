"""The trading section and instrument entries: validation, old documents, paths, writes and events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from policystore import EventType, FieldChange, HistoryEntry, PolicyValidationError, UnknownPathError
from policystore.model.changes import apply_patch, diff_policies, stored_values, unchanged, writable_paths
from policystore.model.controls import TradingRules, instrument_rules, rules_for, strictest_state
from policystore.model.document_text import canonical_lines, document_text, member_lines, policy_from_changed_lines
from policystore.model.events import events_for
from policystore.model.paths import flatten
from policystore.model.policy import default_policy
from policystore.model.trading import SYMBOL_PATTERN, TradingState
from policystore.model.validation import build_policy, build_policy_json

BASE = default_policy()
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def patched(patch: dict[str, Any]) -> Any:
    """The default policy with ``patch`` applied."""
    return apply_patch(BASE, patch)


def refused_paths(patch: dict[str, Any]) -> tuple[str, ...]:
    """The paths a refused patch names."""
    with pytest.raises(PolicyValidationError) as caught:
        apply_patch(BASE, patch)
    return caught.value.paths


class TestOldDocuments:
    """A document written before the trading sections existed reads as their defaults."""

    def test_document_without_sections_reads_as_everything_active_and_no_limits(self) -> None:
        """No trading, no instruments, no strategy states: active everywhere, unlisted allowed, no limits."""
        data = copy.deepcopy(BASE.document())
        del data["trading"], data["instruments"]
        for strategy in data["strategies"].values():
            del strategy["state"]
        for cap in ("max_order_notional", "max_position_notional", "max_gross_exposure", "max_daily_loss"):
            del data["hard_limits"][cap]
        del data["hard_limits"]["max_orders_per_minute"]
        for policy in (build_policy(data), build_policy_json(json.dumps(data))):
            values = flatten(policy)
            assert BASE == policy
            assert ("active", "active", True) == (
                values["trading.state"],
                values["trading.effective_state"],
                values["trading.allow_unlisted"],
            )
            assert TradingRules(policy).quiet

    def test_old_text_then_record_only_version_takes_the_short_way_with_defaults(self) -> None:
        """Held lines of an older writer's text still give the short way for a mode switch, sections defaulted."""
        data = copy.deepcopy(BASE.document())
        del data["trading"], data["instruments"]
        held = build_policy_json(document_text(data))
        held_lines = member_lines(document_text(data).encode())
        assert held_lines is not None
        data.update(active_mode="DEFENSIVE", version=2, reason="calm")
        new_lines = member_lines(document_text(data).encode())
        assert new_lines is not None
        short = policy_from_changed_lines(held, held_lines, new_lines)
        assert short is not None
        assert build_policy_json(document_text(data)) == short
        assert TradingState.ACTIVE is short.trading.state


class TestValidation:
    """States, limits, collars, symbols and caps are checked like every other field."""

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            ("trading.state", "paused"),
            ("trading.state", 1),
            ("strategies.moderate.state", "stopped"),
            ("instruments.BTC.state", "HALTED"),
            ("trading.allow_unlisted", "maybe"),
            ("trading.max_orders_per_minute", 0),
            ("trading.max_orders_per_minute", 2.5),
            ("trading.max_orders_per_minute", True),
            ("trading.max_daily_loss", 0),
            ("trading.max_daily_loss", -100.0),
            ("trading.max_daily_loss", float("inf")),
            ("trading.max_gross_exposure", float("nan")),
            ("instruments.BTC.max_order_notional", 0),
            ("instruments.BTC.max_order_quantity", -1),
            ("instruments.default.max_position_notional", "a lot"),
            ("instruments.BTC.price_collar", 0),
            ("instruments.BTC.price_collar", 1),
            ("instruments.BTC.price_collar", 1.5),
            ("hard_limits.max_order_notional", 0),
            ("hard_limits.max_orders_per_minute", 0),
        ],
    )
    def test_out_of_range_value_refused_naming_its_path(self, path: str, value: Any) -> None:
        """Each bad value is refused with its own path."""
        assert (path,) == refused_paths({path: value})

    @pytest.mark.parametrize(
        "path",
        [
            "trading.max_daily_loss",
            "trading.max_gross_exposure",
            "instruments.BTC.max_order_notional",
            "instruments.default.max_order_quantity",
            "hard_limits.max_order_notional",
            "trading.max_orders_per_minute",
        ],
    )
    def test_number_too_large_for_a_float_refused(self, path: str) -> None:
        """10**400 is no limit a float can hold: refused, whatever the section."""
        assert (path,) == refused_paths({path: 10**400})

    @pytest.mark.parametrize(
        "symbol",
        ["btc", "BTC\n", "-BTC", "", "A" * 33, "BTC USD", "BTC\x1b[31m", "Default", "BTC$"],
        ids=repr,
    )
    def test_forged_symbol_refused_naming_the_pattern(self, symbol: str) -> None:
        """A key that is no symbol (lower case, a newline, a space, too long, an escape) is refused."""
        data = copy.deepcopy(BASE.document())
        data["instruments"][symbol] = {"state": "halted"}
        with pytest.raises(PolicyValidationError) as caught:
            build_policy(data)
        assert 1 == len(caught.value.errors)
        assert "pattern ^[A-Z0-9][A-Z0-9._:/-]{0,31}$" in caught.value.errors[0].message
        assert "\x1b" not in str(caught.value)

    @pytest.mark.parametrize("symbol", ["BTC", "BTC-PERP", "BTC/USD", "BRK.B", "ES:H25", "X_1", "9", "A" * 32])
    def test_symbols_of_the_documented_pattern_accepted(self, symbol: str) -> None:
        """Letters, digits and . _ : / - as documented, up to 32 characters."""
        policy = patched({f"instruments.{symbol}.max_order_quantity": 5})
        assert SYMBOL_PATTERN.fullmatch(symbol)
        assert 5.0 == flatten(policy)[f"instruments.{symbol}.max_order_quantity"]

    def test_limit_above_its_optional_hard_cap_refused(self) -> None:
        """An instrument's or the firm's limit above its hard cap is refused, naming both."""
        caps = {"hard_limits.max_order_notional": 50_000, "hard_limits.max_daily_loss": 1_000}
        paths = refused_paths(
            {**caps, "instruments.default.max_order_notional": 60_000, "trading.max_daily_loss": 2_000}
        )
        assert {"instruments.default.max_order_notional", "trading.max_daily_loss"} == set(paths)

    def test_limit_at_its_optional_hard_cap_accepted(self) -> None:
        """At the cap is within it."""
        policy = patched({"hard_limits.max_gross_exposure": 5e5, "trading.max_gross_exposure": 5e5})
        assert 5e5 == policy.trading.max_gross_exposure

    def test_effective_state_is_read_only(self) -> None:
        """trading.effective_state is computed: writing it is refused with the paths to write instead."""
        with pytest.raises(PolicyValidationError) as caught:
            patched({"trading.effective_state": "active"})
        assert ("trading.effective_state",) == caught.value.paths
        assert "write trading.state or emergency.active" in str(caught.value)

    def test_unknown_instrument_field_is_an_unknown_path(self) -> None:
        """A field no entry has is an unknown path, not a symbol."""
        with pytest.raises(UnknownPathError):
            patched({"instruments.BTC.max_notional": 5})


class TestPaths:
    """What the read path answers for the new sections."""

    def test_effective_state_folds_the_kill_switch_in(self) -> None:
        """Kill switch on: at least reducing; a halted firm stays halted."""
        on = patched({"emergency.active": True, "emergency.reason": "halt"})
        halted = apply_patch(on, {"trading.state": "halted"})
        assert ("active", "reducing") == (flatten(on)["trading.state"], flatten(on)["trading.effective_state"])
        assert "halted" == flatten(halted)["trading.effective_state"]

    def test_instrument_field_falls_back_to_default_then_hard_cap(self) -> None:
        """Own value, else the default's, else the hard cap; a state set nowhere is active."""
        policy = patched(
            {
                "instruments.default.max_order_notional": 10_000,
                "instruments.default.state": "reducing",
                "instruments.BTC.max_order_notional": 50_000,
                "instruments.ETH.max_order_quantity": 20,
                "hard_limits.max_position_notional": 80_000,
            }
        )
        values = flatten(policy)
        assert 50_000 == values["instruments.BTC.max_order_notional"]
        assert 10_000 == values["instruments.ETH.max_order_notional"]
        assert "reducing" == values["instruments.BTC.state"]
        assert 80_000 == values["instruments.ETH.max_position_notional"]
        assert values["instruments.ETH.price_collar"] is None
        rules = instrument_rules(policy, "SOL")
        assert (False, 10_000, "instruments.default.max_order_notional") == (
            rules.listed,
            *rules.max_order_notional,  # type: ignore[misc]
        )
        assert "hard_limits.max_position_notional" == rules.max_position_notional.path  # type: ignore[union-attr]

    def test_paths_list_every_new_path(self) -> None:
        """The firm-wide controls, each strategy's state and the default entry are listed; entries once written."""
        values = flatten(patched({"instruments.BTC.price_collar": 0.02}))
        expected = {
            "trading.state",
            "trading.effective_state",
            "trading.allow_unlisted",
            "trading.max_orders_per_minute",
            "trading.max_daily_loss",
            "trading.max_gross_exposure",
            "strategies.moderate.state",
            "instruments.default.state",
            "instruments.default.max_order_notional",
            "instruments.default.max_order_quantity",
            "instruments.default.max_position_notional",
            "instruments.default.price_collar",
            "instruments.BTC.state",
            "instruments.BTC.price_collar",
            "hard_limits.max_order_notional",
        }
        assert set() == expected - set(values)
        assert "instruments.ETH.state" not in values

    def test_strictest_state_names_the_scope_that_decided(self) -> None:
        """Firm, strategy, instrument: the strictest wins, a tie goes to the wider scope."""
        policy = patched({"strategies.moderate.state": "reducing", "instruments.BTC.state": "halted"})
        assert ("halted", "instruments.BTC.state") == strictest_state(policy, "BTC", "moderate")
        assert ("reducing", "strategies.moderate.state") == strictest_state(policy, "ETH", "moderate")
        assert ("active", "trading.state") == strictest_state(policy, "ETH", "aggressive")
        firm = apply_patch(policy, {"trading.state": "reducing"})
        assert ("reducing", "trading.state") == strictest_state(firm, "ETH", "moderate")
        rules = TradingRules(firm)
        assert strictest_state(firm, "BTC", "moderate") == rules.state_for("BTC", "moderate")

    def test_resolved_rules_equal_instrument_rules_for_listed_unlisted_and_default(self) -> None:
        """What TradingRules resolves once per symbol is what instrument_rules says, field by field."""
        policy = patched(
            {
                "instruments.default.max_order_notional": 9_000,
                "instruments.default.price_collar": 0.05,
                "instruments.BTC.max_order_notional": 5_000,
                "instruments.BTC.max_position_notional": 7_000,
                "instruments.ETH.state": "reducing",
                "hard_limits.max_position_notional": 80_000,
            }
        )
        rules = TradingRules(policy)
        for symbol in ("BTC", "ETH", "SOL", "default"):
            assert instrument_rules(policy, symbol) == rules.instrument(symbol)
        btc, sol = rules.instrument("BTC"), rules.instrument("SOL")
        assert (5_000, 1, (("max_order_notional", 5_000), ("max_position_notional", 7_000))) == (
            btc.opening_notional,
            btc.max_order_notional.path.count("BTC"),  # type: ignore[union-attr]
            btc.opening_caps,
        )
        assert ("SOL", False, "instruments.default.state", 9_000) == (
            sol.symbol,
            sol.listed,
            sol.state.path,
            sol.opening_notional,
        )

    def test_rules_for_shares_a_snapshot_s_rules_and_never_another_s(self) -> None:
        """The same snapshot gives the same rules; a new version, or one of many, gives its own."""
        policy = patched({"instruments.BTC.max_order_notional": 5_000})
        assert rules_for(policy) is rules_for(policy)
        versions = [apply_patch(policy, {"instruments.BTC.max_order_notional": 100 + n}) for n in range(20)]
        for _ in range(2):
            limits = [rules_for(v).instrument("BTC").opening_notional for v in versions]
            assert [100 + n for n in range(20)] == limits
        assert all(rules_for(v).policy is v for v in versions)


class TestWrites:
    """Writing the new paths: entries created and removed, changes recorded."""

    def test_field_of_a_symbol_without_entry_creates_it(self) -> None:
        """instruments.<SYMBOL>.<field> creates the entry; history shows the field."""
        policy = patched({"instruments.SOL.max_order_quantity": 100})
        assert 100 == policy.instruments["SOL"].max_order_quantity
        assert (FieldChange("instruments.SOL.max_order_quantity", None, 100.0),) == diff_policies(BASE, policy)

    def test_null_removes_an_entry_and_its_last_field(self) -> None:
        """A whole entry set to null goes; so does one whose last field is set to null."""
        policy = patched({"instruments.SOL.max_order_quantity": 100, "instruments.ETH.state": "halted"})
        gone = apply_patch(policy, {"instruments.SOL": None, "instruments.ETH.state": None})
        assert {} == dict(gone.instruments)
        assert unchanged(BASE, gone)

    def test_removing_an_entry_that_is_not_there_is_an_unknown_path(self) -> None:
        """A typo in a removal names what there is."""
        policy = patched({"instruments.SOL.max_order_quantity": 100})
        with pytest.raises(UnknownPathError) as caught:
            apply_patch(policy, {"instruments.SOLL": None})
        assert ("instruments.SOL",) == tuple(caught.value.suggestions)

    def test_whole_entry_written_as_a_mapping(self) -> None:
        """An entry may be written whole, dotted symbols included."""
        policy = patched({"instruments.BRK.B": {"state": "reducing", "price_collar": 0.1}})
        assert TradingState.REDUCING is policy.instruments["BRK.B"].state
        assert "reducing" == flatten(policy)["instruments.BRK.B.state"]

    def test_state_written_as_the_enum(self) -> None:
        """A TradingState member is written as its value."""
        policy = patched({"trading.state": TradingState.HALTED})
        assert "halted" == stored_values(policy)["trading.state"]

    def test_writable_paths_hold_the_new_sections(self) -> None:
        """The default entry's fields and the firm-wide controls are writable; the effective state is not."""
        paths = writable_paths(BASE)
        assert {"trading.state", "trading.max_daily_loss", "instruments.default.price_collar"} <= set(paths)
        assert "trading.effective_state" not in paths

    def test_canonical_lines_round_trip_with_sections(self) -> None:
        """A version with trading sections is published and read back the same, both ways."""
        policy = patched({"trading.state": "reducing", "instruments.BTC.max_order_notional": 1e4})
        text = document_text(policy.document())
        assert policy == build_policy_json(text)
        assert member_lines(text.encode()) == canonical_lines(policy)


class TestTradingEvents:
    """A state change at any scope adds policy.trading after the other kinds."""

    @pytest.mark.parametrize(
        ("change", "heard"),
        [
            (FieldChange("trading.state", "active", "reducing"), True),
            (FieldChange("strategies.moderate.state", "active", "halted"), True),
            (FieldChange("instruments.BRK.B.state", None, "halted"), True),
            (FieldChange("instruments.default.state", "halted", None), True),
            (FieldChange("strategies.scalper.state", None, "active"), False),  # a strategy added
            (FieldChange("trading.max_daily_loss", None, 500.0), False),
            (FieldChange("instruments.BTC.max_order_notional", None, 1e4), False),
        ],
    )
    def test_events_for_state_change_adds_trading_kind(self, change: FieldChange, heard: bool) -> None:
        """Only a moved state yields policy.trading."""
        kinds = [e.type for e in events_for(HistoryEntry(3, AT, "ann", "why", (change,)), 2)]
        assert ([EventType.UPDATED, EventType.TRADING] if heard else [EventType.UPDATED]) == kinds

    def test_events_for_kill_switch_and_state_in_one_write(self) -> None:
        """Kinds come in a fixed order: updated, emergency, trading."""
        changes = (
            FieldChange("emergency.active", old=False, new=True),
            FieldChange("trading.state", "active", "halted"),
        )
        kinds = [e.type.value for e in events_for(HistoryEntry(3, AT, "ann", "why", changes), 2)]
        assert ["policy.updated", "policy.emergency", "policy.trading"] == kinds
