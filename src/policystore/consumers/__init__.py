"""Consumers of the policy: position sizing, an event-driven executor, brokers, flags, replay.

Everything here reads the policy from the store's local snapshot, one snapshot
per decision, and never keeps a second copy of a limit::

    from policystore.consumers import EventDrivenExecutor, PaperBroker, RLPositionSizingAgent, Signal

    sizer = RLPositionSizingAgent(policy_store=store)
    executor = EventDrivenExecutor(policy_store=store, broker=PaperBroker(10_000), sizer=sizer)
    decision = await executor.handle(signal)
"""

from policystore.consumers.brokers import Broker, ClosedTrade, Fill, Order, PaperBroker, Position
from policystore.consumers.decision_log import JsonlDecisionLog, MemoryDecisionLog, read_decisions
from policystore.consumers.execution import EventDrivenExecutor, ExecutionDecision, Reason, Signal
from policystore.consumers.flags import FeatureFlag
from policystore.consumers.learning import MultiplierLearner
from policystore.consumers.sizing import RLPositionSizingAgent, SizingDecision

__all__ = [
    "Broker",
    "ClosedTrade",
    "EventDrivenExecutor",
    "ExecutionDecision",
    "FeatureFlag",
    "Fill",
    "JsonlDecisionLog",
    "MemoryDecisionLog",
    "MultiplierLearner",
    "Order",
    "PaperBroker",
    "Position",
    "RLPositionSizingAgent",
    "Reason",
    "Signal",
    "SizingDecision",
    "read_decisions",
]
