"""The policy document: one frozen value that holds every limit, versioned as a whole."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, NoReturn

from pydantic import AfterValidator, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from policystore.model.change_control import ChangeControl
from policystore.model.modes import BUILTIN_MODES, FROZEN_CONFIG, Count, Number, RiskModeConfig
from policystore.model.numbers import MAX_SAFE_INTEGER
from policystore.model.strategies import STRATEGY_FIELDS, StrategyConfig, StrategySettings
from policystore.model.trading import InstrumentLimits, TradingControls

__all__ = [
    "BUILTIN_STRATEGIES",
    "EPOCH",
    "MODE_NAME_PATTERN",
    "RECORD_FIELDS",
    "SECTION_FIELDS",
    "STRATEGY_FIELDS",
    "STRATEGY_NAME_PATTERN",
    "Emergency",
    "FrozenDict",
    "HardLimits",
    "Override",
    "Policy",
    "StrategyConfig",
    "StrategySettings",
    "default_policy",
    "policy_adapter",
]

MODE_NAME_PATTERN: Final = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
STRATEGY_NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: A version's own record: the fields the store sets on every write, which say nothing of risk.
RECORD_FIELDS: Final = ("version", "updated_at", "updated_by", "reason")
#: The sections of a policy: every member of its document but the active mode, the record and the
#: expiring changes (``overrides``, checked with the whole document: see validation.override_errors).
SECTION_FIELDS: Final = ("modes", "strategies", "emergency", "hard_limits", "trading", "instruments")


#: The sections a policy holds as a FrozenDict.
_FROZEN_SECTIONS: Final = ("modes", "strategies", "instruments")


class FrozenDict(dict[Any, Any]):
    """A dict that refuses changes, so a held snapshot cannot be altered in place."""

    __slots__ = ()

    def _refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        msg = "policy snapshots are immutable; write changes through the store"
        raise TypeError(msg)

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class Emergency:
    """The kill switch: while ``active``, no new trade may be opened."""

    active: bool = False
    reason: str | None = None
    activated_at: datetime | None = None
    activated_by: str | None = None


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class HardLimits:
    """Absolute caps no mode may exceed; ``global_min_confidence`` is a floor.

    The trading caps (``max_order_notional``, ``max_position_notional``,
    ``max_gross_exposure``, ``max_daily_loss``, ``max_orders_per_minute``) are
    optional: None is no cap. A set one bounds every value of the limit of the
    same name (``instruments.<SYMBOL>.*``, ``trading.*``) and applies where no
    such limit is set.
    """

    max_leverage: Number = Field(default=10.0, gt=0, allow_inf_nan=False)
    max_risk_pct_per_trade: Number = Field(default=0.05, gt=0, le=1, allow_inf_nan=False)
    max_daily_drawdown: Number = Field(default=0.10, gt=0, le=1, allow_inf_nan=False)
    max_positions: Count = Field(default=100, ge=1)
    global_min_confidence: Number = Field(default=0.30, ge=0, le=1, allow_inf_nan=False)
    scaling_factor: Number = Field(default=2.0, gt=0, allow_inf_nan=False)
    position_size_cap: Number = Field(default=10_000.0, gt=0, allow_inf_nan=False)
    max_order_notional: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_position_notional: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_gross_exposure: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_daily_loss: Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_orders_per_minute: Count | None = Field(default=None, ge=1)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        msg = "timestamps must carry a time zone"
        raise ValueError(msg)
    return value.astimezone(UTC)


#: A policy's version: grows by one with every write; 0 before the first.
VersionNumber = Annotated[
    int, Field(ge=0, le=MAX_SAFE_INTEGER, strict=True, description="Grows by one with every write; 0 before the first.")
]
#: A moment, with its time zone, held in UTC.
Timestamp = Annotated[datetime, AfterValidator(_utc)]


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class Override:
    """An expiring change in force: the values a write set, until when, and the values they return to.

    A write that carries a lifetime (``expires_in``) leaves one in the
    document's ``overrides`` section. Until ``until`` the values it set are in
    force; from then on every process reads the values they replaced, by its own
    clock, and the first process that can write records the return as a new
    version. A later write to one of its paths replaces it on that path.

    Attributes:
        version: the version the write made.
        at: when it was written (the writer's clock).
        until: when it ends (the writer's clock plus the lifetime).
        by: who wrote it.
        reason: why, as the write's history entry says.
        values: the values it set, by stored path (``modes.NORMAL.max_leverage``).
        replaced: the values they return to, by the same paths (None: not set, or no such entry).
    """

    version: VersionNumber
    at: Timestamp
    until: Timestamp
    by: str
    reason: str
    values: dict[str, Any]
    replaced: dict[str, Any]

    def __post_init__(self) -> None:
        # Frozen: an override a snapshot holds cannot be altered in place.
        object.__setattr__(self, "values", FrozenDict(self.values))
        object.__setattr__(self, "replaced", FrozenDict(self.replaced))

    def to_dict(self) -> dict[str, Any]:
        """Return the override as JSON-ready data, as the document holds it."""
        return {
            "version": self.version,
            "at": self.at.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by,
            "reason": self.reason,
            "values": dict(self.values),
            "replaced": dict(self.replaced),
        }


@dataclass(frozen=True, slots=True, config=FROZEN_CONFIG)
class Policy:
    """The whole policy at one version. Frozen: a new version is a new object.

    ``policy.risk`` and ``policy.ai`` are the active mode's config, so that one
    decision reads every limit from the one snapshot it holds::

        snap = store.snapshot()
        leverage = snap.risk.max_leverage

    Build one from data with :func:`policystore.model.validation.build_policy`,
    which checks the hard caps too; the constructor checks field ranges only.

    ``trading`` and ``instruments`` hold the trading states and pre-trade
    controls (see :mod:`policystore.model.trading`); a document without them
    reads as their defaults: everything ``active``, no limits. An instrument
    entry that sets nothing is not kept.

    ``change_control`` holds how many admins must agree to a change that
    raises risk (see :mod:`policystore.model.change_control`); a document
    without it reads as 1, and a policy that asks for 1 writes none.

    ``overrides`` holds the expiring changes (:class:`Override`), oldest first;
    a document without the section has none, and a policy without any writes
    none, so that readers which predate the section read it as before.
    """

    active_mode: str
    modes: dict[str, RiskModeConfig]
    strategies: dict[str, StrategySettings]
    emergency: Emergency = Emergency()
    hard_limits: HardLimits = HardLimits()
    version: VersionNumber = 0
    updated_at: Timestamp = EPOCH
    updated_by: str = "policystore"
    reason: str = ""
    trading: TradingControls = TradingControls()
    instruments: dict[str, InstrumentLimits] = Field(default_factory=dict)
    change_control: ChangeControl = ChangeControl()
    overrides: tuple[Override, ...] = ()
    # Derived in __post_init__ and stored in a slot: a plain attribute read.
    risk: RiskModeConfig = Field(default=None, init=False, exclude=True, repr=False)  # type: ignore[assignment]
    ai: RiskModeConfig = Field(default=None, init=False, exclude=True, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._finish(_FROZEN_SECTIONS)

    def _finish(self, sections: Iterable[str]) -> None:
        """Freeze ``sections`` (of ``modes``, ``strategies``, ``instruments``) and derive the active mode's config."""
        # Frozen so that a snapshot a caller holds cannot be altered in place.
        for name in sections:
            value = getattr(self, name)
            if name == "instruments" and any(entry.is_empty() for entry in value.values()):
                # An entry that sets nothing says nothing; keeping it would list an instrument no write can see.
                value = {key: entry for key, entry in value.items() if not entry.is_empty()}
            object.__setattr__(self, name, FrozenDict(value))
        self._derive_active()

    def _derive_active(self) -> None:
        active = self.modes.get(self.active_mode)
        object.__setattr__(self, "risk", active)
        object.__setattr__(self, "ai", active)

    def with_record(self, fields: Mapping[str, Any]) -> Policy:
        """Return this policy with some of its record fields and active mode replaced.

        ``fields`` may name ``active_mode``, ``version``, ``updated_at``,
        ``updated_by`` and ``reason``; each is validated by the constructor's
        own type. The sections (modes, strategies, kill switch, hard limits) are
        this policy's (trading and instruments too), already valid, and are not validated again: every
        process does this once per version it installs (see
        :mod:`policystore.model.document_text`). The caller checks that the
        active mode is one of the modes.

        Raises:
            pydantic.ValidationError: a field failed.
            ValueError: a name is not one of those.
        """
        unknown = fields.keys() - _RECORD_ADAPTERS.keys()
        if unknown:
            msg = f"not a record field: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        record = {name: _RECORD_ADAPTERS[name].validate_python(value) for name, value in fields.items()}
        return self._replaced(record, sections=False)

    def with_sections(self, texts: Mapping[str, bytes]) -> Policy:
        """Return this policy with whole sections replaced, each validated from its JSON text.

        ``texts`` may name ``modes``, ``strategies``, ``emergency``,
        ``hard_limits``, ``trading`` and ``instruments``; each is validated by
        the constructor's own type, from JSON as the whole document's text is,
        and the result is finished as the constructor finishes it. The other
        sections and the record are this policy's. The caller checks the rules
        that span fields (:func:`policystore.model.validation.consistent`); a
        version that changes a limit is installed this way in every process
        (see :mod:`policystore.model.document_text`).

        Raises:
            pydantic.ValidationError: a section failed.
            ValueError: a name is not one of those.
        """
        unknown = texts.keys() - _SECTION_ADAPTERS.keys()
        if unknown:
            msg = f"not a section: {', '.join(sorted(unknown))}"
            raise ValueError(msg)
        sections = {name: _SECTION_ADAPTERS[name].validate_json(text) for name, text in texts.items()}
        return self._replaced(sections, sections=True)

    def _replaced(self, fields: Mapping[str, Any], *, sections: bool) -> Policy:
        """This policy with ``fields`` (validated already) in place of its own.

        New sections are finished as the constructor finishes them (frozen,
        empty instrument entries dropped); the sections kept are this policy's
        own objects, frozen already, and the active mode's config is derived again.
        """
        policy = object.__new__(Policy)
        for name in _SLOTS:
            object.__setattr__(policy, name, fields.get(name, getattr(self, name)))
        # Kept sections stay the same objects: whoever compares two versions section by
        # section (the last-known-good keeper, say) finds them unchanged at a glance.
        policy._finish([name for name in _FROZEN_SECTIONS if name in fields] if sections else ())
        return policy

    def strategy(self, name: str) -> StrategyConfig:
        """Return strategy ``name``'s effective config under the active mode.

        Raises:
            KeyError: no strategy has that name.
        """
        return StrategyConfig.derive(name, self.strategies[name], self.risk)

    def document(self) -> dict[str, Any]:
        """Return the policy as plain JSON-ready data.

        Without ``overrides`` when there are none, and without ``change_control``
        while it holds its default (one approval).
        """
        data: dict[str, Any] = policy_adapter.dump_python(self, mode="json")
        if not data["overrides"]:
            # Left out, so a reader that predates expiring changes reads the document as before.
            del data["overrides"]
        if data["change_control"] == _DEFAULT_CHANGE_CONTROL:
            # Likewise for a reader that predates change control, while nothing asks for more approvals.
            del data["change_control"]
        return data


policy_adapter: Final = TypeAdapter(Policy)
_DEFAULT_CHANGE_CONTROL: Final = TypeAdapter(ChangeControl).dump_python(ChangeControl(), mode="json")
_SLOTS: Final = tuple(field.name for field in dataclasses.fields(Policy))
#: The fields that say which version a policy is, and its active mode, each validated by
#: the constructor's own annotation and config (see Policy.with_record).
_RECORD_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    name: TypeAdapter(hint, config=FROZEN_CONFIG)
    for name, hint in typing.get_type_hints(Policy, include_extras=True).items()
    if name in {"active_mode", *RECORD_FIELDS}
}

#: The sections of a policy, each validated by the constructor's own annotation (a section
#: that is a dataclass brings its own config; see Policy.with_sections).
_SECTION_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    name: TypeAdapter(hint) if dataclasses.is_dataclass(hint) else TypeAdapter(hint, config=FROZEN_CONFIG)
    for name, hint in typing.get_type_hints(Policy, include_extras=True).items()
    if name in SECTION_FIELDS
}

BUILTIN_STRATEGIES: Final[dict[str, StrategySettings]] = {
    "conservative": StrategySettings(
        cooldown_seconds=300, min_confidence=0.65, max_leverage=2.0, max_risk_pct_per_trade=0.005, max_positions=5
    ),
    "moderate": StrategySettings(cooldown_seconds=120, min_confidence=0.55, max_leverage=3.0),
    "aggressive": StrategySettings(cooldown_seconds=30),
    "defensive": StrategySettings(
        cooldown_seconds=600,
        min_confidence=0.70,
        max_leverage=1.5,
        max_risk_pct_per_trade=0.005,
        max_positions=5,
        scaling_factor=0.5,
    ),
}


def default_policy() -> Policy:
    """Return the built-in policy a new store starts with, at version 0."""
    return Policy(
        active_mode="NORMAL",
        modes=dict(BUILTIN_MODES),
        strategies=dict(BUILTIN_STRATEGIES),
        reason="built-in defaults",
    )
