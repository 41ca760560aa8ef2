"""Writes: what changes nothing writes nothing, what loosens needs an admin, and what is malformed is refused."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from policystore import (
    Actor,
    PermissionDeniedError,
    PolicyChanged,
    PolicyStore,
    PolicyValidationError,
    Role,
    UnknownPathError,
)
from policystore.model.changes import stored_values
from support.waiting import eventually

VIEWER = Actor("vera", Role.VIEWER)
OPERATOR = Actor("otto", Role.OPERATOR)
ADMIN = Actor("ada", Role.ADMIN)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[PolicyStore]:
    """A freshly opened store of each back end."""
    opened = await PolicyStore.open(store_url)
    yield opened
    await opened.close()


async def state(store: PolicyStore) -> tuple[int, dict[str, object], int]:
    """What a write that changes nothing must leave alone: version, stored values, history length."""
    return store.get("version"), stored_values(store.snapshot()), len(await store.history(limit=1000))


class TestWritesThatChangeNothing:
    """A write whose result equals the current policy makes no version, no history entry and no event."""

    async def test_switch_to_the_active_mode_writes_nothing(self, store: PolicyStore) -> None:
        """``mode NORMAL`` while NORMAL is active returns the current policy, its version unchanged."""
        heard: list[PolicyChanged] = []
        store.subscribe(heard.append)
        before = await state(store)
        returned = await store.switch_mode("NORMAL", reason="again", updated_by="ann")
        assert (1, before) == (returned.version, await state(store))
        await store.update({"modes.NORMAL.max_positions": 20}, reason="a real change")
        await eventually(lambda: bool(heard))
        assert [2] == [event.version for event in heard]  # the no-op made no event before it

    async def test_emergency_off_while_off_writes_nothing_even_for_an_operator(self, store: PolicyStore) -> None:
        """An operator's no-op 'off' is neither refused as raising risk nor written."""
        before = await state(store)
        returned = await store.set_emergency_mode(False, reason="all clear", actor=OPERATOR)
        assert (1, before) == (returned.version, await state(store))

    async def test_emergency_on_again_with_the_same_reason_writes_nothing(self, store: PolicyStore) -> None:
        """Re-arming with the same reason changes nothing; a new reason is a change."""
        await store.set_emergency_mode(True, reason="halt", actor=OPERATOR)
        before = await state(store)
        assert 2 == (await store.set_emergency_mode(True, reason="halt", actor=Actor("olga", Role.OPERATOR))).version
        assert before == await state(store)
        assert 3 == (await store.set_emergency_mode(True, reason="still halted", actor=OPERATOR)).version

    async def test_update_to_the_current_values_writes_nothing(self, store: PolicyStore) -> None:
        """Setting values to what they are is no change."""
        before = await state(store)
        returned = await store.update({"modes.NORMAL.max_leverage": 5.0, "active_mode": "NORMAL"}, reason="same")
        assert (1, before) == (returned.version, await state(store))

    async def test_reimporting_the_current_export_writes_nothing(self, store: PolicyStore) -> None:
        """An import of the document just exported changes nothing."""
        await store.set_emergency_mode(True, reason="halt", updated_by="ops")
        before = await state(store)
        returned = await store.replace_policy(store.snapshot().document(), reason="restore", updated_by="ada")
        assert (2, before) == (returned.version, await state(store))

    async def test_rollback_to_equal_content_writes_nothing(self, store: PolicyStore) -> None:
        """Rolling back to a version whose content is the current content changes nothing."""
        await store.switch_mode("DEFENSIVE", reason="calm")
        await store.switch_mode("NORMAL", reason="back")
        before = await state(store)
        returned = await store.rollback(1, reason="undo")
        assert (3, before) == (returned.version, await state(store))

    async def test_viewer_no_op_write_still_refused(self, store: PolicyStore) -> None:
        """Authority is checked first: a viewer may not write, even nothing."""
        with pytest.raises(PermissionDeniedError):
            await store.switch_mode("NORMAL", reason="again", actor=VIEWER)


