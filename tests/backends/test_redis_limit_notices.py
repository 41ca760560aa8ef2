"""Versions that change limits, followed from their notices over Redis: validated by section, read table rebuilt."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio

from policystore import PolicyStore
from policystore.model.paths import flatten
from support.redis_server import RedisServer
from support.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

#: Tightening and loosening limits of the active mode and of another, a switch, and a strategy between.
STEPS: list[dict[str, Any]] = [
    {"modes.NORMAL.max_leverage": 4.0},
    {"modes.NORMAL.max_leverage": 4.5},
    {"modes.DEFENSIVE.max_positions": 8},
    {"active_mode": "DEFENSIVE"},
    {"modes.DEFENSIVE.max_positions": 9, "modes.NORMAL.max_leverage": 3.5},
    {"strategies.moderate.cooldown_seconds": 90},
    {"modes.DEFENSIVE.global_min_confidence": 0.65},
]


class TestLimitChangesByNotice:
    """Each version is held from its notice: every path answers as the writer's, and no version is read back."""

    async def test_every_path_answers_the_new_limits_without_reading_back(
        self, redis_url: str, redis_server: RedisServer
    ) -> None:
        """After each change, every readable path of the follower equals the writer's; history is never read."""
        reader = await PolicyStore.open(redis_url, lkg_path=None, refresh_interval=3600)
        writer = await PolicyStore.open(redis_url, watch=False, lkg_path=None)
        admin = redis.asyncio.Redis(port=redis_server.port)
        try:
            before = await admin.info("commandstats")
            for step in STEPS:
                written = await writer.update(step, reason="limits")
                await eventually(lambda v=written.version: reader.get("version") == v)
                expected = flatten(written)
                assert expected == {path: reader.get(path) for path in expected}
                assert expected == flatten(reader.snapshot())
            after = await admin.info("commandstats")
            # A follower that re-read a version would have read its history entries (HMGET).
            hmget = int(after.get("cmdstat_hmget", {}).get("calls", 0)) - int(
                before.get("cmdstat_hmget", {}).get("calls", 0)
            )
            assert 0 == hmget
        finally:
            await admin.aclose()
            await writer.close()
            await reader.close()
