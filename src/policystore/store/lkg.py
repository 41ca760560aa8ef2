"""The last-known-good copy: the newest policy this machine saw, kept on local disk.

Written atomically (a temporary file in the same folder, renamed over the old
one) so a reader never sees half a file. A copy with the kill switch on, and
any copy the caller asks to be durable, is flushed to disk before and after the
rename, so it survives a power cut (see :meth:`LastKnownGood.write`).

Every process on the machine that follows the store shares the file, and each
keeps the newest version it saw. Saves hold an exclusive lock on the copy's
folder from the check of the saved version to the rename (no file of its own
to leave behind): a slow save of an older version can then never land over a
newer one, such as the kill switch another process just saved.

:class:`CopySaver` saves the versions a process installs, off the path that
installs them, spaced and coalesced; a write that stops trading is saved and
flushed before it returns (:meth:`CopySaver.save_now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: saves are not serialised between processes
    fcntl = None  # type: ignore[assignment]

from policystore._files import fsync_path, replace_file
from policystore.errors import PolicyStoreError
from policystore.model.policy import Policy
from policystore.model.validation import build_policy

__all__ = ["LKG_SAVE_INTERVAL", "CopySaver", "LastKnownGood"]

log = logging.getLogger("policystore.lkg")

#: Seconds between two saves of the last-known-good copy, among all the processes
#: on the machine that share it. A burst of versions costs one file write per
#: interval, not one each, on a disk that is often the one a local Redis flushes
#: every commit to. The newest version is always saved, at most about twice this
#: late; at once, and flushed to disk, when the kill switch turns on and when the
#: store went back; flushed to disk whenever the kill switch is on, and on close.
#: A write of this process that stops trading returns only once its copy is on
#: disk (see :meth:`CopySaver.save_now`).
LKG_SAVE_INTERVAL = 1.0


class LastKnownGood:
    """One last-known-good file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock on the copy's folder, shared with every process of the machine, for one save."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def read(self) -> Policy | None:
        """Return the saved policy, or None when there is none or it is unusable.

        An unreadable or invalid file is logged and ignored: the chain then
        falls through to the environment and the defaults.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("Last-known-good copy %s cannot be read: %s", self.path, exc)  # noqa: TRY400 - an expected condition the message fully states; a traceback would be noise
            return None
        try:
            return build_policy(json.loads(text))
        except (ValueError, TypeError, PolicyStoreError) as exc:
            log.error("Last-known-good copy %s is not a valid policy and was ignored: %s", self.path, exc)  # noqa: TRY400
            return None

    def _saved_version(self) -> int:
        """The version in the file now, or -1 when there is none; a peek, not a full validation."""
        try:
            version = json.loads(self.path.read_text(encoding="utf-8")).get("version", -1)
        except (OSError, ValueError, AttributeError):
            return -1
        return version if isinstance(version, int) else -1

    def write(self, policy: Policy, *, force: bool = False, durable: bool = True, spacing: float = 0.0) -> bool:
        """Replace the file with ``policy`` atomically; the same or a newer saved version is kept.

        Several processes on one machine share the file, so a process that
        heard of a version later than another does not overwrite it; ``force``
        does, for a store that went back to an older version.

        ``durable`` flushes the content, then the replacement, to disk before
        returning, so the copy survives a power cut; a copy with the kill switch
        on is always durable. A routine save skips both flushes: those would share the disk
        with the store's own (a local Redis flushes every commit) at every save
        of every process. The replacement is still atomic, so a reader never
        sees half a file; after a power cut the copy may be an older one, or
        unreadable, and an unreadable copy is ignored (with only environment
        and defaults answering, no new trade is opened by default).

        ``spacing`` (seconds) defers a routine save while the file is younger than
        that: every process on the machine saves the same versions, and one save
        per interval among them all is enough.

        Returns:
            False when the save was deferred by ``spacing`` (save again later); True
            when the file now holds this version or a newer one.

        Raises:
            OSError: the copy could not be written (nothing was replaced).
        """
        with self._locked():
            return self._replace(policy, force=force, durable=durable or policy.emergency.active, spacing=spacing)

    def _replace(self, policy: Policy, *, force: bool, durable: bool, spacing: float) -> bool:
        """The body of :meth:`write`, run under the lock."""
        if not force and self._saved_version() >= policy.version:  # another process here saved it already
            if durable:
                self.sync()  # that save may not have reached the disk
            return True
        if spacing > 0 and not force and 0 <= self._age() < spacing:  # (a negative age: the clock went back)
            return False
        # Compact JSON: the C encoder (an indented dump runs in Python, holding the
        # interpreter lock the process's event loop needs).
        replace_file(self.path, json.dumps(policy.document(), sort_keys=True), durable=durable)
        return True

    def discard_older_than(self, version: int) -> None:
        """Remove the copy if it holds a version older than ``version`` (or cannot be read).

        For when a version that stops trading could not be saved: with no copy,
        a process that starts during an outage answers from the environment and
        the defaults, and by default opens no trade, instead of trading on an
        older copy that allows it.

        Raises:
            OSError: the copy could not be removed.
        """
        with self._locked():
            if self._saved_version() < version:
                self.path.unlink(missing_ok=True)
                fsync_path(self.path.parent)

    def _age(self) -> float:
        """Seconds since the file was last replaced; infinite when there is none."""
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return math.inf

    def sync(self) -> None:
        """Flush the file as it is now, and its folder, to disk (after routine saves, on close)."""
        fsync_path(self.path)
        fsync_path(self.path.parent)


class CopySaver:
    """Saves the versions one process installs as its last-known-good copy.

    One background task writes the newest pending version, then rests
    :data:`LKG_SAVE_INTERVAL`; versions that arrive meanwhile are coalesced
    into its next write.

    Args:
        copy: the file to save to.
    """

    def __init__(self, copy: LastKnownGood) -> None:
        self.copy = copy
        #: The newest version waiting to be saved.
        self._pending: Policy | None = None
        self._force = False
        self._urgent = False
        #: A save was made without flushing it to disk (see LastKnownGood.write).
        self._unsynced = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def save(self, policy: Policy, *, force: bool = False, urgent: bool = False) -> None:
        """Save ``policy`` soon; ``force`` writes even over a newer saved version (the store went back).

        ``urgent`` (and ``force``) cuts the rest short and flushes the save to disk.
        """
        if self._closing:
            return
        self._pending = policy
        self._force = force or self._force
        self._urgent = urgent or force or self._urgent
        if urgent or force:
            self._hurry.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="policystore-lkg")

    async def _run(self) -> None:
        copy = self.copy
        while (policy := self._pending) is not None:
            force, self._pending, self._force = self._force, None, False
            # A save that stops trading (or follows a store that went back) must survive a
            # power cut; so must the last one, on close (LastKnownGood.write adds any copy
            # with the kill switch on).
            durable = self._urgent or self._closing or policy.emergency.active
            self._urgent = False
            try:
                # A routine save is spaced across the machine's processes (see LastKnownGood.write).
                spacing = 0.0 if durable or force else LKG_SAVE_INTERVAL
                if await asyncio.to_thread(copy.write, policy, force=force, durable=durable, spacing=spacing):
                    self._unsynced = not durable
                elif self._pending is None:
                    self._pending = policy  # deferred: save it next time unless a newer one came
            except OSError as exc:
                log.error("Could not save the last-known-good copy to %s: %s", copy.path, exc)  # noqa: TRY400 - the message states the whole condition
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), LKG_SAVE_INTERVAL)
                if not self._closing:
                    self._hurry.clear()

    async def save_now(self, policy: Policy) -> None:
        """Save ``policy`` and flush it to disk before returning (a write of this process that holds trading back).

        Acknowledged, such a write must survive this process being killed the
        moment it returns, and the store being unreadable after. If the copy
        cannot be saved, an older one is removed rather than left to allow
        trading (see :meth:`LastKnownGood.discard_older_than`); both failures are
        logged, and the write itself stands.
        """
        copy = self.copy
        try:
            await asyncio.to_thread(copy.write, policy, durable=True)
        except OSError as exc:
            log.error("Could not save version %d, which holds trading back, to %s: %s", policy.version, copy.path, exc)  # noqa: TRY400 - the message states the whole condition
            try:
                await asyncio.to_thread(copy.discard_older_than, policy.version)
            except OSError as gone:
                log.error("Could not remove the older last-known-good copy %s either: %s", copy.path, gone)  # noqa: TRY400 - the message states the whole condition

    async def close(self) -> None:
        """Save the newest version now, wait until it is on disk, and save nothing after."""
        self._closing = True
        self._hurry.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._unsynced:
            self._unsynced = False
            try:
                await asyncio.to_thread(self.copy.sync)
            except OSError as exc:
                log.error("Could not flush the last-known-good copy %s to disk: %s", self.copy.path, exc)  # noqa: TRY400 - the message states the whole condition
