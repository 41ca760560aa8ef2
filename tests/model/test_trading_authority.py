"""Who may change the trading states and controls, through ``store.update`` on a memory store.

For every kind of field: an operator may tighten it, an operator may not loosen
it (the refusal names the path and nothing is written), and an admin may.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from policystore import Actor, PermissionDeniedError, PolicyStore, PolicyValidationError, Role

OPERATOR = Actor("otto", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


@dataclass(frozen=True)
class Case:
    """One kind of field: what an admin sets first, a tightening patch, a loosening patch, the path refused."""

    kind: str
    setup: dict[str, Any]
    tighten: dict[str, Any]
    loosen: dict[str, Any]
    named: str


CASES: list[Case] = [
    Case(
        "firm state",
        {"trading.state": "reducing"},
        {"trading.state": "halted"},
        {"trading.state": "active"},
        "trading.state",
    ),
    Case(
        "firm state halted to reducing",
        {"trading.state": "halted"},
        {"instruments.default.state": "halted"},
        {"trading.state": "reducing"},
        "trading.state",
    ),
    Case(
        "strategy state",
        {"strategies.moderate.state": "reducing"},
        {"strategies.moderate.state": "halted"},
        {"strategies.moderate.state": "active"},
        "strategies.moderate.state",
    ),
    Case(
        "instrument state",
        {"instruments.BTC.state": "reducing"},
        {"instruments.BTC.state": "halted"},
        {"instruments.BTC.state": "active"},
        "instruments.BTC.state",
    ),
    Case(
        "own active state under a halted default",
        {"instruments.default.state": "halted"},
        {"instruments.ETH.state": "halted"},
        {"instruments.ETH.state": "active"},
        "instruments.ETH.state",
    ),
    Case(
        "default instrument state",
        {"instruments.default.state": "reducing"},
        {"instruments.default.state": "halted"},
        {"instruments.default.state": None},
        "instruments.default.state",
    ),
    Case(
        "unlisted instruments",
        {"trading.allow_unlisted": False, "instruments.BTC.state": "active", "instruments.ETH.state": "active"},
        {"instruments.ETH": None},
        {"trading.allow_unlisted": True},
        "trading.allow_unlisted",
    ),
    Case(
        "order rate",
        {"trading.max_orders_per_minute": 60},
        {"trading.max_orders_per_minute": 30},
        {"trading.max_orders_per_minute": 120},
        "trading.max_orders_per_minute",
    ),
    Case(
        "daily loss",
        {"trading.max_daily_loss": 1_000.0},
        {"trading.max_daily_loss": 500.0},
        {"trading.max_daily_loss": None},
        "trading.max_daily_loss",
    ),
    Case(
        "gross exposure",
        {"trading.max_gross_exposure": 50_000},
        {"trading.max_gross_exposure": 40_000},
        {"trading.max_gross_exposure": 60_000},
        "trading.max_gross_exposure",
    ),
    Case(
        "order notional",
        {"instruments.BTC.max_order_notional": 10_000},
        {"instruments.BTC.max_order_notional": 5_000},
        {"instruments.BTC.max_order_notional": 12_000},
        "instruments.BTC.max_order_notional",
    ),
    Case(
        "order quantity",
        {"instruments.ETH.max_order_quantity": 10},
        {"instruments.ETH.max_order_quantity": 5},
        {"instruments.ETH.max_order_quantity": None},
        "instruments.ETH.max_order_quantity",
    ),
    Case(
        "position notional",
        {"instruments.default.max_position_notional": 20_000},
        {"instruments.default.max_position_notional": 15_000},
        {"instruments.default.max_position_notional": 25_000},
        "instruments.default.max_position_notional",
    ),
    Case(
        "price collar",
        {"instruments.BTC.price_collar": 0.05},
        {"instruments.BTC.price_collar": 0.02},
        {"instruments.BTC.price_collar": 0.1},
        "instruments.BTC.price_collar",
    ),
    Case(
        "hard cap",
        {"hard_limits.max_order_notional": 100_000},
        {"hard_limits.max_order_notional": 80_000},
        {"hard_limits.max_order_notional": None},
        "hard_limits.max_order_notional",
    ),
    Case(
        "instrument entry removed",
        {"instruments.SOL": {"max_order_notional": 2_000, "state": "reducing"}},
        {"instruments.SOL.max_order_quantity": 10},
        {"instruments.SOL": None},
        "instruments.SOL.max_order_notional",
    ),
    Case(
        "own value looser than the default",
        {"instruments.default.max_order_notional": 10_000},
        {"instruments.BTC.max_order_notional": 8_000},
        {"instruments.BTC.max_order_notional": 20_000},
        "instruments.BTC.max_order_notional",
    ),
    Case(
        "instrument added while unlisted are refused",
        {"trading.allow_unlisted": False, "instruments.BTC.state": "active"},
        {"instruments.BTC.state": "reducing"},
        {"instruments.ETH.state": "reducing"},
        "instruments.ETH",
    ),
]
IDS = [case.kind for case in CASES]


@pytest.fixture
async def store() -> AsyncIterator[PolicyStore]:
    """A memory store with no last-known-good file, not following changes."""
    opened = await PolicyStore.open(f"memory://trading-{uuid.uuid4().hex}", lkg_path=None, watch=False)
    yield opened
    await opened.close()


async def prepared(store: PolicyStore, setup: dict[str, Any]) -> int:
    """Apply ``setup`` as an admin; return the version it leaves."""
    if setup:
        await store.update(setup, updated_by="ada", reason="setup", actor=ADMIN)
    return int(store.get("version"))


class TestDirectionAwareAuthority:
    """Tightening is an operator's; loosening, in any field, an admin's."""

    @pytest.mark.parametrize("case", CASES, ids=IDS)
    async def test_operator_may_tighten(self, store, case: Case) -> None:
        """The tightening write is applied for an operator."""
        version = await prepared(store, case.setup)
        written = await store.update(case.tighten, updated_by="otto", reason="tighten", actor=OPERATOR)
        assert version + 1 == written.version
        for path, value in case.tighten.items():
            assert value == store.get(path, None)  # a removed entry has no paths left

    @pytest.mark.parametrize("case", CASES, ids=IDS)
    async def test_operator_may_not_loosen(self, store, case: Case) -> None:
        """The loosening write is refused for an operator, naming the path, and nothing is written."""
        version = await prepared(store, case.setup)
        with pytest.raises(PermissionDeniedError) as caught:
            await store.update(case.loosen, updated_by="otto", reason="loosen", actor=OPERATOR)
        assert "admin" == caught.value.required_role
        assert case.named in str(caught.value)
        assert version == store.get("version")

    @pytest.mark.parametrize("case", CASES, ids=IDS)
    async def test_admin_may_loosen(self, store, case: Case) -> None:
        """The same loosening write is applied for an admin."""
        version = await prepared(store, case.setup)
        written = await store.update(case.loosen, updated_by="ada", reason="loosen", actor=ADMIN)
        assert version + 1 == written.version


class TestThroughTheStore:
    """The rest of the write path: read-only paths, entries made on first write, history."""

    async def test_effective_state_write_refused_for_everyone(self, store) -> None:
        """Even an admin cannot write the computed state."""
        with pytest.raises(PolicyValidationError) as caught:
            await store.update({"trading.effective_state": "active"}, updated_by="ada", reason="x", actor=ADMIN)
        assert ("trading.effective_state",) == caught.value.paths

    async def test_kill_switch_shows_in_effective_state(self, store) -> None:
        """An operator's kill switch makes the effective state reducing; the stored state stays active."""
        await store.set_emergency_mode(True, reason="halt", updated_by="otto", actor=OPERATOR)
        assert ("active", "reducing") == (store.get("trading.state"), store.get("trading.effective_state"))

    async def test_operator_creates_an_instrument_entry_and_history_records_it(self, store) -> None:
        """A limit on a symbol with no entry creates it; history names the field, old None, new value."""
        await store.update({"instruments.XRP.max_order_notional": 500}, updated_by="otto", reason="cap", actor=OPERATOR)
        entry = (await store.history(limit=1))[0]
        assert 500 == store.get("instruments.XRP.max_order_notional")
        assert [("instruments.XRP.max_order_notional", None, 500.0)] == [(c.path, c.old, c.new) for c in entry.changes]

    async def test_operator_turns_unlisted_instruments_off(self, store) -> None:
        """Fewer allowed instruments is tightening: an operator may allow only the listed ones."""
        await store.update({"trading.allow_unlisted": False}, updated_by="otto", reason="list", actor=OPERATOR)
        assert store.get("trading.allow_unlisted") is False

    async def test_operator_halting_with_the_kill_switch_is_one_write(self, store) -> None:
        """A firm halt and a strategy halt in one patch are both tightening."""
        written = await store.update(
            {"trading.state": "halted", "strategies.aggressive.state": "halted"},
            updated_by="otto",
            reason="exchange outage",
            actor=OPERATOR,
        )
        assert ("halted", "halted") == (store.get("trading.effective_state"), store.get("strategies.aggressive.state"))
        assert 2 == written.version
