"""A waiter's request that the members of a fleet report now: the message and how it is read.

Members report the versions they apply at most every
:data:`~policystore.store.fleet_reports.REPORT_GAP` seconds (see
:mod:`policystore.store.fleet_reports`). A process that waits on the fleet
asks for reports of a version on the store's change channel, with the message
``{"fleet": N}``; each member that holds version N or a newer one and has not
reported it yet reports at once, and one that does not hold it yet reports as
soon as it does. Anyone who may publish on the channel can send the message:
all it makes a member do is report a version it holds, once. A listener of an
older release reads the message as a reason to check the store.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["report_request", "requested_version"]

#: The whole message, one JSON object: the version asked for, a positive integer.
_REQUEST: Final = re.compile(rb'\{"fleet": ([1-9][0-9]{0,18})\}')


def report_request(version: int) -> str:
    """Return the message that asks the fleet for reports of ``version`` or a newer one."""
    return f'{{"fleet": {int(version)}}}'


def requested_version(message: bytes | str) -> int | None:
    """Return the version a report request asks for, or None when ``message`` is no report request."""
    raw = message.encode() if isinstance(message, str) else message
    matched = _REQUEST.fullmatch(raw) if raw[:1] == b"{" else None
    return int(matched[1]) if matched is not None else None
