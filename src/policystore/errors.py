"""The errors policystore raises, each carrying the facts every answer to it is derived from.

Every error derives from :class:`PolicyStoreError` and carries its facts as
attributes, so callers branch on data instead of parsing messages::

    PolicyStoreError
    ├── PolicyValidationError   (also ValueError) values that break the model's rules
    ├── UnknownPathError        (also KeyError)   a dot path that does not exist
    ├── VersionConflictError                      compare-and-set found another version
    ├── StoreUnavailableError                     the backing store cannot be reached
    ├── PermissionDeniedError                     the caller's role may not do this
    │   └── ApprovalRequiredError                 a risk-raising change that needs more admins: propose it
    ├── ProposalRefusedError                      a proposal that cannot be approved or rejected now
    │   └── UnknownProposalError                  no proposal has that id
    ├── FleetIncompleteError                      a write's wait ended before every live member applied it
    ├── ClientTypeError         (also TypeError)  a store given the wrong kind of client
    ├── AuthenticationError                       an HTTP request without a known token
    ├── MalformedRequestError                     a request body that is not JSON at all
    ├── ContentTypeError                          a request body not labelled as JSON
    ├── PayloadTooLargeError                      a request body over the server's limit
    ├── StreamMessageError                        a change stream opened without a token
    └── InternalError                             the server failed unexpectedly

Each class also states, as class attributes, how it is answered: its
command-line exit status (:attr:`PolicyStoreError.exit_code`), its HTTP status
(:attr:`~PolicyStoreError.http_status`), its label in the server's refusal
metric (:attr:`~PolicyStoreError.metric_label`) and a few words naming it
(:attr:`~PolicyStoreError.title`). A subclass inherits what it does not set, so
a refinement of an error is answered as that error is. The command line's exit
codes and help, the server's statuses, error bodies, metrics and OpenAPI
descriptions are all read from these attributes; nothing restates them.

Each message is one sentence naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "ApprovalRequiredError",
    "AuthenticationError",
    "ClientTypeError",
    "ContentTypeError",
    "FieldError",
    "FleetIncompleteError",
    "InternalError",
    "MalformedRequestError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PolicyStoreError",
    "PolicyValidationError",
    "ProposalRefusedError",
    "StoreUnavailableError",
    "StreamMessageError",
    "UnknownPathError",
    "UnknownProposalError",
    "VersionConflictError",
    "error_classes",
]


class PolicyStoreError(Exception):
    """Base class of every error policystore raises.

    Attributes:
        message: the sentence saying what was wrong (also ``str(error)``).
        exit_code: the command line's exit status for this error (a class attribute).
        http_status: the HTTP status the server answers it with (a class attribute).
        metric_label: the ``reason`` it is counted under in ``policystore_http_refusals_total``
            (a class attribute).
        title: a few words naming it, lowercase at the start to go mid-sentence, for the help's
            list of exit statuses and the API's response descriptions (a class attribute).
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    metric_label: ClassVar[str] = "other"
    title: ClassVar[str] = "other failure"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def body_facts(self) -> dict[str, Any]:
        """Return the facts an HTTP or stream error body carries beside ``error`` and ``detail``.

        Returns:
            JSON-ready keys and values; none for an error whose sentence says it all.
        """
        return {}


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

    exit_code = 3
    http_status = 422
    metric_label = "validation"
    title = "invalid value"

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

    def body_facts(self) -> dict[str, Any]:
        """Return every failed field, as ``errors``: a list of ``{"path", "message"}``."""
        return {"errors": [{"path": e.path, "message": e.message} for e in self.errors]}


class UnknownPathError(PolicyStoreError, KeyError):
    """Raised when a dot path names nothing in the policy.

    Attributes:
        path: the path that was asked for.
        suggestions: the nearest valid paths, closest first.
    """

    exit_code = 3
    http_status = 404
    metric_label = "validation"
    title = "unknown path"

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

    def body_facts(self) -> dict[str, Any]:
        """Return ``path`` and the nearest valid paths as ``suggestions``."""
        return {"path": self.path, "suggestions": list(self.suggestions)}


