"""API tokens: created once, kept only as a SHA-256 hash in the store's ``tokens`` records.

A token is ``ps_`` followed by 32 random bytes (URL-safe base64). The store
keeps, per token name, a record of the role, the creation time and the hash in
the ``tokens`` collection of its back end's records (``backend.records``, see
:class:`~policystore.backends.base.RecordStore`); the secret itself is shown
once, when it is created, and never again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from policystore.backends.base import Backend
from policystore.errors import FieldError, PolicyValidationError, StoreUnavailableError
from policystore.model.roles import Role

__all__ = ["TOKEN_TABLE", "TokenRecord", "TokenStore", "hash_token"]

#: The collection of the back end's records the token hashes live in.
TOKEN_TABLE: Final = "tokens"  # noqa: S105 - a collection name, not a secret
_PREFIX: Final = "ps_"
#: Token names become history authors. Writes made without a token are recorded as
#: ``local:<user>``, so ':' is kept out of token names: no token can pass for such an author.
#: Whitespace and control characters are out too (they would garble one-line history output).
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
#: Least seconds between two background reloads of the table, however short the cache's lifetime.
_LEAST_REFRESH: Final = 0.05
_NAME_RULE: Final = "letters, digits and _ . @ -, starting with a letter or digit, at most 64"


def hash_token(secret: str) -> str:
    """Return the hex SHA-256 of ``secret``: what the store keeps instead of the token."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One API token as stored: never the secret, only its hash.

    Attributes:
        name: who the token belongs to; the author of every change made with it.
        role: what the token may do.
        created_at: when it was created (UTC).
        digest: the SHA-256 of the secret, hex.
    """

    name: str
    role: Role
    created_at: datetime
    digest: str

    def to_record(self) -> dict[str, str]:
        """Return the record the store keeps under the token's name: role, creation time, hash."""
        return {"role": self.role.value, "created_at": self.created_at.isoformat(), "sha256": self.digest}

    @classmethod
    def from_record(cls, name: str, data: dict[str, Any]) -> TokenRecord:
        """Rebuild a token record from :meth:`to_record` output.

        Raises:
            ValueError, KeyError, TypeError: the data is not a token record.
        """
        return cls(name, Role(data["role"]), datetime.fromisoformat(data["created_at"]), str(data["sha256"]))

    def to_json(self) -> str:
        """Return :meth:`to_record` as JSON text."""
        return json.dumps(self.to_record())

    @classmethod
    def from_json(cls, name: str, text: str) -> TokenRecord:
        """Rebuild a record from :meth:`to_json` output.

        Raises:
            ValueError, KeyError, TypeError: the text is not a token record.
        """
        return cls.from_record(name, json.loads(text))

    def public(self) -> dict[str, str]:
        """Return what may be shown about the token: name, role, created_at."""
        return {"name": self.name, "role": self.role.value, "created_at": self.created_at.isoformat()}