class TestStoredOverridesNeedAnAdmin:
    """Removing or loosening a stored tightening is loosening, whatever the active mode hides."""

    async def test_operator_removing_overrides_under_defensive_refused(self, store: PolicyStore) -> None:
        """The audit's write: DEFENSIVE plus removing moderate's 3.0 and 0.55 is refused to an operator."""
        before = await state(store)
        changes = {
            "active_mode": "DEFENSIVE",
            "strategies.moderate.max_leverage": None,
            "strategies.moderate.min_confidence": None,
        }
        with pytest.raises(PermissionDeniedError) as caught:
            await store.update(changes, reason="loosen quietly", actor=OPERATOR)
        assert "strategies.moderate" in str(caught.value)
        assert before == await state(store)
        assert 2 == (await store.update(changes, reason="deliberate", actor=ADMIN)).version

    async def test_operator_may_remove_a_custom_mode(self, store: PolicyStore) -> None:
        """Removing a mode that is not active takes room away: an operator may do it."""
        mode = dataclasses.asdict(store.snapshot().modes["DEFENSIVE"])
        await store.update({"modes.CALM": mode}, reason="add", actor=ADMIN)
        removed = await store.update({"modes.CALM": None}, reason="remove", actor=OPERATOR)
        assert "CALM" not in removed.modes

    async def test_looser_override_stored_and_explained_as_clamped(self, store: PolicyStore) -> None:
        """An override of 8.0 over NORMAL's 5.0 is kept (it binds under a looser mode) and explain says so."""
        await store.update({"strategies.aggressive.max_leverage": 8.0}, reason="for a looser mode", actor=ADMIN)
        explanation = store.explain("strategies.aggressive.max_leverage")
        assert 8.0 == store.snapshot().strategies["aggressive"].max_leverage
        assert (5.0, "modes.NORMAL.max_leverage") == (explanation.value, explanation.clamped_by)
        assert "stored override 8.0 is looser than mode NORMAL's max_leverage 5.0; the mode's value applies" in (
            explanation.detail
        )
        assert explanation.to_dict()["clamped_by"] == "modes.NORMAL.max_leverage"
        assert store.explain("strategies.moderate.max_leverage").clamped_by is None


