"""Property tests through the store: random patches are all-or-nothing, every path resolves."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policystore import PolicyValidationError, UnknownPathError
from policystore.model.changes import stored_values, writable_paths
from policystore.model.modes import AI_FLAGS
from policystore.model.policy import default_policy
from policystore.testing import memory_store

WRITABLE = [p for p in writable_paths(default_policy()) if not p.startswith("emergency.")]


def value_for(path: str) -> st.SearchStrategy[Any]:
    """Values for ``path``, some in range and some out."""
    leaf = path.rsplit(".", 1)[-1]
    if path == "active_mode":
        return st.sampled_from(["NORMAL", "DEFENSIVE", "AGGRESSIVE_SMALL_ACCOUNT", "TURBO"])
    if leaf in AI_FLAGS:
        return st.booleans()
    if leaf == "max_positions":
        return st.integers(-3, 120)
    return st.one_of(st.floats(-1.0, 12.0, allow_nan=False), st.floats(0.0, 1.2, allow_nan=False))


@st.composite
def patch_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few random patches, each a random subset of writable paths."""
    batch = []
    for _ in range(draw(st.integers(1, 4))):
        paths = draw(st.lists(st.sampled_from(WRITABLE), min_size=1, max_size=4, unique=True))
        batch.append({p: draw(value_for(p)) for p in paths})
    return batch


async def apply_batch(batch: list[dict[str, Any]]) -> None:
    """Apply each patch through a fresh store and check the all-or-nothing rule after each."""
    store = await memory_store()
    try:
        for patch in batch:
            version, snap = store.get("version"), store.snapshot()
            before = stored_values(snap)
            history_length = len(await store.history(limit=100))
            try:
                await store.update(patch, reason="property")
            except (PolicyValidationError, UnknownPathError):
                assert (version, before, history_length) == (
                    store.get("version"),
                    stored_values(store.snapshot()),
                    len(await store.history(limit=100)),
                )
                assert snap is store.snapshot()
            else:
                after = stored_values(store.snapshot())
                # A patch that changes nothing writes nothing; any other makes one version.
                made = 0 if after == before else 1
                assert (version + made, history_length + made) == (
                    store.get("version"),
                    len(await store.history(limit=100)),
                )
                assert {p: after[p] for p in patch} == patch
                assert set(patch) >= {p for p in after if after[p] != before[p]}
            assert before == stored_values(snap)
            for path in store.paths():
                assert store.get(path) == store.explain(path).value
    finally:
        await store.close()


class TestStoreProperties:
    """Rules that hold for every input."""

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=patch_batches())
    def test_update_random_patches_all_or_nothing(self, batch: list[dict[str, Any]]) -> None:
        """Each random patch applies fully or is refused leaving version, snapshot and history unchanged."""
        asyncio.run(apply_batch(batch))
