"""``GET /v1/values/{path}``: one value, the busiest route, made to cost as little as the answer allows.

Clients poll it, so its cost per request is the server's:

* It is served from the application's own routes, ahead of the routers
  included after it: this FastAPI matches a request against an included
  router's routes twice, once to pick the router and once inside it.
* FastAPI calls it with the request and its path parameter as matched
  (:class:`_DirectRoute`). It checks its token itself, takes no body, query or
  dependency and answers a ready Response, so what FastAPI does per request for
  a path operation (solving and validating its parameters, reading a body,
  applying the response model) would find nothing to do, at about the cost of
  the route itself.
* Its answer is made once per path and read state: :meth:`PolicyStore.explain`
  returns the same explanation until the state changes (a new version, the
  store going stale or coming back, an expiring change ending), so the JSON
  made from it is kept and sent again, not validated and serialised anew.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import FastAPI, Path, Request, Response
from fastapi.routing import APIRoute

from policystore.errors import AuthenticationError, PermissionDeniedError, PolicyValidationError, UnknownPathError
from policystore.model.roles import Role
from policystore.model.trading_view import path_facts
from policystore.server.auth import bearer, require
from policystore.server.errors import error_responses
from policystore.server.health import ServerMetrics
from policystore.server.response_bodies import ValueResponse
from policystore.store.sources import Explanation
from policystore.store.store import PolicyStore

__all__ = ["ROUTE", "ValueAnswers", "add_value_route"]

#: The route's path: {path:path}, since a symbol may hold a slash (instruments.BTC/USD.state), sent as it
#: is or as %2F.
ROUTE: Final = "/v1/values/{path:path}"
#: Errors a read of one value may answer with: its path may name nothing.
_VALUE_ERRORS: Final = error_responses(
    AuthenticationError, PermissionDeniedError, PolicyValidationError, UnknownPathError
)
_VIEWER: Final = require(Role.VIEWER)


class ValueAnswers:
    """The JSON answers of ``GET /v1/values``, each made once per path and read state of ``store``.

    Args:
        store: the store whose values are answered.
    """

    def __init__(self, store: PolicyStore) -> None:
        self._store = store
        #: path -> the explanation an answer was made from, and the answer.
        self._made: dict[str, tuple[Explanation, bytes]] = {}

    def body(self, path: str) -> bytes:
        """Return the JSON answer for ``path`` (a :class:`~policystore.server.response_bodies.ValueResponse`).

        Raises:
            UnknownPathError: no such path.
        """
        explained = self._store.explain(path)
        made = self._made.get(path)
        # The same explanation object: the read state it came from is still the store's.
        if made is not None and made[0] is explained:
            return made[1]
        answer = ValueResponse(**explained.to_dict(), **path_facts(self._store.snapshot(), path))
        body = answer.model_dump_json(by_alias=True).encode()
        self._made[path] = (explained, body)
        return body


class _DirectRoute(APIRoute):
    """A path operation FastAPI calls with the request and its path parameters, as they were matched.

    For an endpoint that needs nothing else: no dependencies, body, query or
    header parameters, and a :class:`Response` as its answer, which FastAPI
    would send unchanged. Its signature still documents the operation in the
    OpenAPI schema, and errors it raises reach the app's exception handlers as
    any route's do.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Return the handler: the endpoint, called with the request and the path's parameters (strings)."""
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            answer: Response = await endpoint(request, **request.path_params)
            return answer

        return handler


async def get_value(
    request: Request,
    path: Annotated[
        str, Path(description="A dot path such as risk.max_leverage or instruments.BTC/USD.state; see /v1/paths.")
    ],
) -> Response:
    """Return the value at ``path`` with its source, version and staleness; for a trading path, what set it."""
    await _VIEWER(request)
    state = request.app.state
    metrics: ServerMetrics = state.metrics
    metrics.count_read("value")
    answers: ValueAnswers = state.value_answers
    return Response(answers.body(path), media_type="application/json")


def add_value_route(app: FastAPI, store: PolicyStore) -> None:
    """Serve ``GET /v1/values/{path}`` from ``app``'s own routes; call it before any router is included.

    Args:
        app: the application.
        store: the store whose values it answers.
    """
    app.state.value_answers = ValueAnswers(store)
    app.router.add_api_route(
        ROUTE,
        get_value,
        methods=["GET"],
        tags=["policy"],
        summary="One value by dot path",
        responses=_VALUE_ERRORS,
        response_model=ValueResponse,
        openapi_extra={"security": [{bearer.scheme_name: []}]},
        route_class_override=_DirectRoute,
    )
