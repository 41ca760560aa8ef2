"""Numbers as they reach the policy: which ones a limit may hold, and how to name any of them.

Limits are compared and computed as floats, so a value that a float cannot
hold (``10**400``, ``1e400``, NaN) is no limit at all: the model refuses it
wherever it enters, and a figure a consumer reports (a loss, an equity) that
cannot be read as a finite float counts as unusable, never as zero.
"""

from __future__ import annotations

import math
from decimal import Decimal
from numbers import Real
from typing import Any, Final

__all__ = ["MAX_SAFE_INTEGER", "exact_float", "finite_float", "short_repr"]

#: The largest integer every back end and every JSON reader holds exactly (a double's 53-bit mantissa).
MAX_SAFE_INTEGER: Final = 2**53
#: How long a value may be when a message quotes it.
_SHOWN_CHARS: Final = 40
#: Integers with more bits than this are described by their size, not written out.
_SHOWN_BITS: Final = 128


def exact_float(value: int) -> bool:
    """Tell whether the integer ``value`` converts to a float without rounding or overflow."""
    try:
        return float(value) == value
    except OverflowError:
        return False


def finite_float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it cannot be one.

    Any real number (int, float, :class:`~fractions.Fraction`, numpy scalars)
    and :class:`~decimal.Decimal` are read; a boolean, a string, None, a NaN,
    an infinity and a number too large for a float (``10**400``) give None.
    """
    if type(value) is float:  # the common case, without the abstract-class checks below
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):  # 10**400, Decimal('sNaN'), a broken __float__
        return None
    return number if math.isfinite(number) else None


def short_repr(value: Any) -> str:
    """Return ``repr(value)`` short enough for a one-sentence message.

    A huge integer is described by its size: writing it out can take
    thousands of characters, or fail outright past Python's digit limit.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _SHOWN_BITS:
        digits = math.floor(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    try:
        text = repr(value)
    except ValueError:  # a value whose repr refuses itself
        return f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."
