"""A task is a prompt, a reference answer, a verifier and a stable id."""

from __future__ import annotations

from collections.abc import Callable
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
