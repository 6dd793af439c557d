"""MoPPS: per-prompt Beta posteriors and Thompson sampling towards a target pass rate (a peer).

Qu et al., arXiv 2507.04632; the update and the rule are docs/method.md section 5. Like GRESO
(`history`) it knows nothing of a prompt it has not rolled out, so it ranks unseen prompts at
random; its posterior draw is its exploration (a candidate kept by its draw that its posterior
mean ranks below the cut counts as explored). Keep-by-rank is native to it: the rank stream sets
the kept share by its pool (`oversample`); a trainer that asks about one batch at a time (the
refill stream, the replay) keeps `keep_share` of each batch. Graded rewards count as fractional
successes (rewards clipped to [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from depo.config import Config
from depo.metrics import effective_rate
from depo.selection.base import explored_by_rank, top_mask
from depo.selection.registry import register_selector
from depo.types import Candidate, Decisions, GroupOutcome
from depo.zero_variance import group_counts


class MoPPSConfig(Config):
    """MoPPS settings. `discount` is ours (the paper leaves it a hyperparameter); the rest follow it."""

    target: float = Field(0.5, ge=0.0, le=1.0)
    """gamma*: roll out the prompts whose sampled pass rate is closest to this."""
    discount: float = Field(0.9, ge=0.0, le=1.0)
    """lambda: weight of the old posterior at each update (1 = stationary, 0 = last group only)."""
    alpha0: float = Field(1.0, gt=0.0)
    """Prior successes of an unseen prompt."""
    beta0: float = Field(1.0, gt=0.0)
    """Prior failures of an unseen prompt."""
    keep_share: float = Field(0.5, gt=0.0, le=1.0)
    """Share of each asked batch kept when the trainer does not rank a pool itself."""


class MoPPS:
    """Discounted Beta posterior per prompt id; Thompson draws ranked by closeness to the target."""

    name = "mopps"

    def __init__(self, config: MoPPSConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or MoPPSConfig()
        self.rng = np.random.default_rng(int(seed))
        self.posterior: dict[str, tuple[float, float]] = {}  # id -> (alpha, beta) of the rolled-out

    def beta_parameters(self, batch: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
        prior = (self.config.alpha0, self.config.beta0)
        ab = np.array([self.posterior.get(c.prompt_id, prior) for c in batch], dtype=float).reshape(-1, 2)
        return ab[:, 0], ab[:, 1]

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        n = len(batch)
        if n == 0:
            return Decisions.keep_all(0)
        a, b = self.beta_parameters(batch)
        draw = self.rng.beta(a, b)
        priority = -np.abs(draw - self.config.target)
        mean_priority = -np.abs(a / (a + b) - self.config.target)
        n_keep = max(1, math.ceil(self.config.keep_share * n))
        keep = top_mask(priority, n_keep)
        explored = explored_by_rank(keep, mean_priority, n_keep)
        return Decisions(keep=keep.tolist(), explored=explored.tolist(), priority=priority, mean_priority=mean_priority)

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        outcomes = list(outcomes)
        if not outcomes:
            return {}
        cfg, lam = self.config, self.config.discount
        for o in outcomes:
            k, g = group_counts(o.rewards)
            a, b = self.posterior.get(o.prompt_id, (cfg.alpha0, cfg.beta0))
            self.posterior[o.prompt_id] = (lam * a + (1 - lam) * cfg.alpha0 + k, lam * b + (1 - lam) * cfg.beta0 + g - k)
        return {
            "select/effective_rate": effective_rate(outcomes),
            "select/explored": float(sum(bool(o.explored) for o in outcomes)),
            "mopps/tracked": float(len(self.posterior)),
        }

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "posterior": {k: list(v) for k, v in self.posterior.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.posterior = {k: (float(v[0]), float(v[1])) for k, v in state["posterior"].items()}


@register_selector("mopps", MoPPSConfig)
def _mopps(options: MoPPSConfig, *, group_size: int, seed: int, estimator: Any) -> MoPPS:
    return MoPPS(options, seed=seed)
