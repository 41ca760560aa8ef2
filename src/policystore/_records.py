"""Frozen records made on every trading decision, built without a call per field.

A frozen dataclass's ``__init__`` sets each field through
``object.__setattr__(self, name, value)``: a call that finds the field's slot
by name, for every field of every record. An executor makes four such records
for each signal it accepts (the sizing, the order, its fill, the decision), 45
fields in all, and those calls were the largest single part of a decision's
cost. :func:`maker` returns a function taking the same arguments as the
record's class that fills the slots of a plain twin class by ordinary
assignment and then gives the instance the record's class: the same type, the
same values, and as frozen as one made by the class itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["maker"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Names the generated code uses besides the fields' own, so no field may start with it.
_RESERVED = "_qi_"


def maker(cls: Callable[_P, _T]) -> Callable[_P, _T]:
    """Return a function that builds records of the frozen, slotted dataclass ``cls``, equal to ``cls(...)``.

    It takes the same parameters in the same order, with the same defaults.

    Args:
        cls: the dataclass (``@dataclass(frozen=True, slots=True)``, directly under ``object``).

    Returns:
        The function.

    Raises:
        TypeError: ``cls`` is not such a dataclass, or has what the function does
            not do: ``__post_init__``, a default factory, an ``init=False`` or
            keyword-only field.
    """
    record: type[Any] = cls  # type: ignore[assignment]  # a class, as the Args say
    params = getattr(record, "__dataclass_params__", None)  # the flags dataclass() was given
    slots = record.__dict__.get("__slots__")
    if params is None or not params.frozen or slots is None or record.__bases__ != (object,):
        raise TypeError(f"{record.__qualname__} is not a frozen, slotted dataclass directly under object")
    if hasattr(record, "__post_init__"):
        raise TypeError(f"{record.__qualname__} has __post_init__, which maker does not call")
    namespace: dict[str, Any] = {}
    parameters: list[str] = []
    body: list[str] = []
    for number, field in enumerate(dataclasses.fields(record)):
        if not field.init or field.kw_only or field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{record.__qualname__}.{field.name}: maker takes positional fields with plain defaults")
        if field.name.startswith(_RESERVED):
            raise TypeError(f"{record.__qualname__}.{field.name}: maker reserves names starting {_RESERVED}")
        if field.default is dataclasses.MISSING:
            parameters.append(field.name)
        else:
            namespace[f"{_RESERVED}default{number}"] = field.default
            parameters.append(f"{field.name}={_RESERVED}default{number}")
        body.append(f"    {_RESERVED}self.{field.name} = {field.name}")
    # The twin has the record's slots and nothing else, so an instance of it may take the record's class;
    # without a __setattr__ of its own, each assignment below is a plain store into a slot.
    twin = type(f"{record.__name__}Twin", (), {"__slots__": slots, "__module__": record.__module__})
    namespace.update(
        {
            f"{_RESERVED}new": object.__new__,
            f"{_RESERVED}twin": twin,
            f"{_RESERVED}record": record,
            # object's own __class__ setter: one call that checks the two layouts match, then swaps the class.
            f"{_RESERVED}set_class": vars(object)["__class__"].__set__,
        }
    )
    source = "\n".join(
        [
            f"def make({', '.join(parameters)}):",
            f"    {_RESERVED}self = {_RESERVED}new({_RESERVED}twin)",
            *body,
            f"    {_RESERVED}set_class({_RESERVED}self, {_RESERVED}record)",
            f"    return {_RESERVED}self",
        ]
    )
    # Generated as dataclasses generates __init__: one statement per field, no loop at call time.
    exec(source, namespace)  # noqa: S102 - the source is made above from the dataclass's field names alone
    make: Callable[_P, _T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"make_{record.__name__}"
    make.__module__ = record.__module__
    make.__doc__ = f"Build a {record.__name__}: the same arguments and result as ``{record.__name__}(...)``."
    return make
