"""The last-known-good copy never predates an acknowledged tightening of a trading state, at any scope.

A write that makes ``trading.state``, ``strategies.<name>.state`` or
``instruments.<KEY>.state`` stricter returns only once the copy on disk holds
it, flushed, as a write turning the kill switch on does; so does a write that
finds the state already that strict and changes nothing. Proved with a real
process killed by SIGKILL the moment its call returns, and a store that is
then unreadable: a new process answers from the copy, and the state it reads
refuses what the write stopped.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_lkg_durable import corrupt

from policystore import Actor, PolicyStore, Role, Source
from policystore.model.changes import apply_patch
from policystore.model.controls import strictest_state
from policystore.model.policy import Policy, default_policy
from policystore.store import lkg as lkg_module
from policystore.store.keeper import restricts_trading, tightens_trading
from policystore.store.lkg import LastKnownGood
from support.waiting import eventually

WORKER = Path(__file__).with_name("lkg_states_worker.py")
OPERATOR = Actor("ops", Role.OPERATOR)

#: Each tightening write: the path, the state written, and an order (symbol, strategy) it must hold back.
TIGHTENINGS = [
    ("trading.state", "halted", ("ETH", "aggressive")),
    ("trading.state", "reducing", ("ETH", "aggressive")),
    ("strategies.moderate.state", "halted", ("ETH", "moderate")),
    ("instruments.BTC.state", "reducing", ("BTC", "aggressive")),
    ("instruments.default.state", "halted", ("ETH", "aggressive")),
]
IDS = [f"{path}={value}" for path, value, _ in TIGHTENINGS]


def stored_state(db: Path, path: str) -> tuple[int, str | None]:
    """The newest version in the file and the state it stores at ``path``."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT version, json_extract(document, ?) FROM policy_versions ORDER BY version DESC LIMIT 1",
            ("$." + path,),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0]), row[1]


async def killed_after(tmp_path: Path, action: str, path: str, value: str) -> tuple[Path, Path]:
    """Run the worker's ACTION on PATH=VALUE; it dies by SIGKILL the moment the write returns."""
    db, lkg = tmp_path / "policystore.db", tmp_path / "policystore.db.lkg.json"
    worker = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(WORKER), str(db), str(lkg), action, path, value],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert -signal.SIGKILL == worker.returncode, worker.stderr.decode(errors="replace")
    assert (2, value) == stored_state(db, path)  # acknowledged: the store holds it
    return db, lkg


async def assert_copy_holds(db: Path, lkg: Path, path: str, value: str, order: tuple[str, str]) -> None:
    """With the store unreadable, a new process answers version 2 from the copy, with the state in force."""
    corrupt(db)
    store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=lkg)
    try:
        assert (Source.LAST_KNOWN_GOOD, 2, value) == (store.source, store.get("version"), store.get(path))
        symbol, strategy = order
        assert value == strictest_state(store.snapshot(), symbol, strategy).state.value
    finally:
        await store.close()


class TestKilledRightAfterATighteningWrite:
    """SIGKILL the moment the call returns, then a corrupt store: the copy a new process reads holds the state."""

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize(("path", "value", "order"), TIGHTENINGS, ids=IDS)
    async def test_copy_holds_the_acknowledged_stricter_state(
        self, tmp_path: Path, path: str, value: str, order: tuple[str, str]
    ) -> None:
        """Firm, strategy, instrument or default instrument: the state the write returned is the copy's."""
        db, lkg = await killed_after(tmp_path, "write", path, value)
        await assert_copy_holds(db, lkg, path, value, order)

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize(("path", "value", "order"), TIGHTENINGS, ids=IDS)
    async def test_copy_holds_a_stricter_state_a_write_found_already_set(
        self, tmp_path: Path, path: str, value: str, order: tuple[str, str]
    ) -> None:
        """Another store set it first; the same write changes nothing, yet returns with the copy holding it."""
        db, lkg = await killed_after(tmp_path, "again", path, value)
        await assert_copy_holds(db, lkg, path, value, order)


