"""What a change would have done to recorded decisions: a decision log's signals decided again, before and after.

A preview of a write (see :class:`~policystore.model.previews.Preview`) knows
the policy the write is made on and the one it would make. Given a decision
log (JSON Lines, as :class:`~policystore.consumers.decision_log.JsonlDecisionLog`
writes it), :func:`decide_again` takes the signals it recorded and decides
each twice, by the executor itself (:class:`~policystore.consumers.execution.EventDrivenExecutor`
over a paper broker, through :func:`~policystore.consumers.replay.replay_mode`),
once under each policy, and counts the decisions whose reason differs, by
old -> new reason.

Both runs are made the same way, from the same signals, so every difference
comes from the change. The account state the live executor saw (its equity,
its open positions, the prices between signals) is not in the log: both runs
start from the same paper account, marked at each signal's own price. How
many decisions under the policy before the change match the recorded reason is
reported too (``reproduced``), as a measure of how near the runs come to what
happened.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from policystore.consumers.decision_log import read_decisions
from policystore.consumers.execution import ExecutionDecision, Signal
from policystore.consumers.replay import PriceTick, replay_mode
from policystore.model.policy import Policy
from policystore.model.previews import DecisionImpact, Preview

__all__ = ["DEFAULT_LIMIT", "decide_again", "preview_decisions", "signals_from_records"]

#: The newest decisions of a log taken by default: enough for a desk's day, quick to decide twice.
DEFAULT_LIMIT: Final = 2_000
#: How many changed decisions a preview shows.
_EXAMPLES: Final = 5
#: The paper account both runs start with (the log does not hold the live one): as 'policystore replay' starts.
_EQUITY: Final = 1_000.0
#: Where each optional field of a signal is recorded; the sizing's stop distance stands in for the signal's
#: in logs written before the signal's own was recorded.
_OPTIONAL: Final = {
    "stop_distance": ("signal_stop_distance", "stop_distance"),
    "volatility": ("volatility",),
    "reference_price": ("reference_price",),
}


def signals_from_records(records: Sequence[Mapping[str, Any]]) -> tuple[list[Signal], list[str], int]:
    """Return the signals a decision log's records hold, their recorded reasons, and how many held none.

    Args:
        records: decision records (see :meth:`ExecutionDecision.to_dict`).

    Returns:
        The signals in the log's order, the reason recorded for each, and the
        count of records skipped: not a decision, a damaged one, or one with
        neither a stop distance nor a volatility (the sizer needs one; logs
        written before the signal's own were recorded hold them only for the
        decisions that were sized).
    """
    signals: list[Signal] = []
    reasons: list[str] = []
    skipped = 0
    for record in records:
        try:
            optional = {
                name: float(found)
                for name, keys in _OPTIONAL.items()
                if (found := next((record[k] for k in keys if record.get(k) is not None), None)) is not None
            }
            if "stop_distance" not in optional and "volatility" not in optional:
                raise KeyError("stop_distance")  # noqa: TRY301 - counted with the other unusable records
            signal = Signal(
                symbol=str(record["symbol"]),
                side=record["side"],
                confidence=float(record["confidence"]),
                price=float(record["price"]),
                strategy=str(record["strategy"]),
                time=datetime.fromisoformat(str(record["time"])),
                **optional,
            )
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        signals.append(signal)
        reasons.append(str(record.get("reason", "")))
    return signals, reasons, skipped


async def decide_again(
    records: Sequence[Mapping[str, Any]],
    before: Policy,
    after: Policy,
    *,
    log: str = "",
    equity: float = _EQUITY,
) -> DecisionImpact:
    """Decide a log's signals under ``before`` and under ``after``, and count the decisions that differ.

    Args:
        records: the decision log's records, oldest first.
        before: the policy the change is made on.
        after: the policy it would make.
        log: where the records came from, for the answer.
        equity: the paper account both runs start with.

    Returns:
        The figures: signals decided, changed (by old -> new reason), resized, reproduced, a few examples.
    """
    signals, recorded, skipped = signals_from_records(records)
    # The only prices the log holds are the signals' own: the broker is marked at each before it is decided.
    prices = [PriceTick(s.time, s.symbol, s.price) for s in signals]
    options: dict[str, Any] = {"equity": equity, "as_held": True}
    old = await replay_mode(before.active_mode, signals, prices, policy=before, **options)
    new = await replay_mode(after.active_mode, signals, prices, policy=after, **options)
    pairs = list(zip(old.decisions, new.decisions, strict=True))
    changed = [(a, b) for a, b in pairs if a.reason is not b.reason]
    by_reason = Counter(f"{a.reason.value} -> {b.reason.value}" for a, b in changed)
    reproduced = sum(1 for a, b in zip(_in_log_order(old.decisions, signals), recorded, strict=True) if a == b)
    return DecisionImpact(
        log=log,
        signals=len(signals),
        skipped=skipped,
        changed=len(changed),
        by_reason=dict(by_reason.most_common()),
        resized=sum(1 for a, b in pairs if a.accepted and b.accepted and _quantity(a) != _quantity(b)),
        reproduced=reproduced,
        examples=tuple(_example(a, b) for a, b in changed[:_EXAMPLES]),
    )


def _in_log_order(decisions: list[ExecutionDecision], signals: list[Signal]) -> list[str]:
    """The reasons of ``decisions`` in the order of ``signals`` (a replay decides in time order)."""
    by_signal: dict[int, list[str]] = {}
    for decision in decisions:
        by_signal.setdefault(id(decision.signal), []).append(decision.reason.value)
    return [by_signal[id(s)].pop(0) if by_signal.get(id(s)) else "" for s in signals]


def _quantity(decision: ExecutionDecision) -> float | None:
    return None if decision.sizing is None else decision.sizing.quantity


def _example(old: ExecutionDecision, new: ExecutionDecision) -> dict[str, Any]:
    signal = old.signal
    return {
        "time": signal.time.isoformat(),
        "symbol": signal.symbol,
        "strategy": signal.strategy,
        "side": signal.side,
        "old": old.reason.value,
        "new": new.reason.value,
        "old_detail": old.detail,
        "new_detail": new.detail,
    }


async def preview_decisions(
    preview: Preview, log: str | os.PathLike[str], *, limit: int = DEFAULT_LIMIT, equity: float = _EQUITY
) -> Preview:
    """Return ``preview`` with what its change would have done to the newest ``limit`` decisions of ``log``.

    Args:
        preview: a write's preview (from ``dry_run=True``).
        log: the decision log (JSON Lines).
        limit: how many of its newest records to decide again.
        equity: the paper account both runs start with.

    Returns:
        The preview with ``decisions`` filled in.

    Raises:
        OSError: the log cannot be read.
        ValueError: a line of the log other than the last is not a JSON object.
    """
    if preview.base is None or preview.result is None:
        msg = "the preview holds no policies to decide under"
        raise ValueError(msg)
    records = await asyncio.to_thread(read_decisions, log, limit)
    impact = await decide_again(records, preview.base, preview.result, log=str(Path(log)), equity=equity)
    return preview.with_decisions(impact)