class VersionConflictError(PolicyStoreError):
    """Raised when a write expected one version and the store holds another.

    Attributes:
        expected_version: the version the caller based its change on.
        current_version: the version the store holds now.
    """

    exit_code = 4
    http_status = 409
    metric_label = "conflict"
    title = "version conflict"

    def __init__(self, expected_version: int, current_version: int) -> None:
        self.expected_version = expected_version
        self.current_version = current_version
        super().__init__(
            f"Version conflict: the change was based on version {expected_version} "
            f"but the store is at version {current_version}."
        )

    def body_facts(self) -> dict[str, Any]:
        """Return ``expected_version`` and ``current_version``."""
        return {"expected_version": self.expected_version, "current_version": self.current_version}


class StoreUnavailableError(PolicyStoreError):
    """Raised when the backing store cannot be reached in time; nothing is written.

    Attributes:
        url: the store that failed, with any password removed.
        reason: why it failed, in a few words.
    """

    exit_code = 5
    http_status = 503
    metric_label = "unavailable"
    title = "store unreachable"

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"The policy store at {url} cannot be reached: {reason}.")

    def body_facts(self) -> dict[str, Any]:
        """Return the store's redacted URL, as ``store``."""
        return {"store": self.url}


class PermissionDeniedError(PolicyStoreError):
    """Raised when the caller's role may not make a change; nothing is written.

    Attributes:
        actor: the name of the caller.
        role: the caller's role.
        required_role: the role the change needs.
        action: what was refused.
    """

    exit_code = 6
    http_status = 403
    metric_label = "permission"
    title = "permission denied"

    def __init__(self, actor: str, role: str, required_role: str, action: str) -> None:
        self.actor = actor
        self.role = role
        self.required_role = required_role
        self.action = action
        super().__init__(f"Permission denied: {actor!r} has role {role!r} but {action} needs role {required_role!r}.")

    def body_facts(self) -> dict[str, Any]:
        """Return ``actor``, ``role`` and ``required_role``."""
        return {"actor": self.actor, "role": self.role, "required_role": self.required_role}


class ApprovalRequiredError(PermissionDeniedError):
    """Raised when a change raises risk and more admins must agree to it than the write carries; nothing is written.

    While ``change_control.approvals_required`` is 2 or more, a change that
    raises risk is made only through a proposal (``propose``, then ``approve``
    by other admins); a change that only tightens still applies at once.

    Attributes:
        approvals_required: how many distinct admins must agree (the policy's
            ``change_control.approvals_required``, as in force before the change).
        approvals: how many had agreed to this write (1 for an admin's own write, 0 for an operator's).
        raises_risk: the paths whose change raises risk.
    """

    title = "approval required"

    def __init__(  # noqa: PLR0917 - the facts of PermissionDeniedError, then those of the approvals
        self,
        actor: str,
        role: str,
        action: str,
        approvals_required: int,
        approvals: int,
        raises_risk: Sequence[str] = (),
    ) -> None:
        self.actor = actor
        self.role = role
        self.required_role = "admin"
        self.action = action
        self.approvals_required = approvals_required
        self.approvals = approvals
        self.raises_risk = tuple(raises_risk)
        shown = ", ".join(self.raises_risk[:_SHOWN_PATHS])
        if len(self.raises_risk) > _SHOWN_PATHS:
            shown += f" and {len(self.raises_risk) - _SHOWN_PATHS} more"
        raised = f" ({shown})" if shown else ""
        PolicyStoreError.__init__(
            self,
            f"Approval required: {action} raises risk{raised}, which needs {approvals_required} admins to agree "
            f"(change_control.approvals_required) and this write carries {approvals}; propose it instead "
            "('policystore propose', POST /v1/proposals or store.propose) for other admins to approve.",
        )

    def body_facts(self) -> dict[str, Any]:
        """Return the facts of a permission refusal, ``approvals_required``, ``approvals`` and ``raises_risk``."""
        return {
            **super().body_facts(),
            "approvals_required": self.approvals_required,
            "approvals": self.approvals,
            "raises_risk": list(self.raises_risk),
        }


