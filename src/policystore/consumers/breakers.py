"""The loss breakers: the day's loss against ``risk.max_daily_drawdown`` and ``trading.max_daily_loss``.

Reaching either refuses the signal and turns the kill switch on through the
store (author ``executor``, an operator's write: stopping trading only lowers
risk), so every process stops opening trades, not only the executor that
measured the loss. A kill switch already on is not written again.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from policystore.consumers.pretrade import figure
from policystore.errors import PolicyStoreError
from policystore.model.controls import Bound
from policystore.model.numbers import finite_float, short_repr
from policystore.model.roles import Actor, Role
from policystore.store.store import PolicyStore

__all__ = ["LossBreakers"]

log = logging.getLogger("policystore.consumers")

#: Who the breakers write as.
_BREAKER: Final = Actor("executor", Role.OPERATOR)


class LossBreakers:
    """Trip the kill switch when the day's loss reaches a limit, and say why in one sentence.

    Args:
        store: the store the kill switch is written to.
    """

    def __init__(self, store: PolicyStore) -> None:
        self._store = store

    async def drawdown(self, limit: float, reported_loss: Any, reported_equity: Any) -> str:
        """The drawdown breaker: ``max_daily_drawdown`` reached, or a loss or equity that cannot be measured.

        Returns:
            The refusal's detail, with the figures; it says so when the kill switch could not be written.
        """
        loss, equity = finite_float(reported_loss), finite_float(reported_equity)
        try:
            if loss is not None and equity is not None and equity > 0.0:
                detail = f"the day's loss of {loss:.2%} reached max_daily_drawdown {limit:.2%}"
                await self._store.report_daily_loss(loss, reporter="executor")
            else:
                figures = [f"the day's loss is {short_repr(reported_loss)}"] if loss is None else []
                figures += [f"the equity is {short_repr(reported_equity)}"] if equity is None or equity <= 0.0 else []
                detail = (
                    f"{' and '.join(figures)}: not usable, the loss cannot be measured, so it counts as "
                    f"reaching max_daily_drawdown {limit:.2%}"
                )
                # The kill switch is turned on here rather than through report_daily_loss so that
                # its reason names the unusable figure (equity is not a loss the store can judge).
                await self._kill_switch(f"drawdown breaker: {detail}")
        except PolicyStoreError as exc:
            # Still refused: the loss is measured again on every signal, so trading stays halted.
            log.error("The drawdown breaker could not turn the kill switch on: %s", exc)  # noqa: TRY400 - the cause is in the message
            detail += f"; turning the kill switch on failed: {exc}"
        return detail

    async def loss_limit(self, limit: Bound, amount: float) -> str:
        """The day's loss in money reached ``limit`` (``trading.max_daily_loss`` or its hard cap).

        Returns:
            The refusal's detail, as for :meth:`drawdown`.
        """
        detail = f"the day's loss of {figure(amount)} reached {limit.path} {figure(limit.value)}"
        try:
            await self._kill_switch(f"daily loss limit: {detail}")
        except PolicyStoreError as exc:
            log.error("The daily loss limit could not turn the kill switch on: %s", exc)  # noqa: TRY400 - the cause is in the message
            detail += f"; turning the kill switch on failed: {exc}"
        return detail

    async def _kill_switch(self, reason: str) -> None:
        """Turn the kill switch on as ``executor``, unless it is on.

        Raises:
            PolicyStoreError: the store refused or could not be reached.
        """
        if not self._store.snapshot().emergency.active:
            await self._store.set_emergency_mode(True, reason=reason, updated_by="executor", actor=_BREAKER)
