"""Who a store writes as when the caller names no one: the local user, as an admin."""

from __future__ import annotations

import getpass

from policystore.model.roles import Actor, Role

__all__ = ["default_actor", "local_author"]


def local_author() -> str:
    """Return ``local:<user>``, the author of a write made by the local user; ``local:unknown`` when unnamed.

    The user may have no name to the system (no passwd entry, as in some containers).
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        user = "unknown"
    return f"local:{user}"


def default_actor() -> Actor:
    """Return the local user as an admin: access to a store's URL is admin access."""
    return Actor(local_author(), Role.ADMIN)
