"""The public surface: ``policystore.__all__`` is pinned, sorted, and every name exists."""

from __future__ import annotations

import policystore

EXPECTED = [
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


class TestExportedMembers:
    """What ``import policystore`` offers."""

    def test_all_pinned(self) -> None:
        """__all__ is exactly the pinned list; a change to the public surface must update this test."""
        assert EXPECTED == policystore.__all__

    def test_all_sorted(self) -> None:
        """__all__ is kept sorted the isort way (ruff RUF022): constants, then classes, then the rest."""

        def key(name: str) -> tuple[int, str]:
            return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

        assert sorted(policystore.__all__, key=key) == policystore.__all__

    def test_all_names_exist(self) -> None:
        """Every exported name is importable from the package."""
        assert [] == [name for name in policystore.__all__ if not hasattr(policystore, name)]

    def test_errors_derive_from_base(self) -> None:
        """Every error class derives from PolicyStoreError, with the contract's extra bases."""
        errors = [getattr(policystore, n) for n in policystore.__all__ if n.endswith("Error") and n != "FieldError"]
        assert all(issubclass(e, policystore.PolicyStoreError) for e in errors)
        assert issubclass(policystore.UnknownPathError, KeyError)
        assert issubclass(policystore.PolicyValidationError, ValueError)
