"""The server answers each error as its class says, and every error class sits in the tree errors.py draws.

Statuses, JSON bodies, metric labels and the OpenAPI descriptions of the
routes are read from the classes' own attributes; these tests raise each class
through the real application and compare.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import policystore
from policystore import PolicyStore
from policystore import errors as errors_module
from policystore.errors import (
    ApprovalRequiredError,
    AuthenticationError,
    ClientTypeError,
    ContentTypeError,
    FieldError,
    FleetIncompleteError,
    InternalError,
    MalformedRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PolicyStoreError,
    PolicyValidationError,
    ProposalRefusedError,
    StoreUnavailableError,
    StreamMessageError,
    UnknownPathError,
    UnknownProposalError,
    VersionConflictError,
    error_classes,
)
from policystore.server import create_app
from policystore.server.errors import HTTP_STATUS, error_body, refusal_reason, status_for

#: One instance of every error class, made as the code that raises it makes it.
SAMPLES: dict[type[PolicyStoreError], Callable[[], PolicyStoreError]] = {
    PolicyStoreError: lambda: PolicyStoreError("Something failed."),
    PolicyValidationError: lambda: PolicyValidationError([FieldError("risk.max_leverage", "must be positive")]),
    UnknownPathError: lambda: UnknownPathError("risk.nope", ["risk.max_leverage"]),
    VersionConflictError: lambda: VersionConflictError(1, 2),
    StoreUnavailableError: lambda: StoreUnavailableError("memory://facts", "down"),
    PermissionDeniedError: lambda: PermissionDeniedError("vera", "viewer", "operator", "switching the mode"),
    ApprovalRequiredError: lambda: ApprovalRequiredError("ada", "admin", "this change", 2, 1, ["risk.max_leverage"]),
    ProposalRefusedError: lambda: ProposalRefusedError("abc123", "stale", "a path it changes was changed"),
    UnknownProposalError: lambda: UnknownProposalError("abc123"),
    FleetIncompleteError: lambda: FleetIncompleteError(
        7, 2.0, [{"name": "executor-1", "host": "host-a", "pid": 4242, "version": 6}]
    ),
    ClientTypeError: lambda: ClientTypeError("client", "redis.asyncio.Redis", object()),
    AuthenticationError: lambda: AuthenticationError("no bearer token was sent"),
    MalformedRequestError: lambda: MalformedRequestError("it could not be parsed"),
    ContentTypeError: lambda: ContentTypeError("text/plain"),
    PayloadTooLargeError: lambda: PayloadTooLargeError(1024),
    StreamMessageError: lambda: StreamMessageError("a binary frame"),
    InternalError: lambda: InternalError("POST", "/v1/mode"),
}

#: The statuses each kind of route documented before the statuses were read from the classes.
DOCUMENTED = {
    ("get", "/v1/policy"): {401, 403, 422},
    ("get", "/v1/paths"): {401, 403, 422},
    ("get", "/v1/values/{path}"): {401, 403, 404, 422},
    ("get", "/v1/history"): {401, 403, 422, 503},
    ("get", "/v1/diff"): {401, 403, 422, 503},
    ("get", "/v1/fleet"): {401, 403, 422, 503},
    **{
        write: {400, 401, 403, 404, 409, 413, 422, 503}
        for write in [
            ("patch", "/v1/policy"),
            ("post", "/v1/mode"),
            ("post", "/v1/emergency"),
            ("post", "/v1/rollback"),
            ("post", "/v1/trading"),
            ("post", "/v1/proposals"),
            ("post", "/v1/proposals/{proposal_id}/approve"),
            ("post", "/v1/proposals/{proposal_id}/reject"),
        ]
    },
    ("get", "/v1/proposals"): {401, 403, 422, 503},
    ("get", "/v1/proposals/{proposal_id}"): {401, 403, 404, 422, 503},
}


def _package_error_classes() -> set[type[PolicyStoreError]]:
    """Every PolicyStoreError subclass any module of the package defines (modules of missing extras skipped)."""
    for module in pkgutil.walk_packages(policystore.__path__, "policystore."):
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith("policystore"):
                raise
    found: set[type[PolicyStoreError]] = set()
    pending = [PolicyStoreError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("policystore"):
            found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def _drawn_tree() -> list[tuple[str, str]]:
    """The (class, parent) pairs the errors module's docstring draws, depth read from the indentation."""
    lines = [
        line for line in (errors_module.__doc__ or "").splitlines() if re.match(r"\s+[│├└─ ]*[A-Z]\w+Error\b", line)
    ]
    root = lines[0].split()[0]
    parents = [root]
    pairs = []
    for line in lines[1:]:
        match = re.match(r"\s+((?:[│ ]   )*)[├└]── (\w+)", line)
        assert match is not None, line
        depth = len(match.group(1)) // 4 + 1
        del parents[depth:]
        pairs.append((match.group(2), parents[depth - 1]))
        parents.append(match.group(2))
    return [(root, ""), *pairs]


