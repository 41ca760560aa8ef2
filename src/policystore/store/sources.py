"""Where an answer comes from: the read state of a store and ``explain()``.

Sources, highest first: the live store; the last-known-good copy on local disk
(stale); environment variables; built-in defaults. A read state is built once
per version and holds the flattened path table the read path looks values up in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from policystore.model.paths import clamped_override, flatten
from policystore.model.policy import Policy
from policystore.store.env import EnvironmentOverlay

__all__ = ["Explanation", "ReadState", "Source"]


class Source(StrEnum):
    """Which layer of the fallback chain answered."""

    STORE = "store"
    LAST_KNOWN_GOOD = "last_known_good"
    ENVIRONMENT = "environment"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a path has the value it has.

    Attributes:
        path: the path asked about.
        value: its value now.
        source: the layer that answered.
        version: the policy version the value belongs to (0 for env and defaults).
        stale: True when the live store could not be reached for this answer.
        detail: more facts in a sentence, such as the variable that set the value,
            or that a stored strategy override is looser than the active mode.
        clamped_by: for a strategy field whose stored override is looser than
            the active mode, the mode path whose value applies; else None.
    """

    path: str
    value: Any
    source: Source
    version: int
    stale: bool
    detail: str = ""
    clamped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the explanation as plain data."""
        return {
            "path": self.path,
            "value": self.value,
            "source": self.source.value,
            "version": self.version,
            "stale": self.stale,
            "detail": self.detail,
            "clamped_by": self.clamped_by,
        }


@dataclass(frozen=True, slots=True)
class ReadState:
    """Everything the read path needs for one policy version, built once."""

    policy: Policy
    source: Source
    stale: bool
    values: dict[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def live(cls, policy: Policy, values: dict[str, Any] | None = None) -> ReadState:
        """A state read from the live store; ``values`` is ``flatten(policy)`` when the caller has it."""
        return cls(policy, Source.STORE, stale=False, values=flatten(policy) if values is None else values)

    @classmethod
    def last_known_good(cls, policy: Policy) -> ReadState:
        """A state from the last-known-good copy: stale by definition."""
        return cls(policy, Source.LAST_KNOWN_GOOD, stale=True, values=flatten(policy))

    @classmethod
    def fallback(cls, overlay: EnvironmentOverlay) -> ReadState:
        """A state from the environment over the built-in defaults."""
        return cls(
            overlay.policy,
            Source.DEFAULT,
            stale=True,
            values=flatten(overlay.policy),
            variables=overlay.variables,
            problems=overlay.problems,
        )

    def explain(self, path: str) -> Explanation:
        """Explain ``path``; the caller has checked that it exists."""
        explanation = self._explain_source(path)
        clamp = clamped_override(self.policy, path)
        if clamp is None:
            return explanation
        return dataclasses.replace(
            explanation, detail=f"{explanation.detail}; {clamp.detail}", clamped_by=clamp.mode_path
        )

    def _explain_source(self, path: str) -> Explanation:
        value = self.values[path]
        version = self.policy.version
        if self.source is Source.STORE:
            return Explanation(path, value, Source.STORE, version, stale=False, detail="read from the live store")
        if self.source is Source.LAST_KNOWN_GOOD:
            return Explanation(
                path,
                value,
                self.source,
                version,
                stale=True,
                detail="the live store cannot be reached; answered from the last-known-good copy",
            )
        problems = "; ".join(self.problems.values())
        if path in self.variables:
            detail = f"set by environment variable {self.variables[path]}"
            return Explanation(path, value, Source.ENVIRONMENT, 0, stale=True, detail=detail)
        detail = "no store and no last-known-good copy; built-in default"
        if problems:
            detail += f" ({problems})"
        return Explanation(path, value, Source.DEFAULT, 0, stale=True, detail=detail)
