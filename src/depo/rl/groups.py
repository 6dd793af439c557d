"""Rolled-out groups: what one prompt's G responses carry from the rollout into the update.

Rewards are the verifier's (`depo.tasks.base.score_responses`): a verifier that raises or returns
NaN/inf marks its whole group as failed. The trainer drops failed groups and counts them
(`reward/errors`) instead of crashing the run or training on a made-up reward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depo.zero_variance import is_zero_variance


@dataclass
class Group:
    """One prompt rolled out G times, with the verifier's rewards and the shaped rewards."""

    index: int
    """Dataset index of the prompt."""
    prompt_ids: list[int]
    response_ids: list[list[int]]
    logprobs: list[list[float]]
    """Per-token log-probs under the sampling policy (pi_old), one per response token."""
    truncated: list[bool]
    correct: np.ndarray
    """(G,) verifier rewards in [0, 1]: the pass labels (effective rate, estimator targets)."""
    rewards: np.ndarray
    """(G,) rewards used for the advantage: `correct` plus any shaping (overlong penalty)."""
    explored: bool = False
    error: str | None = None
    """First verifier failure in the group; a failed group is never trained on."""

    @property
    def informative(self) -> bool:
        """Non-zero variance of the verifier rewards: GRPO gets a gradient from this group.

        Judged on `correct`, not on shaped rewards, as verl's DAPO recipe filters on accuracy:
        an all-wrong group does not become informative because its lengths differ."""
        return self.error is None and not is_zero_variance(self.correct)

    @property
    def num_tokens(self) -> int:
        return sum(len(r) for r in self.response_ids)

    def mean_logprobs(self) -> tuple[float, ...]:
        """Per response, the mean token log-prob (the estimator's distill input, docs/method.md section 2.1)."""
        return tuple(float(np.mean(lp)) if lp else 0.0 for lp in self.logprobs)
