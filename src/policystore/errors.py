"""The errors policystore raises.

Every error derives from :class:`PolicyStoreError` and carries its facts as
attributes, so callers branch on data instead of parsing messages::

    PolicyStoreError
    ├── UnknownPathError        (also KeyError)   a dot path that does not exist
    ├── PolicyValidationError   (also ValueError) values that break the model's rules
    ├── VersionConflictError                      compare-and-set found another version
    ├── StoreUnavailableError                     the backing store cannot be reached
    ├── PermissionDeniedError                     the caller's role may not do this
    └── ClientTypeError         (also TypeError)  a store given the wrong kind of client

Each message is one sentence naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ClientTypeError",
    "FieldError",
    "PermissionDeniedError",
    "PolicyStoreError",
    "PolicyValidationError",
    "StoreUnavailableError",
    "UnknownPathError",
    "VersionConflictError",
]


class PolicyStoreError(Exception):
    """Base class of every error policystore raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UnknownPathError(PolicyStoreError, KeyError):
    """Raised when a dot path names nothing in the policy.

    Attributes:
        path: the path that was asked for.
        suggestions: the nearest valid paths, closest first.
    """

    def __init__(self, path: str, suggestions: Sequence[str] = (), *, hint: str = "") -> None:
        self.path = path
        self.suggestions = tuple(suggestions)
        message = f"Unknown policy path {path!r}"
        if hint:
            message += f"; {hint}"
        elif self.suggestions:
            message += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        else:
            message += "; run 'policystore paths' to list the valid paths."
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failed field: where it is and why it was refused."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PolicyValidationError(PolicyStoreError, ValueError):
    """Raised when values break the policy's rules; nothing is written.

    Attributes:
        errors: every field that failed, with the reason.
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        if len(self.errors) == 1:
            message = f"Invalid policy value: {self.errors[0]}."
        else:
            listed = "; ".join(str(e) for e in self.errors)
            message = f"Invalid policy: {len(self.errors)} fields failed ({listed})."
        super().__init__(message)

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths of the failed fields, in the order they were found."""
        return tuple(e.path for e in self.errors)


class VersionConflictError(PolicyStoreError):
    """Raised when a write expected one version and the store holds another.

    Attributes:
        expected_version: the version the caller based its change on.
        current_version: the version the store holds now.
    """

    def __init__(self, expected_version: int, current_version: int) -> None:
        self.expected_version = expected_version
        self.current_version = current_version
        super().__init__(
            f"Version conflict: the change was based on version {expected_version} "
            f"but the store is at version {current_version}."
        )


class StoreUnavailableError(PolicyStoreError):
    """Raised when the backing store cannot be reached in time; nothing is written.

    Attributes:
        url: the store that failed, with any password removed.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"The policy store at {url} cannot be reached: {reason}.")


class PermissionDeniedError(PolicyStoreError):
    """Raised when the caller's role may not make a change; nothing is written.

    Attributes:
        actor: the name of the caller.
        role: the caller's role.
        required_role: the role the change needs.
        action: what was refused.
    """

    def __init__(self, actor: str, role: str, required_role: str, action: str) -> None:
        self.actor = actor
        self.role = role
        self.required_role = required_role
        self.action = action
        super().__init__(f"Permission denied: {actor!r} has role {role!r} but {action} needs role {required_role!r}.")


class ClientTypeError(PolicyStoreError, TypeError):
    """Raised when a store is given an object of the wrong kind for a back end or client; nothing is opened.

    A programming error, so also a :class:`TypeError`: a synchronous
    ``redis.Redis`` where the store needs ``redis.asyncio.Redis``.

    Attributes:
        argument: the parameter that received the object.
        expected: what it needs, by name (``redis.asyncio.Redis``).
        given: the qualified name of the object's type.
    """

    def __init__(self, argument: str, expected: str, value: object) -> None:
        self.argument = argument
        self.expected = expected
        kind = type(value)
        self.given = f"{kind.__module__}.{kind.__qualname__}"
        super().__init__(
            f"{argument} must be {expected}, not {self.given}: the store awaits every call, "
            f"so create the client with {expected}(...) or {expected.rpartition('.')[0]}.from_url(...)."
            if expected.startswith("redis.")
            else f"{argument} must be {expected}, not {self.given}."
        )
