"""The shared vocabulary of selection: what a trainer offers, what a selector decides, what comes back.

`Candidate` (a prompt before the rollout), `Decisions` (what a selector says about a batch of
candidates) and `GroupOutcome` (a rolled-out prompt's G rewards) are the only objects that
cross between the trainers (built-in engine, TRL, verl), the selectors and the estimator, so
they live here, below all of them (docs/method.md section 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depo.zero_variance import is_zero_variance


@dataclass(frozen=True)
class Candidate:
    """A prompt that could be rolled out: a stable id and the text the estimator reads."""

    prompt_id: str
    text: str


@dataclass(frozen=True)
class GroupOutcome:
    """The G rewards of one rolled-out prompt, and optionally the responses' mean token log-probs.

    `mean_logprobs[i]` is the mean over response i's tokens of log pi(token); the estimator's
    distill target is t = exp(mean_i mean_logprobs[i]) (docs/method.md section 2.1, step 4).
    `explored` marks a group rolled out only because the selector explored a prompt its rule
    rejected, as the stream that built the batch decided (a rank stream keeps the best-ranked
    whatever the rule said, so only its own exploration counts); None when the caller does not
    say, and the selector then goes by its own decision.
    """

    prompt_id: str
    text: str
    rewards: tuple[float, ...]
    mean_logprobs: tuple[float, ...] | None = None
    explored: bool | None = None

    @property
    def mean_reward(self) -> float:
        return float(np.mean(self.rewards))

    @property
    def is_zero_variance(self) -> bool:
        return is_zero_variance(self.rewards)


@dataclass(frozen=True)
class Decisions:
    """What a selector decided for one batch of candidates, aligned with it.

    `keep[i]`: roll candidate i out. `explored[i]`: kept *only* because the selector explored a
    prompt it would have rejected (so `explored` implies `keep`); such groups are unbiased labels
    for the estimator and measure the false-skip rate. `priority[i]`: higher means more worth
    rolling out; the stream ranks by it (keep-by-rank) and force-fills a batch with the
    best-ranked rejected prompts when its scan bound is hit. `mean_priority[i]` (optional): the
    priority without exploration noise, when `priority` holds a Thompson draw; a candidate the
    rank stream keeps by its draw but not by its mean is counted as explored.
    """

    keep: list[bool]
    explored: list[bool]
    priority: np.ndarray
    mean_priority: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.keep)
        if len(self.explored) != n or len(self.priority) != n or (self.mean_priority is not None and len(self.mean_priority) != n):
            raise ValueError("Decisions: keep, explored, priority (and mean_priority) must have the same length")
        if any(e and not k for k, e in zip(self.keep, self.explored)):
            raise ValueError("Decisions: an explored candidate must be kept")

    @classmethod
    def keep_all(cls, n: int) -> Decisions:
        """Keep every one of n candidates, nothing explored, no ranking (GRPO)."""
        return cls(keep=[True] * n, explored=[False] * n, priority=np.zeros(n))
