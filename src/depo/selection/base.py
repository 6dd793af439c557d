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


@dataclass(frozen=True)
class Decisions:
    """What a selector decided for one batch of candidates, aligned with it.

    `keep[i]`: roll candidate i out. `explored[i]`: kept *only* because the selector explored a
    prompt it would have rejected (so `explored` implies `keep`); such groups are unbiased labels
    for the estimator and measure the false-skip rate. `priority[i]`: higher means more worth
    rolling out; the refill stream uses it to force-fill a batch with the best-ranked rejected
    prompts when its scan bound is hit (so a selector that rejects everything never stalls it).
    """

    keep: list[bool]
    explored: list[bool]
    priority: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.keep)
        if len(self.explored) != n or len(self.priority) != n:
            raise ValueError("Decisions: keep, explored and priority must have the same length")
        if any(e and not k for k, e in zip(self.keep, self.explored)):
            raise ValueError("Decisions: an explored candidate must be kept")


def decide(selector: Selector, batch: Sequence[Candidate]) -> Decisions:
    """Ask `selector` about `batch`, with exploration flags and a ranking when it offers them.

    Selectors in this package implement `decide(batch) -> Decisions` (and `select` is its
    `keep`); any other `Selector` (a user's own) is wrapped: nothing explored, and rejected
    prompts rank in scan order (priority 0, a stable sort keeps the order).
    """
    own = getattr(selector, "decide", None)
    if callable(own):
        decisions = own(batch)
        if len(decisions.keep) != len(batch):
            raise ValueError(f"{type(selector).__name__}.decide returned {len(decisions.keep)} decisions for {len(batch)} candidates")
        return decisions
    keep = [bool(k) for k in selector.select(batch)]
    if len(keep) != len(batch):
        raise ValueError(f"{type(selector).__name__}.select returned {len(keep)} decisions for {len(batch)} candidates")
    return Decisions(keep=keep, explored=[False] * len(keep), priority=np.zeros(len(keep)))


@dataclass
class Uniform:
    """GRPO's selection: keep every prompt."""

    name: str = field(default="uniform")

    def select(self, batch: Sequence[Candidate]) -> list[bool]:
        return [True] * len(batch)

    def decide(self, batch: Sequence[Candidate]) -> Decisions:
        n = len(batch)
        return Decisions(keep=[True] * n, explored=[False] * n, priority=np.zeros(n))

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        if not outcomes:
            return {}
        informative = sum(not o.is_zero_variance for o in outcomes)
        return {"select/effective_rate": informative / len(outcomes)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
