"""The last-known-good copy never predates an acknowledged kill switch.

A write that stops trading returns only once the copy on disk holds it,
flushed; a version that stops trading heard from another process is saved as
soon as it is installed. Proved with a real process killed by SIGKILL the moment
its call returns, and a store that is then unreadable.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from policystore import Actor, PolicyStore, Role, Source
from policystore.store.lkg import LastKnownGood
from support.waiting import eventually

WORKER = Path(__file__).with_name("lkg_worker.py")
OPERATOR = Actor("ops", Role.OPERATOR)


def corrupt(db: Path) -> None:
    """Overwrite the database and its write-ahead log with bytes that are no SQLite file, as a failing disk might."""
    for suffix in ("", "-wal"):
        db.with_name(db.name + suffix).write_bytes(b"\xde\xad" * 8192)
    db.with_name(db.name + "-shm").unlink(missing_ok=True)


def stored_kill_switch(db: Path) -> tuple[int, int]:
    """The newest version in the file and whether its kill switch is on (1) or off (0)."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT version, json_extract(document, '$.emergency.active') FROM policy_versions "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return int(row[0]), int(row[1])


class TestKilledRightAfterTheKillSwitch:
    """SIGKILL the moment the call returns, then a corrupt store: the copy a new process reads stops trading."""

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize("action", ["emergency", "breaker"])
    async def test_copy_holds_the_acknowledged_kill_switch(self, tmp_path: Path, action: str) -> None:
        """A new process answering from the copy reads the kill switch on and opens no trade."""
        db, lkg = tmp_path / "policystore.db", tmp_path / "policystore.db.lkg.json"
        worker = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(WORKER), str(db), str(lkg), action],
            capture_output=True,
            timeout=90,
            check=False,
        )
        assert -signal.SIGKILL == worker.returncode, worker.stderr.decode(errors="replace")
        assert (2, 1) == stored_kill_switch(db)  # acknowledged: the store holds it
        corrupt(db)
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=lkg)
        try:
            assert (Source.LAST_KNOWN_GOOD, 2, True) == (
                store.source,
                store.get("version"),
                store.get("emergency.active"),
            )
            assert not await store.can_open_new_trades()
        finally:
            await store.close()


class TestKillSwitchFromAnotherProcess:
    """A version that stops trading, heard from elsewhere, is installed and then saved at once."""

    async def test_followers_copy_holds_a_kill_switch_another_process_wrote(self, tmp_path: Path) -> None:
        """The follower's copy reaches the kill switch without waiting for a routine save or a close."""
        db, lkg = tmp_path / "policystore.db", tmp_path / "follower.lkg.json"
        follower = await PolicyStore.open(f"sqlite:///{db}", lkg_path=lkg, refresh_interval=3600)
        writer = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            await eventually(lambda: (saved := LastKnownGood(lkg).read()) is not None and saved.version == 1)
            await writer.set_emergency_mode(True, reason="venue down", actor=OPERATOR)
            await eventually(lambda: follower.get("emergency.active") is True)

            def saved_kill_switch() -> bool:
                saved = LastKnownGood(lkg).read()
                return saved is not None and saved.version == 2 and saved.emergency.active

            await eventually(saved_kill_switch)
        finally:
            await writer.close()
            await follower.close()


class TestOwnWriteWaitsForTheCopy:
    """In one process: when the kill switch write returns, the file already holds it."""

    async def test_kill_switch_write_returns_with_the_copy_saved(self, tmp_path: Path) -> None:
        """No waiting after the call: the copy on disk is the version the call returned."""
        store = await PolicyStore.open(f"sqlite:///{tmp_path}/policy.db", watch=False, lkg_path=tmp_path / "lkg.json")
        try:
            halted = await store.set_emergency_mode(True, reason="venue down", actor=OPERATOR)
            saved = LastKnownGood(tmp_path / "lkg.json").read()
            assert saved is not None
            assert (halted.version, True) == (saved.version, saved.emergency.active)
        finally:
            await store.close()

    async def test_kill_switch_write_that_changes_nothing_still_stops_this_process(self, tmp_path: Path) -> None:
        """Another process turned it on first: the write finds it on, and this process holds it, saved, at once."""
        db, lkg = tmp_path / "policy.db", tmp_path / "lkg.json"
        store = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=lkg)
        other = await PolicyStore.open(f"sqlite:///{db}", watch=False, lkg_path=None)
        try:
            first = await other.set_emergency_mode(True, reason="venue down", actor=OPERATOR)
            returned = await store.set_emergency_mode(True, reason="venue down", actor=OPERATOR)
            saved = LastKnownGood(lkg).read()
            assert (first.version, True) == (returned.version, returned.emergency.active)
            assert (first.version, True, False) == (
                store.get("version"),
                store.get("emergency.active"),
                await store.can_open_new_trades(),
            )
            assert saved is not None
            assert (first.version, True) == (saved.version, saved.emergency.active)
        finally:
            await other.close()
            await store.close()
