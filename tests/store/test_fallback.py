"""The fallback chain: live store, then last-known-good (stale), then environment, then defaults."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from policystore import PolicyStore, Source, StoreUnavailableError
from policystore.backends.memory import MemoryBackend
from policystore.model.changes import apply_patch
from policystore.model.policy import default_policy
from policystore.model.validation import build_policy
from policystore.store.lkg import LastKnownGood
from policystore.testing import SwitchableBackend
from support.waiting import eventually


def memory_backend() -> SwitchableBackend:
    """A named in-process store no other test shares, with an outage switch."""
    return SwitchableBackend(MemoryBackend(f"fallback-{uuid.uuid4().hex}"))


class TestLastKnownGoodFile:
    """The file itself."""

    def test_lkg_write_read_round_trip(self, tmp_path: Path) -> None:
        """A written policy reads back equal, and no temporary file is left behind."""
        lkg = LastKnownGood(tmp_path / "lkg.json")
        policy = apply_patch(default_policy(), {"modes.NORMAL.max_leverage": 4.0})
        lkg.write(policy)
        assert policy == lkg.read()
        assert ["lkg.json"] == sorted(p.name for p in tmp_path.iterdir())

    def test_lkg_older_version_not_written_over_newer(self, tmp_path: Path) -> None:
        """A process that heard of an older version keeps the newer saved copy."""
        lkg = LastKnownGood(tmp_path / "lkg.json")
        newer = build_policy({**default_policy().document(), "version": 5})
        older = build_policy({**default_policy().document(), "version": 3, "active_mode": "DEFENSIVE"})
        lkg.write(newer)
        lkg.write(older)
        saved = lkg.read()
        assert saved is not None
        assert (5, "NORMAL") == (saved.version, saved.active_mode)

    def test_routine_save_deferred_while_file_young(self, tmp_path: Path) -> None:
        """A spaced save waits while another save is recent; a forced or unspaced one does not."""
        lkg = LastKnownGood(tmp_path / "lkg.json")
        first = build_policy({**default_policy().document(), "version": 1})
        second = build_policy({**default_policy().document(), "version": 2})
        assert lkg.write(first, durable=False)
        assert not lkg.write(second, durable=False, spacing=60)
        assert 1 == (saved.version if (saved := lkg.read()) else None)
        assert lkg.write(second, durable=False)
        assert 2 == (saved.version if (saved := lkg.read()) else None)
        assert lkg.write(first, spacing=60)  # already saved newer: nothing to do, not deferred

    def test_file_from_the_future_does_not_defer(self, tmp_path: Path) -> None:
        """After the clock went back, a file that seems to be from the future does not hold saves back."""
        lkg = LastKnownGood(tmp_path / "lkg.json")
        lkg.write(build_policy({**default_policy().document(), "version": 1}))
        ahead = time.time() + 3600
        os.utime(lkg.path, (ahead, ahead))
        assert lkg.write(build_policy({**default_policy().document(), "version": 2}), spacing=60)

    def test_lkg_corrupt_file_ignored_and_logged(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A half-written or invalid file is not used; the error is logged."""
        path = tmp_path / "lkg.json"
        path.write_text('{"active_mode": "NORMAL", "modes": {', encoding="utf-8")
        with caplog.at_level(logging.ERROR, logger="policystore.lkg"):
            assert LastKnownGood(path).read() is None
        assert str(path) in caplog.text

    async def test_lkg_written_at_each_new_version(self, tmp_path: Path) -> None:
        """Each version a sqlite store sees is saved beside the database, whole."""
        store = await PolicyStore.open(f"sqlite:///{tmp_path}/policy.db")
        lkg_file = tmp_path / "policy.db.lkg.json"

        def saved() -> tuple[int, float] | None:
            policy = LastKnownGood(lkg_file).read()
            return None if policy is None else (policy.version, policy.modes["NORMAL"].max_leverage)

        try:
            for version, leverage in ((2, 4.0), (3, 3.5)):
                await store.update({"modes.NORMAL.max_leverage": leverage}, reason="tune")
                await eventually(lambda v=version, lev=leverage: saved() == (v, lev))  # type: ignore[misc]
            names = await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()])
            assert [] == [n for n in names if n.endswith(".tmp")]
        finally:
            await store.close()

    async def test_close_saves_the_newest_version_first(self, tmp_path: Path) -> None:
        """A burst of versions is saved coalesced in the background; close waits for the newest."""
        store = await PolicyStore.open(f"sqlite:///{tmp_path}/policy.db")
        for positions in range(20, 26):
            await store.update({"modes.NORMAL.max_positions": positions}, reason="burst")
        await store.close()
        saved = LastKnownGood(tmp_path / "policy.db.lkg.json").read()
        assert saved is not None
        assert (7, 25) == (saved.version, saved.modes["NORMAL"].max_positions)


