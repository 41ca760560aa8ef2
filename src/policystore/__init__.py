"""policystore: one versioned, validated, audited source of truth for a trading system's risk limits.

Open a store, read values by dot path from the local snapshot, write through the
store::

    store = await PolicyStore.open("sqlite:///policy.db")
    store.get("risk.max_leverage")
    await store.switch_mode("DEFENSIVE", updated_by="trader", reason="volatility")
"""

from policystore.errors import (
    ApprovalRequiredError,
    FieldError,
    FleetIncompleteError,
    PermissionDeniedError,
    PolicyStoreError,
    PolicyValidationError,
    ProposalRefusedError,
    StoreUnavailableError,
    UnknownPathError,
    UnknownProposalError,
    VersionConflictError,
)
from policystore.model.change_control import ChangeControl
from policystore.model.events import EventType, PolicyChanged
from policystore.model.fleet import FleetAck, FleetMember, FleetStatus
from policystore.model.history import FieldChange, HistoryEntry
from policystore.model.modes import PRESETS, RiskMode, RiskModeConfig
from policystore.model.policy import Emergency, HardLimits, Override, Policy, StrategyConfig, StrategySettings
from policystore.model.previews import DecisionImpact, Preview
from policystore.model.proposals import Proposal, ProposalStatus
from policystore.model.roles import Actor, Role
from policystore.model.trading import InstrumentLimits, TradingControls, TradingState
from policystore.store.sources import Explanation, Source
from policystore.store.store import MISSING, PolicyStore, StaleTradingRule
from policystore.store.sync import SyncPolicyStore

__all__ = [
    "MISSING",
    "PRESETS",
    "Actor",
    "ApprovalRequiredError",
    "ChangeControl",
    "DecisionImpact",
    "Emergency",
    "EventType",
    "Explanation",
    "FieldChange",
    "FieldError",
    "FleetAck",
    "FleetIncompleteError",
    "FleetMember",
    "FleetStatus",
    "HardLimits",
    "HistoryEntry",
    "InstrumentLimits",
    "Override",
    "PermissionDeniedError",
    "Policy",
    "PolicyChanged",
    "PolicyStore",
    "PolicyStoreError",
    "PolicyValidationError",
    "Preview",
    "Proposal",
    "ProposalRefusedError",
    "ProposalStatus",
    "RiskMode",
    "RiskModeConfig",
    "Role",
    "Source",
    "StaleTradingRule",
    "StoreUnavailableError",
    "StrategyConfig",
    "StrategySettings",
    "SyncPolicyStore",
    "TradingControls",
    "TradingState",
    "UnknownPathError",
    "UnknownProposalError",
    "VersionConflictError",
]
__version__ = "0.1.0"
