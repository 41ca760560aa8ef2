"""A contextual bandit that learns a position-size multiplier from trade outcomes.

The context is a (confidence bucket, volatility bucket) pair; the actions are
multipliers no greater than 1.0, so a learned multiplier can only shrink a size
the policy already allows. Each state keeps the running mean reward of each
action (a one-step tabular Q-learning, which for single-step episodes is
exactly a bandit); actions are chosen epsilon-greedily with a seeded
:class:`random.Random`, so two learners with the same seed and the same
outcomes choose the same multipliers.

The table round-trips through a small JSON file (:meth:`MultiplierLearner.save`,
:meth:`MultiplierLearner.load`); the random generator's state is not saved, a
loaded learner is seeded again.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
from pathlib import Path
from typing import Any, Final

from policystore._files import replace_file

__all__ = ["ACTIONS", "CONFIDENCE_EDGES", "FORMAT", "VOLATILITY_EDGES", "MultiplierLearner"]

#: Multipliers to choose from; never above 1.0, so the policy's caps always hold.
ACTIONS: Final = (0.5, 0.75, 1.0)
#: Upper edges of the confidence buckets: [0, .55), [.55, .65), ... [.85, 1].
CONFIDENCE_EDGES: Final = (0.55, 0.65, 0.75, 0.85)
#: Upper edges of the volatility buckets, as the stop's fraction of the price.
VOLATILITY_EDGES: Final = (0.01, 0.03)
#: The ``format`` tag of the saved JSON file.
FORMAT: Final = "policystore.multiplier-learner/1"
#: The context keys by bucket, made once: ``_KEYS[c][v]`` is ``"c{c}v{v}"``; every sizing asks for one.
_KEYS: Final = tuple(
    tuple(f"c{c}v{v}" for v in range(len(VOLATILITY_EDGES) + 1)) for c in range(len(CONFIDENCE_EDGES) + 1)
)
_bisect = bisect.bisect_right


class MultiplierLearner:
    """Learns which size multiplier pays best for each (confidence, volatility) context.

    Args:
        actions: the multipliers to choose from, each in (0, 1].
        epsilon: the probability of trying a random action instead of the best.
        seed: seeds the generator that explores.

    Raises:
        ValueError: an action outside (0, 1], no actions, or epsilon outside [0, 1].
    """

    def __init__(self, *, actions: tuple[float, ...] = ACTIONS, epsilon: float = 0.1, seed: int = 0) -> None:
        if not actions:
            raise ValueError("actions must name at least one multiplier")
        bad = [a for a in actions if not (isinstance(a, int | float) and 0 < a <= 1)]
        if bad:
            raise ValueError(f"actions must be multipliers in (0, 1] so caps hold; got {bad}")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1] (got {epsilon})")
        self.actions: tuple[float, ...] = tuple(sorted(float(a) for a in actions))
        self.epsilon = epsilon
        self.seed = seed
        self._rng = random.Random(seed)  # noqa: S311 - exploration, not cryptography
        self._values: dict[str, list[float]] = {}
        self._counts: dict[str, list[int]] = {}
        self._best: dict[str, float] = {}  # greedy action per state, kept current by learn()

    @staticmethod
    def state(confidence: float, stop_fraction: float) -> str:
        """Return the context key of a signal, e.g. ``"c3v1"``.

        Args:
            confidence: the signal's confidence in [0, 1].
            stop_fraction: the stop distance as a fraction of the price.

        Returns:
            The bucket key.
        """
        return _KEYS[_bisect(CONFIDENCE_EDGES, confidence)][_bisect(VOLATILITY_EDGES, stop_fraction)]

    def choose(self, confidence: float, stop_fraction: float) -> float:
        """Return the multiplier to use for this context.

        Explores with probability ``epsilon``; otherwise takes the action with
        the best mean reward, preferring the larger multiplier on ties (an
        untrained learner sizes as if learning were off).

        Args:
            confidence: the signal's confidence.
            stop_fraction: the stop distance as a fraction of the price.

        Returns:
            One of :attr:`actions`.
        """
        if self.epsilon and self._rng.random() < self.epsilon:
            return self._rng.choice(self.actions)
        key = _KEYS[_bisect(CONFIDENCE_EDGES, confidence)][_bisect(VOLATILITY_EDGES, stop_fraction)]  # state()
        return self._best.get(key, self.actions[-1])

    def learn(self, confidence: float, stop_fraction: float, multiplier: float, reward: float) -> None:
        """Fold one outcome into the table.

        Args:
            confidence: the signal's confidence when the trade was sized.
            stop_fraction: the stop distance as a fraction of the price then.
            multiplier: the multiplier the trade used.
            reward: the outcome, e.g. the trade's PnL as a fraction of equity.

        Raises:
            ValueError: the multiplier is not one of the actions, or the reward is not finite.
        """
        if multiplier not in self.actions:
            raise ValueError(f"multiplier {multiplier} is not one of the actions {self.actions}")
        if not math.isfinite(reward):
            raise ValueError(f"reward must be a finite number (got {reward})")
        key = self.state(confidence, stop_fraction)
        values = self._values.setdefault(key, [0.0] * len(self.actions))
        counts = self._counts.setdefault(key, [0] * len(self.actions))
        i = self.actions.index(multiplier)
        counts[i] += 1
        values[i] += (reward - values[i]) / counts[i]  # running mean: every outcome weighs the same
        self._best[key] = self._greedy(values)

    def _greedy(self, values: list[float]) -> float:
        return self.actions[max(range(len(values)), key=lambda i: (values[i], i))]

    def best(self, confidence: float, stop_fraction: float) -> float:
        """Return the greedy multiplier for a context, without exploring."""
        return self._best.get(self.state(confidence, stop_fraction), self.actions[-1])

    def to_dict(self) -> dict[str, Any]:
        """Return the learner as JSON-ready data."""
        return {
            "format": FORMAT,
            "actions": list(self.actions),
            "epsilon": self.epsilon,
            "seed": self.seed,
            "confidence_edges": list(CONFIDENCE_EDGES),
            "volatility_edges": list(VOLATILITY_EDGES),
            "values": {k: list(v) for k, v in sorted(self._values.items())},
            "counts": {k: list(v) for k, v in sorted(self._counts.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiplierLearner:
        """Rebuild a learner from :meth:`to_dict` output.

        Raises:
            ValueError: the data is not a learner of this format.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a multiplier-learner table (expected format {FORMAT!r})")
        try:
            learner = cls(actions=tuple(data["actions"]), epsilon=float(data["epsilon"]), seed=int(data["seed"]))
            if list(data["confidence_edges"]) != list(CONFIDENCE_EDGES) or list(data["volatility_edges"]) != list(
                VOLATILITY_EDGES
            ):
                raise ValueError("the table was trained with other buckets")
            size = len(learner.actions)
            for key, values in data["values"].items():
                counts = data["counts"][key]
                if len(values) != size or len(counts) != size:
                    raise ValueError(f"state {key!r} has {len(values)} values for {size} actions")
                learner._values[str(key)] = [float(v) for v in values]
                learner._counts[str(key)] = [int(c) for c in counts]
                learner._best[str(key)] = learner._greedy(learner._values[str(key)])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"the learner table is incomplete: {exc}") from exc
        return learner

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table to ``path`` atomically (a reader sees the old file or the new).

        Raises:
            OSError: the file cannot be written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_file(target, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MultiplierLearner:
        """Read a table written by :meth:`save`.

        Raises:
            ValueError: the file is not valid JSON or not a learner table (the message names the file).
            OSError: the file cannot be read.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path}: {exc}") from exc
