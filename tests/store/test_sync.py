"""SyncPolicyStore: the same API without an event loop."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from policystore import PolicyChanged, PolicyStore, SyncPolicyStore, VersionConflictError

# The facade's own extra: the async store it wraps.
FACADE_ONLY = {"store"}


def public_names(cls: type) -> set[str]:
    """The public attributes a class defines (methods and properties)."""
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.fixture
def sync_store(tmp_path: Path) -> Iterator[SyncPolicyStore]:
    """A sync store on a fresh SQLite file."""
    store = SyncPolicyStore.open(f"sqlite:///{tmp_path}/policy.db")
    yield store
    store.close()


class TestSyncFacadeShape:
    """The facade mirrors PolicyStore."""

    def test_sync_store_same_public_names(self) -> None:
        """Every public name of PolicyStore exists on SyncPolicyStore, and no other but ``store``."""
        assert public_names(PolicyStore) == public_names(SyncPolicyStore) - FACADE_ONLY

    @pytest.mark.parametrize("name", sorted(public_names(PolicyStore)))
    def test_sync_store_same_signature(self, name: str) -> None:
        """Each method takes the same parameters (names, kinds, defaults, types); only async differs."""
        async_attr = inspect.getattr_static(PolicyStore, name)
        sync_attr = inspect.getattr_static(SyncPolicyStore, name)
        assert type(async_attr) is type(sync_attr)
        if isinstance(async_attr, property):
            return
        async_sig = inspect.signature(getattr(PolicyStore, name))
        sync_sig = inspect.signature(getattr(SyncPolicyStore, name))
        assert list(async_sig.parameters.values()) == list(sync_sig.parameters.values())


class TestSyncFacadeBehaviour:
    """The facade works from plain, loop-less code."""

    def test_sync_store_write_and_read_without_loop(self, sync_store: SyncPolicyStore) -> None:
        """Writes, reads, history and diff all work without await."""
        sync_store.switch_mode("DEFENSIVE", updated_by="trader", reason="calm")
        sync_store.update({"modes.NORMAL.max_positions": 20}, reason="fewer")
        assert (3, 3.0) == (sync_store.get("version"), sync_store.get("risk.max_leverage"))
        assert 3.0 == sync_store.get_value("risk.max_leverage")
        assert "DEFENSIVE" == sync_store.get_policy().active_mode
        assert [3, 2, 1] == [e.version for e in sync_store.history()]
        assert ["active_mode", "modes.NORMAL.max_positions"] == [c.path for c in sync_store.diff(1)]
        assert sync_store.can_open_new_trades()

    def test_sync_store_errors_raised_as_is(self, sync_store: SyncPolicyStore) -> None:
        """Errors of the async store reach the sync caller unchanged."""
        with pytest.raises(VersionConflictError) as caught:
            sync_store.update({"modes.NORMAL.max_positions": 20}, reason="x", expected_version=7)
        assert 1 == caught.value.current_version

    def test_sync_store_subscribe_hears_changes(self, sync_store: SyncPolicyStore) -> None:
        """A subscriber receives the events of the facade's writes."""
        heard = threading.Event()
        seen: list[PolicyChanged] = []

        def record(event: PolicyChanged) -> None:
            seen.append(event)
            heard.set()

        sync_store.subscribe(record)
        sync_store.set_emergency_mode(True, reason="halt", updated_by="ops")
        assert heard.wait(10)
        assert 2 == seen[0].version
        assert not sync_store.can_open_new_trades()

    def test_sync_store_close_twice_harmless(self, tmp_path: Path) -> None:
        """Closing an already closed facade does nothing."""
        store = SyncPolicyStore.open(f"sqlite:///{tmp_path}/p.db")
        store.close()
        store.close()

    def test_sync_watch_hears_changes_made_before_first_next(self, sync_store: SyncPolicyStore) -> None:
        """watch() listens from the call, not from the first next()."""
        events = sync_store.watch()
        sync_store.update({"modes.NORMAL.max_positions": 20}, reason="fewer")
        assert 2 == next(events).version

    def test_sync_watch_ends_on_close(self, tmp_path: Path) -> None:
        """A thread iterating watch() finishes when the facade closes."""
        store = SyncPolicyStore.open(f"sqlite:///{tmp_path}/p.db")
        seen: list[int] = []
        events = store.watch()
        follower = threading.Thread(target=lambda: seen.extend(e.version for e in events))
        follower.start()
        store.update({"modes.NORMAL.max_positions": 20}, reason="fewer")
        store.close()
        follower.join(timeout=10)
        assert not follower.is_alive()
        assert [2] == seen

    def test_blocking_call_from_subscriber_refused_not_hung(self, sync_store: SyncPolicyStore) -> None:
        """A subscriber runs on the store's thread: a blocking call there raises instead of hanging."""
        failures: list[BaseException] = []
        done = threading.Event()

        def react(_event: PolicyChanged) -> None:
            try:
                sync_store.get_policy()
            except RuntimeError as exc:
                failures.append(exc)
            done.set()

        sync_store.subscribe(react)
        sync_store.update({"modes.NORMAL.max_positions": 20}, reason="fewer")
        assert done.wait(10)
        assert "subscriber" in str(failures[0])
