"""Conformance checks: the records kept beside the policy (``backend.records``)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from policystore import PolicyValidationError
from policystore.testing._harness import (
    BackendFactory,
    ConformanceError,
    Session,
    document,
    entry,
    expect,
    expect_equal,
)

__all__ = [
    "check_records_add_only_where_none_is_and_one_racing_add_wins",
    "check_records_are_kept_apart_from_the_policy_and_shared",
    "check_records_refuse_bad_names_and_values_writing_nothing",
    "check_records_round_trip",
]

_COLLECTION = "conformance"
#: Back ends that race to add one key.
_RACERS = 4


async def check_records_round_trip(factory: BackendFactory) -> None:
    """A record put reads back equal, alone or with its collection; put replaces it; delete removes it."""
    async with Session(factory) as session:
        records = (await session.open()).records
        expect_equal({}, await records.all(_COLLECTION), "all() of a collection with no record")
        expect_equal(None, await records.get(_COLLECTION, "p1"), "get() of a key with no record")
        first = {"changes": {"risk.max_leverage": 3.0}, "approved_by": ["ada"], "note": "zoë ✓", "done": False}
        await records.put(_COLLECTION, "p1", first)
        await records.put(_COLLECTION, "p2", {"n": 2, "none": None})
        expect_equal(first, await records.get(_COLLECTION, "p1"), "get() of the record put")
        await records.put(_COLLECTION, "p1", {"status": "applied"})
        expect_equal(
            {"p1": {"status": "applied"}, "p2": {"n": 2, "none": None}},
            await records.all(_COLLECTION),
            "all() after a put replaced a record",
        )
        expect(await records.delete(_COLLECTION, "p1"), "delete() of a record there returned False")
        expect(not await records.delete(_COLLECTION, "p1"), "delete() of a record already deleted returned True")
        expect_equal({"p2": {"n": 2, "none": None}}, await records.all(_COLLECTION), "all() after delete()")


async def check_records_add_only_where_none_is_and_one_racing_add_wins(factory: BackendFactory) -> None:
    """add() stores only where no record is; of back ends racing to add one key, exactly one does."""
    async with Session(factory) as session:
        records = (await session.open()).records
        expect(await records.add(_COLLECTION, "only", {"by": "first"}), "add() where no record is returned False")
        expect(not await records.add(_COLLECTION, "only", {"by": "second"}), "add() where a record is returned True")
        expect_equal({"by": "first"}, await records.get(_COLLECTION, "only"), "the record after a refused add()")
        racers = [(await session.open()).records for _ in range(_RACERS)]
        added = await asyncio.gather(*(r.add(_COLLECTION, "raced", {"by": i}) for i, r in enumerate(racers)))
        winners = [i for i, won in enumerate(added) if won]
        expect_equal(1, len(winners), f"how many of {_RACERS} back ends adding one key at once stored it")
        expect_equal({"by": winners[0]}, await records.get(_COLLECTION, "raced"), "the raced key's record")


async def check_records_are_kept_apart_from_the_policy_and_shared(factory: BackendFactory) -> None:
    """Collections are apart, records make no version, and another back end on the store reads them."""
    async with Session(factory) as session:
        backend = await session.open()
        await backend.commit(document(1), entry(1))
        await backend.records.put("first", "k", {"in": "first"})
        await backend.records.put("second", "k", {"in": "second"})
        expect_equal({"in": "first"}, await backend.records.get("first", "k"), "one key in two collections")
        expect_equal(1, await backend.current_version(), "current_version() after records were written")
        expect_equal([entry(1)], await backend.history(10), "history after records were written")
        other = await session.open()
        expect_equal({"k": {"in": "second"}}, await other.records.all("second"), "records from another back end")


async def check_records_refuse_bad_names_and_values_writing_nothing(factory: BackendFactory) -> None:
    """A bad collection name, key or record raises PolicyValidationError, and nothing is written."""
    async with Session(factory) as session:
        records = (await session.open()).records
        bad: list[tuple[str, str, Any]] = [
            ("", "k", {}),
            ("a b", "k", {}),
            ("x" * 65, "k", {}),
            (_COLLECTION, "", {}),
            (_COLLECTION, "k", {"v": math.nan}),
            (_COLLECTION, "k", {"v": object()}),
            (_COLLECTION, "k", ["not", "an", "object"]),
        ]
        for collection, key, record in bad:
            try:
                await records.put(collection, key, record)
            except PolicyValidationError:
                continue
            raise ConformanceError(f"put({collection!r}, {key!r}, {record!r}) raised no PolicyValidationError")
        expect_equal({}, await records.all(_COLLECTION), "the collection after refused puts")
