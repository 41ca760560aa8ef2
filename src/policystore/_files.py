"""Replacing a file atomically: a reader sees the old content or the new, never half a file.

The content goes to a temporary file in the same folder, which is then renamed
over the target; a rename within one file system is atomic. A durable write
also flushes the content before the rename and the folder after it, so the new
file survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["fsync_path", "replace_file"]


def replace_file(path: Path, text: str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; its folder must exist.

    Args:
        path: the file to write.
        text: its new content.
        durable: flush the content, then the rename, to disk before returning.

    Raises:
        OSError: the file could not be written (nothing was replaced, no temporary file is left).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """Flush a file or a folder (its entries: a rename, a removal) to disk.

    Raises:
        OSError: ``path`` cannot be opened or flushed.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
