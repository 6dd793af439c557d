"""A task is a prompt, a reference answer, a verifier and a stable id."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Verifier = Callable[[str, str], float]
"""verifier(response, answer) -> reward in [0, 1]."""


@dataclass(frozen=True)
class Task:
    """One prompt the policy can be trained or evaluated on.

    `prompt` is what the policy reads (compact for the tiny policy); `text` is what the
    difficulty estimator reads (the natural-language form; defaults to `prompt`).
    """

    prompt_id: str
    prompt: str
    answer: str
    verifier: Verifier = field(repr=False, compare=False)
    text: str = ""
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", self.prompt)

    def reward(self, response: str) -> float:
        """The verifier's reward for one response, clipped to [0, 1]."""
        r = float(self.verifier(response, self.answer))
        return min(1.0, max(0.0, r))


def score_responses(task: Task, responses: Sequence[str]) -> tuple[list[float], str | None]:
    """Verifier rewards clipped to [0, 1], and the first failure (exception or non-finite) if any.

    Calls `task.verifier` directly rather than `Task.reward`, because clipping NaN with min/max
    would silently turn it into 0.
    """
    rewards: list[float] = []
    error: str | None = None
    for text in responses:
        try:
            value = float(task.verifier(text, task.answer))
        except Exception as exc:  # a user's reward function: any failure is counted, not fatal
            value, problem = 0.0, f"{type(exc).__name__}: {exc}"
        else:
            problem = None if math.isfinite(value) else f"non-finite reward {value}"
        error = error or problem
        rewards.append(0.0 if problem else min(1.0, max(0.0, value)))
    return rewards, error