class TestMalformedWritesRefused:
    """Bad input is a PolicyValidationError or UnknownPathError naming it, and changes nothing."""

    @pytest.mark.parametrize(
        "changes",
        [
            {"modes.NORMAL.max_leverage": 10**400},
            {"modes.NORMAL.max_positions": 10**400},
            {"hard_limits.max_positions": 10**400},
            {"strategies.moderate.max_positions": 2**53 + 1},
        ],
    )
    async def test_update_number_too_large_refused_naming_the_path(
        self, store: PolicyStore, changes: dict[str, Any]
    ) -> None:
        """A number a float cannot hold (PATCH answered 500 with it) is an invalid value on its path."""
        before = await state(store)
        with pytest.raises(PolicyValidationError) as caught:
            await store.update(changes, reason="huge")
        assert tuple(changes) == caught.value.paths
        assert before == await state(store)

    async def test_import_with_a_huge_number_refused(self, store: PolicyStore) -> None:
        """replace_policy refuses it the same way."""
        document = store.snapshot().document()
        document["hard_limits"]["max_positions"] = 10**400
        with pytest.raises(PolicyValidationError) as caught:
            await store.replace_policy(document, reason="import")
        assert ("hard_limits.max_positions",) == caught.value.paths

    @pytest.mark.parametrize("path", ["modes.TYPO_MODE", "strategies.no_such"])
    async def test_removing_what_does_not_exist_refused(self, store: PolicyStore, path: str) -> None:
        """Removing an unknown mode or strategy wrote a version; now it is an unknown path."""
        before = await state(store)
        with pytest.raises(UnknownPathError) as caught:
            await store.update({path: None}, reason="typo")
        assert path == caught.value.path
        assert before == await state(store)

    @pytest.mark.parametrize("text", ["halt\x00", "a\rb", "\x1b[2Kforged", "del\x7f", "c1\x85", "\ud800"])
    async def test_reason_and_author_with_control_characters_refused(self, store: PolicyStore, text: str) -> None:
        """NUL, escape sequences and other control characters would corrupt or rewrite the audit record."""
        before = await state(store)
        with pytest.raises(PolicyValidationError) as reason:
            await store.switch_mode("DEFENSIVE", reason=text, updated_by="ann")
        with pytest.raises(PolicyValidationError) as author:
            await store.switch_mode("DEFENSIVE", reason="calm", updated_by=text)
        with pytest.raises(PolicyValidationError) as kill_switch:
            await store.update({"emergency.active": True, "emergency.reason": text}, reason="halt")
        assert (("reason",), ("updated_by",), ("emergency.reason",)) == (
            reason.value.paths,
            author.value.paths,
            kill_switch.value.paths,
        )
        assert before == await state(store)

    async def test_reason_with_tab_and_newline_accepted(self, store: PolicyStore) -> None:
        """A reason may run over lines and hold tabs."""
        policy = await store.switch_mode("DEFENSIVE", reason="CPI print:\n\tcalmer limits", updated_by="ann")
        assert "CPI print:\n\tcalmer limits" == policy.reason

    @pytest.mark.parametrize("version", [True, False, 1.0, "1"])
    async def test_expected_version_not_an_integer_refused(self, store: PolicyStore, version: Any) -> None:
        """``expected_version: true`` was taken as version 1."""
        before = await state(store)
        with pytest.raises(PolicyValidationError) as caught:
            await store.update({"modes.NORMAL.max_positions": 20}, reason="r", expected_version=version)
        assert ("expected_version",) == caught.value.paths
        assert before == await state(store)

    async def test_version_arguments_refuse_booleans(self, store: PolicyStore) -> None:
        """rollback, version_at, diff and history refuse True where a version belongs, naming the argument."""
        await store.switch_mode("DEFENSIVE", reason="calm")
        yes: Any = True
        calls = {
            "version": [lambda: store.rollback(yes, reason="r"), lambda: store.version_at(yes)],
            "v1": [lambda: store.diff(yes)],
            "v2": [lambda: store.diff(1, yes)],
            "before": [lambda: store.history(before=yes)],
            "limit": [lambda: store.history(limit=yes)],
        }
        for name, makers in calls.items():
            for make in makers:
                with pytest.raises(PolicyValidationError) as caught:
                    await make()
                assert (name,) == caught.value.paths
        assert 2 == store.get("version")


class TestDrawdownBreakerFigures:
    """Any real number, and Decimal, is compared; anything that is not a usable number trips the breaker."""

    @pytest.mark.parametrize("loss", [Fraction(6, 100), Decimal("0.06"), 6 / 100])
    async def test_numeric_loss_at_the_limit_trips(self, store: PolicyStore, loss: Any) -> None:
        """Fraction(6, 100) raised TypeError while formatting; every real number now trips with its figure."""
        assert not await store.report_daily_loss(loss, reporter="risk-engine")
        assert (True, "risk-engine") == (store.get("emergency.active"), store.get("emergency.activated_by"))
        assert "6.00%" in store.get("emergency.reason")

    @pytest.mark.parametrize("loss", [Fraction(1, 100), Decimal("0.01")])
    async def test_numeric_loss_below_the_limit_leaves_trading_open(self, store: PolicyStore, loss: Any) -> None:
        """A small loss of any numeric type is compared, not refused."""
        assert await store.report_daily_loss(loss, reporter="risk-engine")
        assert 1 == store.get("version")

    @pytest.mark.parametrize("loss", [10**400, None, "0.01", Decimal("sNaN"), True])
    async def test_unusable_loss_trips_the_breaker(self, store: PolicyStore, loss: Any) -> None:
        """10**400 raised OverflowError before tripping; an unusable figure fails closed."""
        assert not await store.report_daily_loss(loss, reporter="risk-engine")
        assert store.get("emergency.active") is True
        assert "not a number" in store.get("emergency.reason")
        assert len(store.get("emergency.reason")) < 300
