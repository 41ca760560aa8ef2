"""Feature flags: a local read and a callback on change."""

from __future__ import annotations

import pytest

from policystore import UnknownPathError
from policystore.consumers.flags import FeatureFlag
from policystore.testing import memory_store


@pytest.fixture
async def store():
    s = await memory_store()
    yield s
    await s.close()


class TestFeatureFlag:
    """FeatureFlag follows the active mode's value."""

    async def test_on_change_mode_switch_turning_clm_off_calls_back_once(self, store):
        """DEFENSIVE turns continuous learning off: one callback with False, and enabled reads False."""
        clm = FeatureFlag(store, "ai.enable_clm")
        seen: list[bool] = []
        clm.on_change(seen.append)
        assert clm.enabled
        await store.switch_mode("DEFENSIVE", updated_by="ops", reason="calm down")
        await store.update({"modes.DEFENSIVE.max_positions": 9}, updated_by="ops", reason="unrelated")
        assert [False] == seen
        assert not clm.enabled

    async def test_on_change_unsubscribed_is_not_called(self, store):
        """After unsubscribing, changes no longer call back."""
        flag = FeatureFlag(store, "ai.enable_rl")
        seen: list[bool] = []
        stop = flag.on_change(seen.append)
        stop()
        await store.update({"modes.NORMAL.enable_rl": False}, updated_by="ops", reason="off")
        assert [] == seen
        assert not flag.enabled

    async def test_init_unknown_path_raises(self, store):
        """A misspelt flag fails at once, with suggestions."""
        with pytest.raises(UnknownPathError):
            FeatureFlag(store, "ai.enable_clmm")

    async def test_init_non_boolean_path_raises(self, store):
        """A limit is no flag."""
        with pytest.raises(TypeError, match=r"risk\.max_leverage"):
            FeatureFlag(store, "risk.max_leverage")
