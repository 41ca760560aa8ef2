"""Every body the ``/v1`` routes take and answer with, under one name.

The bodies live in two modules: the strict request bodies and their bounds in
:mod:`policystore.server.request_bodies`, the answers in
:mod:`policystore.server.response_bodies`. This module re-exports both, so
``from policystore.server.models import PatchRequest`` keeps working.
"""

from __future__ import annotations

from policystore.server.request_bodies import (
    MAX_HTTP_WAIT,
    MAX_INTEGER,
    EmergencyRequest,
    ModeRequest,
    PatchRequest,
    ProposeRequest,
    RejectRequest,
    ReviewRequest,
    RollbackRequest,
    TradingRequest,
)
from policystore.server.response_bodies import (
    ChangeModel,
    DiffResponse,
    ErrorBody,
    FleetAckModel,
    FleetMemberModel,
    FleetResponse,
    HistoryEntryModel,
    HistoryResponse,
    PathsResponse,
    PolicyResponse,
    PreviewResponse,
    ProposalModel,
    ProposalsResponse,
    StateInForce,
    ValueResponse,
    WrittenResponse,
)

__all__ = [
    "MAX_HTTP_WAIT",
    "MAX_INTEGER",
    "ChangeModel",
    "DiffResponse",
    "EmergencyRequest",
    "ErrorBody",
    "FleetAckModel",
    "FleetMemberModel",
    "FleetResponse",
    "HistoryEntryModel",
    "HistoryResponse",
    "ModeRequest",
    "PatchRequest",
    "PathsResponse",
    "PolicyResponse",
    "PreviewResponse",
    "ProposalModel",
    "ProposalsResponse",
    "ProposeRequest",
    "RejectRequest",
    "ReviewRequest",
    "RollbackRequest",
    "StateInForce",
    "TradingRequest",
    "ValueResponse",
    "WrittenResponse",
]
