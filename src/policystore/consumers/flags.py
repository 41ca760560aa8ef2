"""Feature flags read from the policy: ``FeatureFlag(store, "ai.enable_clm").enabled``.

A flag is one dot path of the policy that holds a boolean, usually an AI-module
flag of the active mode. Reading it is one lookup in the store's local
snapshot (no I/O), so it can sit on a hot path; ``on_change`` calls back when
its value changes, whether through a write to the flag itself or a mode switch::

    clm = FeatureFlag(store, "ai.enable_clm")
    if clm.enabled:
        retrain()
    clm.on_change(lambda on: log.info("continuous learning %s", "on" if on else "off"))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from policystore._callbacks import call_sync_or_async
from policystore.model.events import PolicyChanged
from policystore.store.store import PolicyStore

__all__ = ["FeatureFlag"]

FlagCallback = Callable[[bool], Awaitable[None] | None]


class FeatureFlag:
    """One boolean of the policy, read locally and watched for changes.

    Args:
        store: the policy store.
        path: a dot path holding a boolean, e.g. ``"ai.enable_rl"``.

    Raises:
        UnknownPathError: no such path (the message suggests the nearest).
        TypeError: the path does not hold a boolean.
    """

    __slots__ = ("_get", "_store", "path")

    def __init__(self, store: PolicyStore, path: str) -> None:
        value = store.get(path)
        if not isinstance(value, bool):
            raise TypeError(f"{path} holds {value!r}, not a boolean, so it is no feature flag")
        self._store = store
        self._get = store.get
        self.path = path

    @property
    def enabled(self) -> bool:
        """Whether the flag is on now (one lookup in the local snapshot)."""
        return bool(self._get(self.path))

    def __bool__(self) -> bool:
        return self.enabled

    def on_change(self, callback: FlagCallback) -> Callable[[], None]:
        """Call ``callback(new_value)`` (sync or async) each time the flag's value changes.

        Args:
            callback: receives the new value.

        Returns:
            A function that stops the callbacks.
        """
        last = [self.enabled]

        async def changed(_event: PolicyChanged) -> None:
            now = bool(self._get(self.path, False))  # noqa: FBT003 - a removed path reads as off
            if now != last[0]:
                last[0] = now
                await call_sync_or_async(callback, now)

        return self._store.subscribe(changed)

    def __repr__(self) -> str:
        return f"FeatureFlag({self.path!r}, enabled={self.enabled})"
