"""The one selection interface every trainer speaks (built-in engine, TRL, verl).

A trainer asks `select` which candidate prompts to roll out *before* generation, then hands
the rolled-out groups' rewards to `observe`. Nothing here imports a trainer or a policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

ZERO_VARIANCE_STD = 1e-6
"""A group is zero-variance when the std of its rewards is at most this (graded rewards too)."""


@dataclass(frozen=True)
class Candidate:
    """A prompt that could be rolled out: a stable id and the text the estimator reads."""

    prompt_id: str
    text: str


@dataclass(frozen=True)
class GroupOutcome:
    """The G rewards of one rolled-out prompt, and optionally the responses' mean token log-probs.

    `mean_logprobs[i]` is the mean over response i's tokens of log pi(token); the estimator's
    distill target is t = exp(mean_i mean_logprobs[i]) (SPEC.md section 2, step 4).
    `explored` marks a group rolled out only because the selector explored a rejected prompt.
    """

    prompt_id: str
    text: str
    rewards: tuple[float, ...]
    mean_logprobs: tuple[float, ...] | None = None
    explored: bool = False

    @property
    def mean_reward(self) -> float:
        return float(np.mean(self.rewards))

    @property
    def is_zero_variance(self) -> bool:
        return is_zero_variance(self.rewards)


def is_zero_variance(rewards: Sequence[float]) -> bool:
    """True when every response got the same reward (std <= 1e-6): GRPO advantages are all 0."""
    return len(rewards) == 0 or float(np.std(np.asarray(rewards, dtype=float))) <= ZERO_VARIANCE_STD


@runtime_checkable
class Selector(Protocol):
    """Decides which prompts get rolled out, and learns from the groups that were."""

    def select(self, batch: Sequence[Candidate]) -> list[bool]: ...

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class Uniform:
    """GRPO's selection: keep every prompt."""

    name: str = field(default="uniform")

    def select(self, batch: Sequence[Candidate]) -> list[bool]:
        return [True] * len(batch)

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        if not outcomes:
            return {}
        informative = sum(not o.is_zero_variance for o in outcomes)
        return {"select/effective_rate": informative / len(outcomes)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
