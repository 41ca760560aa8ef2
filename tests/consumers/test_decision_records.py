"""maker(): records built without a call per field are the records their class builds, and as frozen."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from policystore._records import maker
from policystore.consumers.brokers import ClosedTrade, Fill, Order, Position
from policystore.consumers.execution import ExecutionDecision, Reason, Signal
from policystore.consumers.sizing import SizingDecision

AT = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SIGNAL = Signal("BTC", "buy", 0.9, 100.0, "moderate", AT, stop_distance=5.0)
SIZING = SizingDecision(
    "BTC", 2.0, 200.0, 0.02, 10.0, 3, "NORMAL", "moderate", ("position_size_cap",), 1.0, 10_000.0, 100.0, 0.9, 5.0,
    None,
)  # fmt: skip
ORDER = Order("BTC", "buy", 2.0, 100.0, AT, "moderate", 95.0, 110.0, 3)
FILL = Fill("BTC", "buy", 2.0, 100.02, 0.1, AT, "open", "signal")

#: Each record the consumers make with maker(), and the arguments of one: positional, then keyword.
CASES = [
    (Order, ("BTC", "sell", 1.5, 99.0, AT, "moderate"), {"policy_version": 4, "reduce_only": True}),
    (Fill, ("BTC", "sell", 1.5, 99.0, 0.05, AT, "close", "end"), {"realized_pnl": -3.5}),
    (Position, ("BTC", "buy", 1.5, 99.0, 0.05, AT, "moderate", 95.0, None, 101.0), {}),
    (ClosedTrade, ("BTC", "buy", 1.5, 99.0, 101.0, AT, AT, "moderate", "target"), {"pnl": 2.9}),
    (SizingDecision, tuple(dataclasses.astuple(SIZING)), {}),
    (ExecutionDecision, (True, Reason.ACCEPTED, SIGNAL, 3, "NORMAL", "sized", AT), {"sizing": SIZING, "fill": FILL}),
]
IDS = [cls.__name__ for cls, _, _ in CASES]


class TestMadeRecords:
    """What maker() returns for each record class the consumers use."""

    @pytest.mark.parametrize(("cls", "args", "kwargs"), CASES, ids=IDS)
    def test_made_record_equals_the_one_its_class_builds(self, cls, args, kwargs):
        """Same type, fields, equality, hash and repr as ``cls(*args, **kwargs)``."""
        made, built = maker(cls)(*args, **kwargs), cls(*args, **kwargs)
        assert cls is type(made)
        assert dataclasses.asdict(built) == dataclasses.asdict(made)
        assert (built, hash(built), repr(built)) == (made, hash(made), repr(made))

    @pytest.mark.parametrize(("cls", "args", "kwargs"), CASES, ids=IDS)
    def test_made_record_is_frozen(self, cls, args, kwargs):
        """Assigning or deleting a field raises as for a record its class built; nothing changes."""
        made = maker(cls)(*args, **kwargs)
        name = dataclasses.fields(cls)[0].name
        before = getattr(made, name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, name, "changed")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(made, name)
        assert before == getattr(made, name)

    @pytest.mark.parametrize("cls", [cls for cls, _, _ in CASES], ids=IDS)
    def test_maker_takes_the_parameters_of_the_class(self, cls):
        """The same names, kinds and defaults, in the same order."""
        made = inspect.signature(maker(cls)).parameters.values()
        own = inspect.signature(cls).parameters.values()
        assert [(p.name, p.kind, p.default) for p in own] == [(p.name, p.kind, p.default) for p in made]

    def test_defaults_apply_and_keywords_land_in_their_fields(self):
        """An order made with its first six fields gets the class's defaults; keywords go where they are named."""
        make = maker(Order)
        assert Order("BTC", "buy", 1.0, 100.0, AT, "m") == make("BTC", "buy", 1.0, 100.0, AT, "m")
        keyed = make(symbol="ETH", side="sell", quantity=2.0, price=3.0, time=AT, strategy="m", reduce_only=True)
        assert ("ETH", "sell", True, 0) == (keyed.symbol, keyed.side, keyed.reduce_only, keyed.policy_version)

    def test_wrong_arguments_raise_as_the_class_does(self):
        """A missing argument, an unknown keyword and one too many are TypeErrors, as with the class."""
        make = maker(Order)
        for call in (
            lambda: make("BTC", "buy", 1.0),
            lambda: make("BTC", "buy", 1.0, 100.0, AT, "m", colour="red"),
            lambda: make("BTC", "buy", 1.0, 100.0, AT, "m", None, None, 0, False, "extra"),  # noqa: FBT003
        ):
            with pytest.raises(TypeError):
                call()

    def test_sizing_decision_to_dict_of_a_made_record(self):
        """A made SizingDecision serialises like one its class built (asdict reads the same slots)."""
        assert SIZING.to_dict() == maker(SizingDecision)(*dataclasses.astuple(SIZING)).to_dict()


@dataclasses.dataclass(frozen=True)
class NoSlots:
    value: int


@dataclasses.dataclass(slots=True)
class NotFrozen:
    value: int


@dataclasses.dataclass(frozen=True, slots=True)
class WithFactory:
    values: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KeywordOnly:
    value: int


@dataclasses.dataclass(frozen=True, slots=True)
class Derived(Order):
    extra: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Reserved:
    _qi_self: int


class TestRefusedClasses:
    """maker() refuses, when the module is imported, a class whose records it would not build exactly."""

    @pytest.mark.parametrize(
        "cls",
        [NoSlots, NotFrozen, WithFactory, KeywordOnly, Derived, Reserved, Signal, int],
        ids=[
            "no-slots",
            "not-frozen",
            "default-factory",
            "keyword-only",
            "subclass",
            "reserved-name",
            "post-init",
            "int",
        ],
    )
    def test_class_it_cannot_build_exactly_refused(self, cls):
        """Without slots, not frozen, a default factory, keyword-only, a subclass, __post_init__: TypeError."""
        with pytest.raises(TypeError, match=cls.__qualname__):
            maker(cls)