#: How many raised paths a refusal names before it says "and N more".
_SHOWN_PATHS = 3


class ProposalRefusedError(PolicyStoreError):
    """Raised when a proposal cannot be approved or rejected as asked; nothing is written.

    An admin approves a proposal once; only a pending proposal is approved or
    rejected (not one applied, rejected, expired, or stale: one whose paths
    changed after the version it was made on).

    Attributes:
        proposal_id: the proposal.
        status: its status now (``pending``, ``applied``, ``rejected``, ``expired``, ``stale``).
        reason: why the step was refused, in a few words.
    """

    exit_code = 4
    http_status = 409
    metric_label = "conflict"
    title = "proposal refused"

    def __init__(self, proposal_id: str, status: str, reason: str) -> None:
        self.proposal_id = proposal_id
        self.status = status
        self.reason = reason
        super().__init__(f"Proposal {proposal_id!r} is {status}: {reason}.")

    def body_facts(self) -> dict[str, Any]:
        """Return ``proposal_id`` and its ``status``."""
        return {"proposal_id": self.proposal_id, "status": self.status}


class UnknownProposalError(ProposalRefusedError):
    """Raised when no proposal has the id asked for.

    Attributes:
        proposal_id: the id asked for.
    """

    exit_code = 3
    http_status = 404
    metric_label = "validation"
    title = "unknown proposal"

    def __init__(self, proposal_id: str) -> None:
        self.proposal_id = proposal_id
        self.status = "unknown"
        self.reason = "no proposal has this id"
        PolicyStoreError.__init__(
            self, f"Unknown proposal {proposal_id!r}; run 'policystore proposals' to list the proposals."
        )


class FleetIncompleteError(PolicyStoreError):
    """Raised when a write waited for the fleet and a live member had not applied it when the wait ran out.

    The write itself was made: this reports that its confirmation is
    incomplete, which is why its HTTP status is 202 (accepted, not yet
    everywhere) and the answer still carries the write's result. Members not
    heard from for 5 seconds are lost and hold up no wait.

    Attributes:
        version: the version waited for.
        timeout: the seconds the wait was given.
        missing: the live members that had not applied it, as JSON-ready data
            (``name``, ``host``, ``pid``, ``version``, ``last_heard``...).
        unread: why the fleet's records could not be read at all, or None when they were.
    """

    exit_code = 7
    http_status = 202
    metric_label = "fleet"
    title = "fleet not confirmed"

    def __init__(
        self, version: int, timeout: float, missing: Sequence[dict[str, Any]], *, unread: str | None = None
    ) -> None:
        self.version = version
        self.timeout = timeout
        self.missing = [dict(member) for member in missing]
        self.unread = unread
        if unread is not None:
            outcome = f"the fleet's records could not be read ({unread.rstrip('.')})"
        else:
            named = "; ".join(_member_phrase(member) for member in self.missing) or "no member named"
            outcome = f"{named} {'has' if len(self.missing) == 1 else 'have'} not applied it"
        super().__init__(f"The fleet did not confirm version {version} within {timeout:g} s: {outcome}.")

    def body_facts(self) -> dict[str, Any]:
        """Return ``version``, ``timeout``, the ``missing`` members and why the fleet was ``unread`` (or None)."""
        return {"version": self.version, "timeout": self.timeout, "missing": self.missing, "unread": self.unread}


def _member_phrase(member: dict[str, Any]) -> str:
    """Name one fleet member with what it holds: ``executor-1 (pid 42 on host-a, at version 6)``."""
    return (
        f"{member.get('name', '?')} (pid {member.get('pid', '?')} on {member.get('host', '?')}, "
        f"at version {member.get('version', '?')})"
    )


