"""The audit trail of a store: its history, any version it held, and what differs between two."""

from __future__ import annotations

from typing import Any

from policystore.errors import FieldError, PolicyValidationError
from policystore.model.changes import diff_policies
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.numbers import short_repr
from policystore.model.policy import Policy
from policystore.model.validation import build_policy
from policystore.store.writer import Writer, load_latest

__all__ = ["Audit", "check_number"]


def check_number(name: str, value: Any, *, optional: bool = False, least: int = 0) -> None:
    """Refuse a version (or count) argument that is no integer: True is 1 to Python, not to an auditor.

    Raises:
        PolicyValidationError: ``value`` is a boolean, not an int, or below ``least``.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a version number" if name != "limit" else "a whole number"
        raise PolicyValidationError([FieldError(name, f"must be {kind} (got {short_repr(value)})")])
    if value < least:
        raise PolicyValidationError([FieldError(name, f"must be at least {least} (got {value})")])


class Audit:
    """History and diff of :class:`~policystore.store.store.PolicyStore`, read through its write loop's back end.

    Args:
        writer: the store's write loop.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def history(self, limit: int = 50, before: int | None = None) -> list[HistoryEntry]:
        """Return up to ``limit`` history entries, newest first (older than ``before``)."""
        check_number("limit", limit, least=1)
        check_number("before", before, optional=True)
        return await self._writer.backend.history(limit, before)

    async def version_at(self, version: int) -> Policy:
        """Return the policy as it was at ``version``.

        Raises:
            PolicyValidationError: there is no such version, or ``version`` is no version number.
        """
        check_number("version", version)
        document = await self._writer.backend.load(version) if version >= 1 else None
        if document is None:
            current = await self._writer.backend.current_version()
            msg = f"there is no version {version}; versions run from 1 to {current}"
            raise PolicyValidationError([FieldError("version", msg)])
        return build_policy(document)

    async def diff(self, v1: int, v2: int | None = None) -> list[FieldChange]:
        """Return the stored fields that differ from version ``v1`` to ``v2`` (default: current).

        Raises:
            PolicyValidationError: no such version, or an argument is no version number.
        """
        check_number("v1", v1)
        check_number("v2", v2, optional=True)
        old = await self.version_at(v1)
        new = await self.version_at(v2) if v2 is not None else await load_latest(self._writer.backend)
        return list(diff_policies(old, new))
