"""GRESO: skip prompts whose recent groups were all zero-variance (a history-only peer).

Zheng et al., arXiv 2506.02177 (code github.com/Infini-AI-Lab/GRESO); the rule is docs/method.md
section 5: a prompt whose last z rollouts were zero-variance is rolled out with probability
max(p^z, p_min), p = p_easy or p_hard by the kind of its last zero-variance group, both adapting
each step by delta_p towards their target shares of the batch (defaults: `HistoryConfig`).
Graded rewards: a zero-variance group counts as "easy" when its mean reward is >= 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from depo.config import Config
from depo.metrics import effective_rate
from depo.selection.registry import register_selector
from depo.types import Candidate, Decisions, GroupOutcome


def explore_probability(p: float, streak: int, p_min: float = 0.01) -> float:
    """GRESO's probability of rolling out a prompt with `streak` zero-variance epochs in a row."""
    if streak <= 0:
        return 1.0
    return max(p**streak, p_min)


class HistoryConfig(Config):
    """GRESO's settings (defaults from the release's training scripts)."""

    p_easy: float = Field(0.5, ge=0.0, le=1.0)
    """Initial exploration base for prompts whose last zero-variance group was all-correct."""
    p_hard: float = Field(0.5, ge=0.0, le=1.0)
    """Initial exploration base for prompts whose last zero-variance group was all-wrong."""
    target_zero_variance: float = Field(0.25, ge=0.0, le=1.0)
    """Zero-variance share of the rolled-out batch the bases adapt towards (1/3 easy, 2/3 hard)."""
    delta_p: float = Field(0.01, ge=0.0)
    """Step of the bases' adaptation per RL step."""
    p_min: float = Field(0.01, ge=0.0, le=1.0)
    """Floor of the exploration probability, so no prompt is dropped for good."""


class History:
    """GRESO-style per-prompt selector (knows nothing about unseen prompts)."""

    name = "history"

    def __init__(self, config: HistoryConfig | None = None, *, seed: int = 0) -> None:
        self.config = cfg = config or HistoryConfig()
        self.rng = np.random.default_rng(int(seed))
        self.p_easy, self.p_hard = cfg.p_easy, cfg.p_hard
        self.alpha_easy = cfg.target_zero_variance / 3.0
        self.alpha_hard = 2.0 * cfg.target_zero_variance / 3.0
        self.delta_p, self.p_min = cfg.delta_p, cfg.p_min
        self.streak: dict[str, int] = {}
        self.easy: dict[str, bool] = {}  # kind of the last zero-variance group: all-correct (True) or not

    def explore_probabilities(self, batch: Sequence[Candidate]) -> np.ndarray:
        """Each candidate's probability of being rolled out (1 off a zero-variance streak); also its priority."""
        return np.array([explore_probability(self.p_easy if self.easy.get(c.prompt_id) else self.p_hard,
                                             self.streak.get(c.prompt_id, 0), self.p_min) for c in batch])

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        probs = self.explore_probabilities(batch)
        keep = self.rng.random(len(batch)) < probs
        # A prompt on a zero-variance streak that is rolled out anyway is GRESO's exploration.
        explored = keep & (probs < 1.0)
        return Decisions(keep=keep.tolist(), explored=explored.tolist(), priority=probs)

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        outcomes = list(outcomes)
        if not outcomes:
            return {}
        n_easy = n_hard = 0
        for o in outcomes:
            if o.is_zero_variance:
                easy = o.mean_reward >= 0.5
                n_easy += easy
                n_hard += not easy
                self.streak[o.prompt_id] = self.streak.get(o.prompt_id, 0) + 1
                self.easy[o.prompt_id] = easy
            else:
                self.streak[o.prompt_id] = 0
        easy_share, hard_share = n_easy / len(outcomes), n_hard / len(outcomes)
        self.p_easy = self._adapt(self.p_easy, easy_share, self.alpha_easy)
        self.p_hard = self._adapt(self.p_hard, hard_share, self.alpha_hard)
        return {
            "select/effective_rate": effective_rate(outcomes),
            "select/explored": float(sum(bool(o.explored) for o in outcomes)),
            "history/zero_var_easy_share": easy_share,
            "history/zero_var_hard_share": hard_share,
            "history/p_easy": self.p_easy,
            "history/p_hard": self.p_hard,
            "history/tracked": float(len(self.streak)),
        }

    def _adapt(self, p: float, observed: float, target: float) -> float:
        p = p - self.delta_p if observed > target else p + self.delta_p
        return float(min(1.0, max(self.p_min, p)))

    def state_dict(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "p_easy": self.p_easy,
            "p_hard": self.p_hard,
            "streak": dict(self.streak),
            "easy": dict(self.easy),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.p_easy, self.p_hard = float(state["p_easy"]), float(state["p_hard"])
        self.streak = {k: int(v) for k, v in state["streak"].items()}
        self.easy = {k: bool(v) for k, v in state["easy"].items()}


@register_selector("history", HistoryConfig)
def _history(options: HistoryConfig, *, group_size: int, seed: int, estimator: Any) -> History:
    return History(options, seed=seed)
