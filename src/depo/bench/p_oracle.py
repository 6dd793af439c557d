"""The p-oracle of `depo bench train` (docs/method.md section 7): DEPO's rule applied to each
candidate's pass rate under the *current* policy, which it measures by sampling.

Before every selection it samples `samples` answers per scanned candidate from the trainer's
policy (its own random stream, so the training run's rollouts are not disturbed) and scores
them with the task's verifier; the share correct is the pass rate it acts on. It knows the rate
as well as that many samples tell, not the outcome of the group the step will roll out. Those
answers are bench-only: never trained on, never counted as rollouts (`measured` counts them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field

from depo.config import Config
from depo.errors import DepoError
from depo.policy.sampling import sample
from depo.selection.oracle import Oracle
from depo.selection.registry import register_selector
from depo.tasks.base import score_responses
from depo.types import Candidate, GroupOutcome
from depo.zero_variance import zero_var_probability

RUNS_IN = "`depo bench train --methods p-oracle` binds it to the policy it measures"
"""Where the p-oracle runs (a trainer cannot bind it: `register_selector(bench_only=...)`)."""
SAMPLES = 16
"""Answers per candidate behind each measured pass rate (its standard error is at most 0.125)."""


class PolicyPassRateOracle(Oracle):
    """An `Oracle` whose pass rates are measured on the trainer's current policy (bind it first)."""

    name = "p-oracle"

    def __init__(self, *, group_size: int, samples: int = SAMPLES, threshold: float = 0.5, seed: int = 0) -> None:
        super().__init__(self._unbound, group_size=group_size, threshold=threshold)
        self.samples = int(samples)
        self.generator = torch.Generator().manual_seed(1_000_003 + seed)
        self.trainer: Any = None
        self.tasks: dict[str, Any] = {}
        self.measured = 0

    @staticmethod
    def _unbound(prompt_id: str) -> float:
        raise DepoError("the p-oracle measures pass rates on the trainer's policy, so it runs only where it is "
                        f"bound to one: {RUNS_IN}")

    def bind(self, trainer: Any) -> PolicyPassRateOracle:
        self.trainer = trainer
        self.tasks = {t.prompt_id: t for t in trainer.train_tasks}
        return self

    def answers(self, batch: Sequence[Candidate]) -> np.ndarray:
        """(candidates, samples) rewards of fresh answers of the current policy."""
        if self.trainer is None:
            self._unbound("")
        cfg, tasks = self.trainer.cfg, [self.tasks[c.prompt_id] for c in batch]
        with torch.no_grad():
            out = sample(
                self.trainer.model, self.trainer.tokenizer, [t.prompt for t in tasks], self.samples,
                max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
                generator=self.generator, batch_size=cfg.sampling_chunk_size,
            )  # fmt: skip
        self.measured += len(out)
        n = self.samples
        return np.array([score_responses(t, out.response_text[j * n : (j + 1) * n])[0] for j, t in enumerate(tasks)],
                        dtype=float).reshape(len(tasks), n)

    def zero_var_prob(self, batch: Sequence[Candidate]) -> np.ndarray:
        """P(zero-variance group) at each candidate's measured pass rate: the share of `samples`
        answers of the current policy that the verifier accepts."""
        return zero_var_probability(self.answers(batch).mean(axis=1), self.group_size)

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        return {**super().observe(outcomes), "select/p_oracle_measured": float(self.measured)}

    def state_dict(self) -> dict[str, Any]:
        return {"measured": self.measured, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.measured = int(state["measured"])
        self.generator.set_state(state["generator"])


class PolicyOracleOptions(Config):
    """Options of the bench-only `p-oracle` selector."""

    samples: int = Field(SAMPLES, ge=2)
    """Answers of the current policy per candidate behind its measured pass rate."""
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Keep iff P(zero-variance group) at the measured rate <= threshold (DEPO's default rule)."""


@register_selector("p-oracle", PolicyOracleOptions, bench_only=RUNS_IN)
def _p_oracle(options: PolicyOracleOptions, *, group_size: int, seed: int, estimator: Any) -> PolicyPassRateOracle:
    return PolicyPassRateOracle(group_size=group_size, samples=options.samples, threshold=options.threshold, seed=seed)
