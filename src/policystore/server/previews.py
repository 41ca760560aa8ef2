"""Previews over HTTP: a write's dry run as the store makes it, with the server's decision log decided again.

Every write route takes ``"dry_run": true`` and answers what the store's own dry
run of that write says (:class:`~policystore.model.previews.Preview`: the
effective values that would change, which raise risk, the role and approvals
it needs, whether the caller may make it). The dashboard's confirm dialogs ask
for one before the reason is typed. A server given a decision log
(``policystore serve --decisions FILE``) also decides the log's newest signals
again under the change, by the executor's own code
(:func:`~policystore.consumers.what_if.preview_decisions`), on a thread of its
own so that the server keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request

from policystore.model.policy import STRATEGY_FIELDS, Policy
from policystore.model.previews import Preview
from policystore.model.trading_view import in_force
from policystore.server.health import ServerMetrics
from policystore.server.response_bodies import PreviewResponse

__all__ = ["effective_values", "preview_response"]

log = logging.getLogger("policystore.server")


def effective_values(policy: Policy) -> dict[str, Any]:
    """Return what readers see that the document does not hold: each strategy's effective config, the controls in force.

    Returns:
        ``{"strategies": {name: {field: value}}}``, as ``strategies.<name>.<field>``
        answers, with ``trading`` and ``instruments``: every trading state and
        limit in force with the path that set it (see
        :func:`~policystore.model.trading_view.in_force`).
    """
    strategies = {}
    for name in policy.strategies:
        effective = policy.strategy(name)
        strategies[name] = {field: getattr(effective, field) for field in STRATEGY_FIELDS}
    return {"strategies": strategies, **in_force(policy)}


async def preview_response(request: Request, preview: Preview, *, decisions: bool = True) -> PreviewResponse:
    """Return a write's preview as the route answers it, with the decision log's figures when asked and configured.

    Args:
        request: the request (its app holds the metrics and the decision log's path).
        preview: the store's dry run of the write.
        decisions: decide the log's signals again (the body's ``"decisions"``).

    Returns:
        The response body.
    """
    metrics: ServerMetrics = request.app.state.metrics
    metrics.count_read("preview")
    path = getattr(request.app.state, "decisions", None)
    if decisions and path is not None and preview.changed:
        from policystore.consumers.what_if import preview_decisions

        try:
            # Deciding thousands of signals twice takes a moment: not on the loop that answers everyone.
            preview = await asyncio.to_thread(asyncio.run, preview_decisions(preview, path))
        except (OSError, ValueError) as exc:
            log.warning("The decision log %s could not be decided again: %s", path, exc)
    return PreviewResponse.of(preview)