class TestUnreachableStore:
    """Answers while the store cannot be reached."""

    async def test_open_unreachable_answers_from_lkg_stale(self, tmp_path: Path) -> None:
        """A store opened during an outage answers from the saved copy, marked stale with its version."""
        backend = memory_backend()
        lkg = tmp_path / "lkg.json"
        first = PolicyStore(backend, lkg_path=lkg, environ={})
        await first.initialize()
        await first.update({"modes.NORMAL.max_leverage": 4.0}, reason="tune")
        await first.close()
        unreachable = SwitchableBackend(MemoryBackend(backend.url.split("://", 1)[1]), available=False)
        store = PolicyStore(unreachable, lkg_path=lkg, environ={})
        await store.initialize()
        try:
            explanation = store.explain("risk.max_leverage")
            assert (4.0, Source.LAST_KNOWN_GOOD, True, 2) == (
                explanation.value,
                explanation.source,
                explanation.stale,
                explanation.version,
            )
            assert store.stale
            assert await store.can_open_new_trades()
        finally:
            await store.close()

    async def test_outage_while_open_goes_stale_then_recovers(self, tmp_path: Path) -> None:
        """An open store keeps its values, marked stale, and goes live again when the store returns."""
        backend = memory_backend()
        store = PolicyStore(backend, lkg_path=tmp_path / "lkg.json", environ={})
        await store.initialize()
        try:
            await store.update({"modes.NORMAL.max_positions": 20}, reason="tune")
            backend.set_available(False)
            with pytest.raises(StoreUnavailableError):
                await store.refresh()
            assert (Source.LAST_KNOWN_GOOD, True, 2) == (
                store.explain("modes.NORMAL.max_positions").source,
                store.stale,
                store.get("version"),
            )
            assert 20 == store.get("modes.NORMAL.max_positions")
            backend.set_available(True)
            await eventually(lambda: not store.stale)
            assert Source.STORE == store.explain("version").source
        finally:
            await store.close()

    async def test_write_while_unreachable_refused_nothing_changed(self, tmp_path: Path) -> None:
        """A write during an outage raises StoreUnavailableError and changes nothing."""
        backend = memory_backend()
        store = PolicyStore(backend, lkg_path=tmp_path / "lkg.json", environ={})
        await store.initialize()
        try:
            backend.set_available(False)
            with pytest.raises(StoreUnavailableError) as caught:
                await store.update({"modes.NORMAL.max_positions": 20}, reason="tune")
            assert backend.url == caught.value.url
            assert 30 == store.get("modes.NORMAL.max_positions")
            backend.set_available(True)
            assert 1 == await backend.current_version()
        finally:
            await store.close()

    async def test_unopenable_sqlite_no_lkg_defaults_fail_closed(self, tmp_path: Path) -> None:
        """A database that cannot be opened and no saved copy: defaults, stale, and no new trades."""
        blocker = tmp_path / "file"
        blocker.write_text("not a folder", encoding="utf-8")
        store = await PolicyStore.open(f"sqlite:///{blocker}/policy.db", lkg_path=tmp_path / "none.json", environ={})
        try:
            explanation = store.explain("risk.max_leverage")
            assert (5.0, Source.DEFAULT, True, 0) == (
                explanation.value,
                explanation.source,
                explanation.stale,
                explanation.version,
            )
            assert isinstance(store.last_error, StoreUnavailableError)
            assert not await store.can_open_new_trades()
        finally:
            await store.close()


