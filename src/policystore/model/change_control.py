"""Change control: how many distinct admins must agree to a change that raises risk.

``change_control.approvals_required`` is 1 by default: an admin's own write
that raises risk applies, as it always has. With 2 or more, such a change is
made only through a proposal that enough admins approve (see
:mod:`policystore.model.proposals`); a change that only tightens still
applies at once, for an operator as for an admin.

The section itself has a direction: more approvals required is stricter (an
operator may raise the number), fewer is looser, so lowering it raises risk and
needs the approvals in force before the change (see
:func:`~policystore.model.risk_direction.risk_increases`). A document written before
this section existed reads as 1.

The number is bounded by :data:`MAX_APPROVALS`: a number no desk has the admins
for would make every loosening, lowering the number included, impossible.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field
from pydantic.dataclasses import dataclass

from policystore.model.modes import FROZEN_CONFIG, Count

__all__ = ["APPROVALS_PATH", "CHANGE_CONTROL_FIELDS", "MAX_APPROVALS", "ChangeControl"]

#: The most approvals a change may be made to need.
MAX_APPROVALS: Final = 10
#: The one path of the section.
APPROVALS_PATH: Final = "change_control.approvals_required"


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class ChangeControl:
    """The rules changes are made under.

    Attributes:
        approvals_required: how many distinct admins must agree to a change that
            raises risk (1 to :data:`MAX_APPROVALS`); with 2 or more, such a
            change goes through a proposal.
    """

    approvals_required: Count = Field(
        default=1,
        ge=1,
        le=MAX_APPROVALS,
        description="How many distinct admins must agree to a change that raises risk.",
    )


#: Every field of ``change_control``.
CHANGE_CONTROL_FIELDS: Final[tuple[str, ...]] = tuple(ChangeControl.__dataclass_fields__)
