"""What every back end's records share: the names they take, and a record's stored form.

A record is kept as the JSON text of an object, keys sorted, in one value of the
back end's record storage (SQLite's ``aux`` table, a Redis hash per collection,
PostgreSQL's ``policystore_aux`` table); the layout predates records, so stores
written before keep being read as they are. Encoding checks a record the same
way for every back end: one that is no JSON object, or holds what JSON cannot
(a date, NaN), is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

from policystore.errors import FieldError, PolicyValidationError

__all__ = ["check_names", "decode_record", "encode_record"]

log = logging.getLogger("policystore.records")

#: Collection names: the rule namespaces follow, so a name fits a Redis key and a SQL value alike.
_COLLECTION: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: The longest key, in characters (token names take 64; ids and member names fit well within).
_KEY_LIMIT: Final = 256


def _invalid(field: str, message: str) -> PolicyValidationError:
    return PolicyValidationError([FieldError(field, message)])


def check_names(collection: str, key: str | None = None) -> None:
    """Refuse a collection name or key no back end can keep.

    Args:
        collection: 1 to 64 letters, digits, ``_``, ``.`` or ``-``.
        key: a printable string of 1 to 256 characters (no control character), or None to check the collection only.

    Raises:
        PolicyValidationError: the name or key breaks its rule.
    """
    # fullmatch, not match with '$': '$' also accepts a trailing newline.
    if not isinstance(collection, str) or not _COLLECTION.fullmatch(collection):
        msg = f"collection {collection!r} must be 1 to 64 letters, digits, '_', '.' or '-'"
        raise _invalid("collection", msg)
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= _KEY_LIMIT and key.isprintable()):
        msg = f"key {key!r} must be 1 to {_KEY_LIMIT} printable characters"
        raise _invalid("key", msg)


def encode_record(record: dict[str, Any]) -> str:
    """Return the text a record is stored as: a JSON object, keys sorted, no spaces.

    Raises:
        PolicyValidationError: ``record`` is not a dict, or holds a value JSON cannot carry.
    """
    if not isinstance(record, dict):
        raise _invalid("record", f"a record must be a JSON object (a dict), not a {type(record).__name__}")
    try:
        return json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _invalid("record", f"the record cannot be stored as JSON ({exc})") from exc


def decode_record(stored: str | bytes, *, collection: str, key: str | bytes, where: str) -> dict[str, Any] | None:
    """Return the record a stored value holds, or None (logged) when it holds no JSON object.

    Args:
        stored: the value as the back end read it.
        collection: the collection it was read from (for the log).
        key: its key (for the log).
        where: the store's URL, safe to show (for the log).
    """
    try:
        record = json.loads(stored)
    except ValueError:  # UnicodeDecodeError included: bytes that are not UTF-8
        record = None
    if isinstance(record, dict):
        return record
    # Not written by policystore: like any damaged record, it grants nothing and is skipped.
    log.warning("Record %r of collection %s in %s is not a JSON object; it is ignored.", key, collection, where)
    return None
