"""Reading YAML and JSON from users: policy files for ``import`` and values for ``set``, within bounds.

A policy document is small and shallow: ``modes.NORMAL.max_leverage`` is three
levels down, and a whole export has a few hundred values. So before anything is
built from a text it is measured, event by event and without recursion: a
document nested deeper than :data:`MAX_DEPTH` levels, or that would expand
(through YAML aliases) to more than :data:`MAX_NODES` values, is refused at
once. That keeps a few hundred bytes of nested aliases from taking gigabytes,
and a deeply nested text from ending in Python's recursion limit. Refusals are
:class:`~policystore.errors.PolicyValidationError` (an invalid value) and quote at most a
short piece of the input.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from policystore.cli.output import clipped
from policystore.errors import FieldError, PolicyValidationError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "clip", "load_json", "load_yaml", "read_document"]

#: Deepest nesting of mappings and lists accepted: a policy needs 3 or 4, the rest is slack.
MAX_DEPTH: Final = 10
#: Most values (scalars and collections, aliases expanded) one input may hold.
MAX_NODES: Final = 10_000
#: Largest file ``import`` reads: an export of every mode is a few kilobytes.
MAX_BYTES: Final = 1024 * 1024
#: How much of an input a message may quote.
_QUOTED: Final = 40
#: A JSON string literal, escapes included: brackets inside one do not nest.
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def clip(text: str) -> str:
    """Return ``repr(text)``, cut to a few dozen characters for a message."""
    return clipped(repr(text), _QUOTED)


def _refuse(where: str, message: str) -> PolicyValidationError:
    return PolicyValidationError([FieldError(where, message)])


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Say what is wrong and where, without the snippet of input PyYAML adds."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "cannot be parsed"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
        return problem
    return " ".join(str(exc).split())[:200]


def _measure_yaml(text: str, where: str, what: str) -> None:
    """Refuse ``text`` if it nests deeper than MAX_DEPTH or expands past MAX_NODES values.

    Walks PyYAML's event stream, which needs no recursion, and counts each
    alias as the size of what its anchor holds.
    """
    sizes: dict[str, int] = {}
    opened: list[tuple[str | None, int]] = []
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            opened.append((event.anchor, total))
            if len(opened) > MAX_DEPTH:
                raise _refuse(where, f"{what} nests more than {MAX_DEPTH} levels deep; a policy needs 4")
        elif isinstance(event, yaml.CollectionEndEvent) and opened:
            anchor, start = opened.pop()
            if anchor is not None:
                sizes[anchor] = total - start + 1
        elif isinstance(event, yaml.AliasEvent):
            total += sizes.get(event.anchor or "", 1)
        if total > MAX_NODES:
            raise _refuse(
                where, f"{what} holds more than {MAX_NODES} values once its aliases are expanded; a policy has hundreds"
            )


def load_yaml(text: str, *, where: str, what: str) -> Any:
    """Parse YAML ``text`` safely and within bounds.

    Args:
        text: the YAML.
        where: the path or field a refusal is reported under (``file``, ``modes.NORMAL``).
        what: how a message names the input (``policy.yaml``, ``the value``).

    Returns:
        The data.

    Raises:
        PolicyValidationError: not valid YAML, too deep, too large once expanded,
            or a number with more digits than Python reads.
    """
    try:
        _measure_yaml(text, where, what)
        return yaml.safe_load(text)
    except PolicyValidationError:
        raise  # already the refusal (it is a ValueError too)
    except yaml.YAMLError as exc:
        raise _refuse(where, f"{what} is not valid YAML ({_yaml_problem(exc)})") from exc
    except ValueError as exc:  # int() past Python's digit limit, while building the data
        raise _refuse(where, f"{what} holds a number with too many digits to be a limit") from exc


def load_json(text: str, *, where: str, what: str) -> Any:
    """Parse JSON ``text`` within bounds.

    Args:
        text: the JSON.
        where: the field a refusal is reported under.
        what: how a message names the input.

    Returns:
        The data.

    Raises:
        PolicyValidationError: not valid JSON, too deep, or too large.
    """
    bare = _JSON_STRING.sub('""', text)
    steps = (1 if c in "[{" else -1 for c in bare if c in "[{]}")
    if max(itertools.accumulate(steps, initial=0)) > MAX_DEPTH:
        raise _refuse(where, f"{what} nests more than {MAX_DEPTH} levels deep; a policy needs 4")
    if bare.count(",") + bare.count(":") > 2 * MAX_NODES:
        raise _refuse(where, f"{what} holds more than {MAX_NODES} values; a policy has hundreds")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _refuse(where, f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except ValueError as exc:  # int() past Python's digit limit
        raise _refuse(where, f"{what} holds a number with too many digits to be a limit") from exc


def _read_text(file: str) -> str:
    """Read ``file`` ('-' for stdin), at most MAX_BYTES of it.

    Raises:
        OSError: the file cannot be read.
        PolicyValidationError: it is larger than MAX_BYTES or not UTF-8 text.
    """
    if file == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
    else:
        with Path(file).open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _refuse("file", f"{file} is larger than {MAX_BYTES // 1024} KiB; a policy document is a few")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse("file", f"{file} is not UTF-8 text (byte {exc.start} cannot be decoded)") from exc


def read_document(file: str, kind: str) -> dict[str, Any]:
    """Read a policy document from ``file`` ('-' for stdin) as ``kind`` ('yaml' or 'json').

    Args:
        file: the path.
        kind: ``yaml`` or ``json``.

    Returns:
        The document, a mapping.

    Raises:
        OSError: the file cannot be read.
        PolicyValidationError: it is too large, not UTF-8, not valid, out of
            bounds, or holds no mapping.
    """
    text = _read_text(file)
    loader = load_json if kind == "json" else load_yaml
    data = loader(text, where="file", what=file)
    if not isinstance(data, dict):
        raise _refuse("file", f"{file} holds no policy document (expected a mapping, found {type(data).__name__})")
    return data