class TestTree:
    """Every error class is in the errors module, drawn in its docstring under its parent."""

    def test_every_error_class_of_the_package_is_defined_in_the_errors_module(self) -> None:
        """No module but policystore.errors defines a PolicyStoreError; error_classes() lists them all."""
        found = _package_error_classes()

        assert set() == {
            f"{cls.__module__}.{cls.__qualname__}" for cls in found if cls.__module__ != "policystore.errors"
        }
        assert found == set(error_classes())

    def test_the_docstring_draws_every_error_class_under_its_parent(self) -> None:
        """The tree in the errors module's docstring names each class once, under the class it derives from."""
        expected = [
            (cls.__name__, next((b.__name__ for b in cls.__bases__ if issubclass(b, PolicyStoreError)), ""))
            for cls in error_classes()
        ]

        assert sorted(expected) == sorted(_drawn_tree())

    def test_samples_cover_every_error_class(self) -> None:
        """The tests below raise one of each class the errors module defines, and no other."""
        assert set(error_classes()) == set(SAMPLES)


class TestFacts:
    """Every error class carries an HTTP status and a metric label, and the server reads them."""

    @pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
    def test_every_error_class_has_an_error_status_and_a_metric_label(self, cls: type[PolicyStoreError]) -> None:
        """A 4xx or 5xx status (202 for the one that reports a write made but not yet confirmed), one lowercase word."""
        if cls is FleetIncompleteError:
            assert 202 == cls.http_status
        else:
            assert 400 <= cls.http_status <= 599
        assert re.fullmatch(r"[a-z]+", cls.metric_label), cls.metric_label

    def test_status_table_is_read_from_the_classes(self) -> None:
        """HTTP_STATUS holds each class's own attribute, for every class."""
        assert {cls: cls.http_status for cls in error_classes()} == dict(HTTP_STATUS)

    @pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
    def test_status_label_and_body_of_an_error_are_its_class_facts(self, cls: type[PolicyStoreError]) -> None:
        """status_for and refusal_reason answer the class attributes; the body names the class and its sentence."""
        error = SAMPLES[cls]()

        body = error_body(error)

        assert (cls.http_status, cls.metric_label) == (status_for(error), refusal_reason(error))
        assert {"error": cls.__name__, "detail": str(error), **error.body_facts()} == body

    def test_contract_statuses_and_labels(self) -> None:
        """400/422 invalid input, 401 token, 403 role or approvals, 404 path or proposal, 409 conflict, 503 down."""
        assert {
            PolicyValidationError: (422, "validation"),
            UnknownPathError: (404, "validation"),
            MalformedRequestError: (400, "validation"),
            ContentTypeError: (400, "validation"),
            StreamMessageError: (400, "validation"),
            PayloadTooLargeError: (413, "validation"),
            AuthenticationError: (401, "authentication"),
            PermissionDeniedError: (403, "permission"),
            ApprovalRequiredError: (403, "permission"),
            FleetIncompleteError: (202, "fleet"),
            VersionConflictError: (409, "conflict"),
            ProposalRefusedError: (409, "conflict"),
            UnknownProposalError: (404, "validation"),
            StoreUnavailableError: (503, "unavailable"),
            InternalError: (500, "internal"),
            ClientTypeError: (500, "other"),
            PolicyStoreError: (500, "other"),
        } == {cls: (cls.http_status, cls.metric_label) for cls in error_classes()}


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    """The real application over a memory store, with one more route that raises the sample it is named."""
    store = await PolicyStore.open(f"memory://facts-{uuid.uuid4()}", lkg_path=None, watch=False)
    application = create_app(store)

    async def fail(name: str) -> None:
        raise next(make() for cls, make in SAMPLES.items() if cls.__name__ == name)

    application.add_api_route("/fail/{name}", fail)
    yield application
    await store.close()


class TestThroughTheApp:
    """An error raised while answering a request leaves the real application as its class says."""

    async def test_each_error_answers_its_class_status_body_and_metric_label(self, app: FastAPI) -> None:
        """Status and body per class; /metrics counts each under its class's label, conflicts apart."""
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://policystore.test") as http:
            answers = {cls: await http.get(f"/fail/{cls.__name__}") for cls in error_classes()}
            metrics = (await http.get("/metrics")).text

        got: dict[type[PolicyStoreError], tuple[int, Any]] = {
            cls: (answer.status_code, answer.json()) for cls, answer in answers.items()
        }
        assert {cls: (cls.http_status, error_body(SAMPLES[cls]())) for cls in error_classes()} == got
        for label, count in Counter(cls.metric_label for cls in error_classes()).items():
            assert f'policystore_http_refusals_total{{reason="{label}"}} {count}.0' in metrics
        conflicts = sum(cls.metric_label == VersionConflictError.metric_label for cls in error_classes())
        assert f"policystore_http_conflicts_total {conflicts}.0" in metrics


class TestOpenAPI:
    """The routes' error responses are described by the classes answered with each status."""

    async def test_error_responses_name_the_classes_answered_with_each_status(self, app: FastAPI) -> None:
        """Each description lists "title (ClassName)" of classes whose status it is; the statuses are as before."""
        by_name = {cls.__name__: cls for cls in error_classes()}
        documented: dict[tuple[str, str], set[int]] = {}
        for path, operations in app.openapi()["paths"].items():
            for method, operation in operations.items():
                if not path.startswith("/v1/") or "responses" not in operation:
                    continue
                statuses = {int(s) for s in operation["responses"] if int(s) >= 400}
                documented[method, path] = statuses
                for status in statuses:
                    description = operation["responses"][str(status)]["description"]
                    for part in description.rstrip(".").split("; "):
                        match = re.fullmatch(r"(.+) \((\w+)\)", part)
                        assert match is not None, description
                        cls = by_name[match.group(2)]
                        title = match.group(1)
                        assert (status, cls.title) == (cls.http_status, title[:1].lower() + title[1:]), description

        assert DOCUMENTED == documented