class ClientTypeError(PolicyStoreError, TypeError):
    """Raised when a store is given an object of the wrong kind for a back end or client; nothing is opened.

    A programming error, so also a :class:`TypeError`, answered as any
    unexpected failure is: a synchronous ``redis.Redis`` where the store needs
    ``redis.asyncio.Redis``.

    Attributes:
        argument: the parameter that received the object.
        expected: what it needs, by name (``redis.asyncio.Redis``).
        given: the qualified name of the object's type.
    """

    title = "wrong kind of client"

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


class AuthenticationError(PolicyStoreError):
    """Raised when a request carries no token, or one the server does not know.

    Attributes:
        reason: why the token was refused, in a few words.
    """

    http_status = 401
    metric_label = "authentication"
    title = "no or bad token"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Authentication failed: {reason}; send 'Authorization: Bearer <token>'.")


class MalformedRequestError(PolicyStoreError):
    """Raised when a request body cannot be read as JSON at all: bad syntax, or bytes that are not UTF-8.

    Attributes:
        reason: what the parser found wrong.
    """

    http_status = 400
    metric_label = "validation"
    title = "body is not JSON"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"The request body is not valid JSON: {reason}.")


class ContentTypeError(PolicyStoreError):
    """Raised when a request body is not labelled ``Content-Type: application/json``.

    The contract answers invalid input with 400 or 422, so this is a 400
    rather than a 415; the sentence names the header to send.

    Attributes:
        content_type: the Content-Type the request came with, or None if it had none.
    """

    http_status = 400
    metric_label = "validation"
    title = "body not labelled application/json"

    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        got = f"it came as {content_type!r}" if content_type else "it came with no Content-Type"
        super().__init__(f"The request body must be a JSON object sent with 'Content-Type: application/json'; {got}.")

    def body_facts(self) -> dict[str, Any]:
        """Return the ``content_type`` the request came with (None if it had none)."""
        return {"content_type": self.content_type}


class PayloadTooLargeError(PolicyStoreError):
    """Raised when a request body is larger than the server accepts.

    Attributes:
        limit: the largest body accepted, in bytes.
    """

    http_status = 413
    metric_label = "validation"
    title = "body too large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")

    def body_facts(self) -> dict[str, Any]:
        """Return the ``limit``, in bytes."""
        return {"limit": self.limit}


class StreamMessageError(PolicyStoreError):
    """Raised when the change stream's first message is not ``{"token": "..."}``.

    The stream closes with code 1007 after it; its HTTP status is what the
    message would have earned as a request body.

    Attributes:
        received: what came instead, in a few words ("a binary frame", "not JSON"...).
    """

    http_status = 400
    metric_label = "validation"
    title = "first stream message is not a token"

    def __init__(self, received: str) -> None:
        self.received = received
        super().__init__(
            'The stream\'s first message must be the JSON text {"token": "<API token>"} '
            f"(or connect with the header 'Authorization: Bearer <API token>'); it was {received}."
        )


class InternalError(PolicyStoreError):
    """What an unexpected failure of the server answers as; the log has the traceback.

    Attributes:
        method: the request's method.
        path: the request's path.
        writes: whether the request could have changed the policy.
    """

    http_status = 500
    metric_label = "internal"
    title = "unexpected server failure"

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.writes = method.upper() not in {"GET", "HEAD", "OPTIONS"}
        outcome = (
            "; the change may or may not have been made, so read the policy back before repeating it"
            if self.writes
            else ""
        )
        super().__init__(f"The server failed unexpectedly while answering {method} {path} (see its log){outcome}.")


def error_classes() -> tuple[type[PolicyStoreError], ...]:
    """Return every error class of this module: the base first, then the tree depth-first, in definition order.

    The tables that need a list of errors (the help's exit statuses, the
    server's status by class) are built from this; subclasses defined outside
    this module are answered by what they inherit and are not listed.

    Returns:
        The classes.
    """
    found: list[type[PolicyStoreError]] = []
    pending: list[type[PolicyStoreError]] = [PolicyStoreError]
    while pending:
        cls = pending.pop(0)
        if cls.__module__ == __name__:
            found.append(cls)
        pending[:0] = cls.__subclasses__()
    return tuple(found)
