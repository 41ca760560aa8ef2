"""Dry runs by context: inside :func:`previewing`, every write answers its preview instead of writing.

The store's writes take ``dry_run=True`` one by one. A caller that makes
writes it does not build itself (the command line's ``--dry-run``, which every
write command takes, whatever store method the command calls) runs them inside
:func:`previewing` instead: each write then raises :class:`Previewed` with
what it would have done, and writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from policystore.model.previews import Preview

__all__ = ["Previewed", "is_previewing", "previewing"]

#: Set inside :func:`previewing`: every write answers its preview instead of writing.
_PREVIEWING: ContextVar[bool] = ContextVar("policystore_previewing", default=False)


class Previewed(Exception):  # noqa: N818 - not a failure: how a write inside previewing() answers
    """Raised by a write made inside :func:`previewing`, carrying what it would have done; nothing was written.

    Attributes:
        preview: the write's preview.
    """

    def __init__(self, preview: Preview) -> None:
        super().__init__(preview.action)
        self.preview = preview


@contextlib.contextmanager
def previewing() -> Iterator[None]:
    """Within this block, every write of any store raises :class:`Previewed` with its preview and writes nothing."""
    token = _PREVIEWING.set(True)
    try:
        yield
    finally:
        _PREVIEWING.reset(token)


def is_previewing() -> bool:
    """Whether the caller runs inside :func:`previewing`."""
    return _PREVIEWING.get()