class TokenStore:
    """Creates, lists, revokes and checks API tokens kept in a back end's ``tokens`` records.

    Lookups use a cached copy of the table. A server keeps it fresh in the
    background (:meth:`keep_fresh`, every ``ttl / 2`` seconds), so a lookup of a
    known token never waits on the store; without that, a lookup reloads a copy
    older than ``ttl``. An unknown token is refused only after a read of the
    table that began after the lookup did, so a token created by another process
    (``policystore token create``) is found at its first use. Those reads come at
    most every ``miss_interval`` seconds: a lookup waits for its turn, so a
    flood of bad tokens cannot flood the store (and each bad token waits for
    its refusal). Lookups that need a reload at the same time share one read of
    the table. If a reload fails, the cached copy keeps answering: reads stay
    possible while the store is away, and writes fail on their own.

    Args:
        backend: the back end whose records (``backend.records``) hold the tokens.
        ttl: seconds a loaded table is trusted; a revoked token works at most this long.
        miss_interval: least seconds between reloads caused by unknown tokens.
        clock: monotonic seconds (``time.monotonic``).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        ttl: float = 5.0,
        miss_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = backend.records
        self._ttl = ttl
        self._miss_interval = miss_interval
        self._clock = clock
        self._cache: list[TokenRecord] | None = None
        #: When the cached table was read, when that read began, and when a read of it last
        #: began (even one that failed).
        self._loaded_at = float("-inf")
        self._cache_began = float("-inf")
        self._tried_at = float("-inf")
        #: Counts this object's creations and revocations: a read begun before one may miss it.
        self._changes = 0
        #: The read of the table under way, which every lookup needing one awaits, and the
        #: value of ``_changes`` when it began.
        self._loading: asyncio.Task[None] | None = None
        self._loading_changes = -1
        #: True while :meth:`keep_fresh` runs, so lookups leave reloads for age to it.
        self._kept_fresh = False

    async def records(self) -> list[TokenRecord]:
        """Return every token record, sorted by name (read from the store now).

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        stored = await self._records.all(TOKEN_TABLE)
        found = []
        for name, data in stored.items():
            try:
                found.append(TokenRecord.from_record(name, data))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged record grants nothing
        return sorted(found, key=lambda r: r.name)

    async def create(self, name: str, role: Role | str, *, now: datetime | None = None) -> str:
        """Create a token for ``name`` with ``role`` and return its secret (shown once).

        Args:
            name: who the token is for: letters, digits and ``_ . @ -``, up to 64 (no ``:``,
                which marks authors that are not tokens, such as ``local:<user>``).
            role: ``viewer``, ``operator`` or ``admin``.
            now: the creation time (default: the current UTC time).

        Returns:
            The token to hand to its owner.

        Raises:
            PolicyValidationError: a bad name or role, or the name is taken.
            StoreUnavailableError: the store cannot be reached.
        """
        # fullmatch, not match with '$': '$' also accepts a trailing newline.
        if not _NAME.fullmatch(name):
            msg = f"{name!r} is not a valid token name ({_NAME_RULE}; ':' is reserved for authors such as local:<user>)"
            raise PolicyValidationError([FieldError("name", msg)])
        try:
            parsed = Role(role)
        except ValueError:
            msg = f"{role!r} is not a role; use one of {', '.join(r.value for r in Role)}"
            raise PolicyValidationError([FieldError("role", msg)]) from None
        secret = _PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(name, parsed, now or datetime.now(UTC), hash_token(secret))
        # Added only where no record is: of two creations of one name at once, one is refused.
        if not await self._records.add(TOKEN_TABLE, name, record.to_record()):
            msg = f"a token named {name!r} exists; revoke it first or pick another name"
            raise PolicyValidationError([FieldError("name", msg)])
        self._changed()  # the new token is found at its first lookup
        return secret

    async def revoke(self, name: str) -> None:
        """Delete the token named ``name``.

        Raises:
            PolicyValidationError: no token has that name.
            StoreUnavailableError: the store cannot be reached.
        """
        # A name no token may have names none (and is no key the records would take).
        if not _NAME.fullmatch(name) or not await self._records.delete(TOKEN_TABLE, name):
            raise PolicyValidationError([FieldError("name", f"no token is named {name!r}")])
        if self._cache is not None:  # revoked here: refused at once, even if a reload fails
            self._cache = [r for r in self._cache if r.name != name]
        self._changed()

    async def load(self) -> None:
        """Load the table now (a server does this at start, so lookups work through an outage).

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        await self._reload(force=True)

    async def authenticate(self, secret: str) -> TokenRecord | None:
        """Return the record of the token ``secret``, or None if no token matches.

        Raises:
            StoreUnavailableError: the table was never loaded and the store cannot be reached.
        """
        digest = hash_token(secret)
        asked_at = self._clock()
        if self._cache is None:
            await self._reload(force=True)
        elif not self._kept_fresh and self._due(self._loaded_at, self._ttl):
            await self._reload(force=False)
        found = _match(self._cache or [], digest)
        if found is None and self._cache_began < asked_at:
            # The table may predate the token (created a moment ago by another process).
            await self._reload_begun_after(asked_at)
            found = _match(self._cache or [], digest)
        return found

    async def keep_fresh(self) -> None:
        """Reload the table every ``ttl / 2`` seconds (at most 20 times a second) until cancelled.

        A server runs this as a task. Lookups then find a known token in
        memory, without waiting on the store: at ``ttl`` seconds, every lookup
        under way would otherwise wait for a reload. A failed reload keeps the
        cached table, as lookups do.
        """
        self._kept_fresh = True
        try:
            while True:
                await asyncio.sleep(max(self._ttl / 2, _LEAST_REFRESH))
                await self._reload(force=False)
        finally:
            self._kept_fresh = False

    def _due(self, since: float, interval: float) -> bool:
        return self._clock() - since > interval

    def _changed(self) -> None:
        """Note a creation or revocation made here: the next lookup that needs the table reads it again."""
        self._changes += 1
        self._loaded_at = self._tried_at = float("-inf")

    async def _reload(self, *, force: bool) -> None:
        """Read the table, joining a read under way that began after the last change made here.

        Raises:
            StoreUnavailableError: the read failed and ``force`` is set or there is no cached table.
        """
        while True:
            changes = self._changes
            task = self._loading
            if task is None or task.done() or self._loading_changes != changes:
                task = self._start_read(changes)
            try:
                # Shielded: a lookup whose request is cancelled leaves the read to the others.
                await asyncio.shield(task)
            except StoreUnavailableError:
                if force or self._cache is None:
                    raise
                return  # keep the cached table while the store is away
            if self._changes == changes:
                return
            # A token was created or revoked here during the read, which may predate it: read again.

    async def _reload_begun_after(self, asked_at: float) -> None:
        """Wait until the cached table comes from a read begun at ``asked_at`` or later, or such a read fails.

        Reads started here begin at least ``miss_interval`` seconds apart: a
        lookup whose turn has not come sleeps until it has. A read that fails
        ends the wait: the store is away, and the token is checked against the
        cached table.
        """
        while self._cache_began < asked_at:
            task = self._loading
            if task is not None and not task.done():
                with contextlib.suppress(StoreUnavailableError):
                    await asyncio.shield(task)
                if task.exception() is not None:
                    # The store is away: answer from the cached table rather than wait on
                    # one more read (a frozen store holds each read for its whole timeout).
                    return
                continue  # that read may predate the lookup, or a change here discarded it
            wait = self._tried_at + self._miss_interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._start_read(self._changes)

    def _start_read(self, changes: int) -> asyncio.Task[None]:
        """Start a read of the table; it is the one under way, begun at :attr:`_tried_at`."""
        # Taken before the task runs: the read itself begins later, so it sees all this time saw.
        self._tried_at = began = self._clock()
        task = asyncio.create_task(self._read(changes, began), name="policystore-tokens")
        task.add_done_callback(_retrieve)
        self._loading, self._loading_changes = task, changes
        return task

    async def _read(self, changes: int, began: float) -> None:
        table = await self.records()
        if changes == self._changes:  # else a revocation made meanwhile could be undone by this older read
            self._cache = table
            self._loaded_at = self._clock()
            self._cache_began = began


def _retrieve(task: asyncio.Task[None]) -> None:
    """Take a finished read's exception, so one that every waiter left behind is not reported as lost."""
    if not task.cancelled():
        task.exception()


def _match(records: list[TokenRecord], digest: str) -> TokenRecord | None:
    found = None
    # Compare against every record in constant time, so timing tells nothing.
    for record in records:
        if hmac.compare_digest(record.digest, digest):
            found = record
    return found