class TestEnvironment:
    """POLICYSTORE_* and legacy RM_* variables, used when there is no store and no saved copy."""

    async def open_unreachable(self, tmp_path: Path, environ: dict[str, str]) -> PolicyStore:
        """A store whose back end is down and which has no last-known-good copy."""
        backend = memory_backend()
        backend.set_available(False)
        store = PolicyStore(backend, lkg_path=tmp_path / "absent.json", environ=environ)
        await store.initialize()
        return store

    @pytest.mark.parametrize(
        ("environ", "path", "value", "variable"),
        [
            ({"POLICYSTORE_RISK__MAX_LEVERAGE": "4"}, "risk.max_leverage", 4.0, "POLICYSTORE_RISK__MAX_LEVERAGE"),
            ({"RM_MAX_LEVERAGE": "3.5"}, "risk.max_leverage", 3.5, "RM_MAX_LEVERAGE"),
            ({"RM_RISK_PER_TRADE_PCT": "0.01"}, "risk.max_risk_pct_per_trade", 0.01, "RM_RISK_PER_TRADE_PCT"),
            (
                {"RM_MAX_LEVERAGE": "3.5", "POLICYSTORE_RISK__MAX_LEVERAGE": "2"},
                "risk.max_leverage",
                2.0,
                "POLICYSTORE_RISK__MAX_LEVERAGE",
            ),
            ({"POLICYSTORE_AI__ENABLE_RL": "false"}, "ai.enable_rl", False, "POLICYSTORE_AI__ENABLE_RL"),
            (
                {"POLICYSTORE_MODES__DEFENSIVE__MAX_POSITIONS": "7"},
                "modes.DEFENSIVE.max_positions",
                7,
                "POLICYSTORE_MODES__DEFENSIVE__MAX_POSITIONS",
            ),
        ],
    )
    async def test_environment_variable_answers(
        self, tmp_path: Path, environ: dict[str, str], path: str, value: object, variable: str
    ) -> None:
        """A variable's value answers, explained as from the environment, stale, version 0."""
        store = await self.open_unreachable(tmp_path, environ)
        try:
            explanation = store.explain(path)
            assert (value, Source.ENVIRONMENT, True, 0) == (
                explanation.value,
                explanation.source,
                explanation.stale,
                explanation.version,
            )
            assert variable in explanation.detail
            assert value == store.get(path)
        finally:
            await store.close()

    @pytest.mark.parametrize(
        "raw", ["abc", "50", "-1", "nan", ""], ids=["not-a-number", "above-cap", "negative", "nan", "empty"]
    )
    async def test_malformed_variable_reported_not_used(
        self, tmp_path: Path, raw: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A malformed or out-of-range value is logged, named in explain, and the default answers."""
        with caplog.at_level(logging.ERROR, logger="policystore.env"):
            store = await self.open_unreachable(tmp_path, {"POLICYSTORE_RISK__MAX_LEVERAGE": raw})
        try:
            explanation = store.explain("risk.max_leverage")
            assert (5.0, Source.DEFAULT) == (explanation.value, explanation.source)
            assert "POLICYSTORE_RISK__MAX_LEVERAGE" in explanation.detail
            assert "POLICYSTORE_RISK__MAX_LEVERAGE" in caplog.text
        finally:
            await store.close()

    async def test_no_variables_defaults_answer(self, tmp_path: Path) -> None:
        """With nothing else, the built-in defaults answer, stale, version 0."""
        store = await self.open_unreachable(tmp_path, {})
        try:
            explanation = store.explain("risk.max_leverage")
            assert (5.0, Source.DEFAULT, True, 0) == (
                explanation.value,
                explanation.source,
                explanation.stale,
                explanation.version,
            )
        finally:
            await store.close()

    async def test_lkg_wins_over_environment(self, tmp_path: Path) -> None:
        """A saved copy outranks the environment."""
        lkg = tmp_path / "lkg.json"
        LastKnownGood(lkg).write(build_policy({**default_policy().document(), "version": 4}))
        backend = memory_backend()
        backend.set_available(False)
        store = PolicyStore(backend, lkg_path=lkg, environ={"POLICYSTORE_RISK__MAX_LEVERAGE": "2"})
        await store.initialize()
        try:
            explanation = store.explain("risk.max_leverage")
            assert (5.0, Source.LAST_KNOWN_GOOD, 4) == (explanation.value, explanation.source, explanation.version)
        finally:
            await store.close()

    async def test_live_store_wins_over_environment(self) -> None:
        """While the store answers, the environment is not used."""
        store = PolicyStore(memory_backend(), lkg_path=None, environ={"POLICYSTORE_RISK__MAX_LEVERAGE": "2"})
        await store.initialize()
        try:
            assert (5.0, Source.STORE) == (store.get("risk.max_leverage"), store.explain("risk.max_leverage").source)
        finally:
            await store.close()
