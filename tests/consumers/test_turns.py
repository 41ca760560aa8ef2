"""Turns: one holder at a time, in order of arrival, and a caller cancelled while waiting never holds the turn."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from policystore import PolicyStore
from policystore.consumers.brokers import Fill, Order, PaperBroker
from policystore.consumers.execution import EventDrivenExecutor, Reason, Signal
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent
from policystore.consumers.turns import Turns


async def holder(turns: Turns, name: str, log: list[str], release: asyncio.Event) -> None:
    """Take the turn (waiting if need be), note it, hold it until ``release`` is set."""
    if not turns.take():
        await turns.wait()
    try:
        log.append(name)
        await release.wait()
    finally:
        turns.give()


class TestTurns:
    """The mutual exclusion itself."""

    async def test_a_free_turn_is_taken_without_waiting_and_freed_when_given_back(self):
        """take() answers at once; a second take() is refused until give()."""
        turns = Turns()
        assert (True, True, False) == (turns.take(), turns.held, turns.take())
        turns.give()
        assert (False, True) == (turns.held, turns.take())

    async def test_waiters_get_the_turn_in_order_of_arrival(self):
        """Three callers arrive while the turn is held: they hold it one after another, first come first."""
        turns, log, release = Turns(), [], asyncio.Event()
        tasks = [asyncio.create_task(holder(turns, name, log, release)) for name in "abcd"]
        await asyncio.sleep(0)
        assert ["a"] == log  # the others wait
        release.set()
        await asyncio.gather(*tasks)
        assert list("abcd") == log
        assert not turns.held

    async def test_a_caller_arriving_as_the_turn_is_handed_on_waits_its_turn(self):
        """Given back while others wait, the turn goes to the first waiter: a newcomer cannot take it."""
        turns = Turns()
        turns.take()
        waiting = asyncio.create_task(turns.wait())
        await asyncio.sleep(0)
        turns.give()
        assert (True, False) == (turns.held, turns.take())
        await waiting
        turns.give()
        assert not turns.held

    async def test_a_caller_cancelled_while_waiting_never_holds_the_turn(self):
        """The cancelled waiter is passed over: the turn goes to the next, then is free."""
        turns, log, release = Turns(), [], asyncio.Event()
        first = asyncio.create_task(holder(turns, "first", log, release))
        cancelled = asyncio.create_task(holder(turns, "cancelled", log, release))
        last = asyncio.create_task(holder(turns, "last", log, release))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, last)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert ["first", "last"] == log
        assert not turns.held

    async def test_a_turn_handed_to_a_waiter_cancelled_meanwhile_passes_on(self):
        """Handed the turn and cancelled before it ran: it gives the turn to the next waiter, not to nobody."""
        turns = Turns()
        turns.take()
        handed = asyncio.create_task(turns.wait())
        after = asyncio.create_task(turns.wait())
        await asyncio.sleep(0)
        turns.give()  # to ``handed``, which has not run since
        handed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handed
        await asyncio.wait_for(after, 1)
        assert turns.held  # ``after`` holds it now
        turns.give()
        assert not turns.held


class SlowBroker(PaperBroker):
    """A paper broker whose submit waits for ``go`` before it fills."""

    def __init__(self) -> None:
        super().__init__(100_000, fee_bps=0, slippage_bps=0)
        self.go = asyncio.Event()

    async def submit(self, order: Order) -> Fill:
        await self.go.wait()
        return await super().submit(order)


class TestExecutorTakesTurns:
    """Through the executor: a signal cancelled while it waits is not decided, and the executor goes on."""

    async def test_signal_cancelled_while_waiting_is_not_decided_and_the_next_is(self):
        """One signal holds the turn in its submit; one waiting is cancelled; the one after that opens."""
        store = await PolicyStore.open(f"memory://turns-{uuid.uuid4().hex}", lkg_path=None, watch=False)
        try:
            broker = SlowBroker()
            sizer = RLPositionSizingAgent(policy_store=store, learner=MultiplierLearner(epsilon=0.0))
            executor = EventDrivenExecutor(policy_store=store, broker=broker, sizer=sizer)
            at = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

            def sig(symbol: str) -> Signal:
                return Signal(symbol, "buy", 0.9, 100.0, "moderate", at, stop_distance=5.0)

            first = asyncio.create_task(executor.handle(sig("BTC")))
            cancelled = asyncio.create_task(executor.handle(sig("ETH")))
            last = asyncio.create_task(executor.handle(sig("SOL")))
            await asyncio.sleep(0)
            cancelled.cancel()
            broker.go.set()
            decided = await asyncio.gather(first, last)
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            assert [Reason.ACCEPTED, Reason.ACCEPTED] == [d.reason for d in decided]
            assert ["BTC", "SOL"] == [p.symbol for p in broker.positions()]
        finally:
            await store.close()