class TestOwnTighteningWaitsForTheCopy:
    """In one process: when the write returns, the file already holds it, with no waiting."""

    async def test_stricter_strategy_state_returns_with_the_copy_saved(self, tmp_path: Path) -> None:
        """The copy on disk is the version the call returned, though saves are otherwise spaced."""
        lkg = tmp_path / "lkg.json"
        store = await PolicyStore.open(f"sqlite:///{tmp_path}/policy.db", watch=False, lkg_path=lkg)
        try:
            await store.update({"modes.NORMAL.max_positions": 20}, reason="routine", actor=OPERATOR)
            halted = await store.update({"strategies.moderate.state": "halted"}, reason="desk", actor=OPERATOR)
            saved = LastKnownGood(lkg).read()
            assert saved is not None
            assert (halted.version, "halted") == (saved.version, saved.strategies["moderate"].state.value)
        finally:
            await store.close()

    async def test_routine_write_is_not_held_back_for_the_copy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Only tightening must wait: a write that holds nothing back is saved later, spaced like every other save."""
        monkeypatch.setattr(lkg_module, "LKG_SAVE_INTERVAL", 3600.0)
        lkg = tmp_path / "lkg.json"
        store = await PolicyStore.open(f"sqlite:///{tmp_path}/policy.db", watch=False, lkg_path=lkg)
        try:
            await eventually(lambda: (saved := LastKnownGood(lkg).read()) is not None and saved.version == 1)
            written = await store.update({"modes.NORMAL.max_positions": 20}, reason="routine", actor=OPERATOR)
            saved = LastKnownGood(lkg).read()
            assert saved is not None
            assert (2, 1) == (written.version, saved.version)
        finally:
            await store.close()


class TestTighteningFromAnotherProcess:
    """A version that makes a state stricter, heard from elsewhere, is saved as soon as it is installed."""

    async def test_followers_copy_holds_a_halted_instrument_another_process_wrote(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The follower's copy reaches the halted instrument without waiting for a routine save or a close."""
        # Routine saves an hour apart: within this test, only a save made at once reaches the file.
        monkeypatch.setattr(lkg_module, "LKG_SAVE_INTERVAL", 3600.0)
        db, lkg = tmp_path / "policystore.db", tmp_path / "follower.lkg.json"
        follower = await PolicyStore.open(f"sqlite:///{db}", lkg_path=lkg, refresh_interval=3600)
        writer = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            await eventually(lambda: (saved := LastKnownGood(lkg).read()) is not None and saved.version == 1)
            await writer.update({"instruments.BTC.state": "halted"}, reason="venue down", actor=OPERATOR)
            await eventually(lambda: follower.get("instruments.BTC.state", None) == "halted")

            def saved_halt() -> bool:
                saved = LastKnownGood(lkg).read()
                return saved is not None and saved.version == 2 and "BTC" in saved.instruments

            await eventually(saved_halt)
        finally:
            await writer.close()
            await follower.close()


def _with(changes: dict[str, object], base: Policy | None = None) -> Policy:
    return apply_patch(base or default_policy(), changes)


class TestWhatCountsAsTightening:
    """The rule the writer and the follower share, on policies built in memory."""

    @pytest.mark.parametrize(
        "changes",
        [
            {"emergency.active": True, "emergency.reason": "venue down"},
            {"trading.state": "reducing"},
            {"strategies.moderate.state": "halted"},
            {"strategies.scalper": {"cooldown_seconds": 5, "state": "reducing"}},
            {"instruments.BTC.state": "halted"},
            {"instruments.default.state": "reducing"},
        ],
        ids=["kill-switch", "firm", "strategy", "new-strategy", "instrument", "default-instrument"],
    )
    def test_a_stricter_state_at_any_scope_tightens(self, changes: dict[str, object]) -> None:
        """Each scope, and a strategy that arrives with a state of its own, counts."""
        assert tightens_trading(default_policy(), _with(changes))

    def test_own_active_state_removed_under_a_halted_default_tightens_in_force(self) -> None:
        """Stored, BTC's state went from active to unset; in force it went from active to the default's halted."""
        before = _with({"instruments.default.state": "halted", "instruments.BTC.state": "active"})
        after = _with({"instruments.BTC": None}, before)
        assert tightens_trading(before, after)

    @pytest.mark.parametrize(
        "changes",
        [
            {"modes.NORMAL.max_positions": 10},
            {"instruments.BTC.max_order_notional": 1000},
            {"active_mode": "DEFENSIVE"},
        ],
        ids=["mode-limit", "instrument-limit", "mode-switch"],
    )
    def test_changes_that_touch_no_state_do_not_tighten(self, changes: dict[str, object]) -> None:
        """Limits and modes tighten risk, not the trading state: they are saved like any version."""
        assert not tightens_trading(default_policy(), _with(changes))

    def test_a_looser_state_does_not_tighten(self) -> None:
        """Halted back to active loosens; the policy it leaves restricts nothing."""
        halted = _with({"trading.state": "halted"})
        active = _with({"trading.state": "active"}, halted)
        assert (False, True, False) == (
            tightens_trading(halted, active),
            restricts_trading(halted),
            restricts_trading(active),
        )
