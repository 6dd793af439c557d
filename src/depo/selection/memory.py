"""Per-prompt memory: a discounted Beta posterior over each prompt's pass rate (docs/method.md 4.4).

The prior is the estimator's prediction p_hat with pseudo-count n0, the evidence the prompt's own
past groups, each weighted 0.5 ** (age / half_life) so the posterior follows the improving policy:
an unseen prompt's posterior is the prior (the text alone), a seen one's mixes both. Graded
rewards in [0, 1] count as fractional successes (rewards are clipped to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from depo.errors import DepoError
from depo.zero_variance import group_counts

P_CLIP = 1e-4  # keeps the prior's Beta parameters positive when p_hat is 0 or 1


class BetaMemory:
    """Discounted success/failure evidence per prompt id, turned into Beta posteriors."""

    def __init__(self, prior_strength: float = 2.0, half_life: float = 100.0) -> None:
        if prior_strength <= 0:
            raise DepoError(f"memory prior strength n0 must be > 0, got {prior_strength}")
        if half_life <= 0:
            raise DepoError(f"memory half-life must be > 0 steps, got {half_life}")
        self.prior_strength = float(prior_strength)
        self.half_life = float(half_life)
        self._evidence: dict[str, tuple[float, float, int]] = {}  # id -> (s, f, step of last update)

    def __len__(self) -> int:
        return len(self._evidence)

    def __contains__(self, prompt_id: str) -> bool:
        return prompt_id in self._evidence

    def _decay(self, steps: float) -> float:
        return 0.5 ** (max(steps, 0.0) / self.half_life)

    def evidence(self, prompt_ids: Sequence[str], step: int) -> tuple[np.ndarray, np.ndarray]:
        """Discounted (successes, failures) of each prompt as seen at `step` (0, 0 when unseen)."""
        s = np.zeros(len(prompt_ids))
        f = np.zeros(len(prompt_ids))
        for i, pid in enumerate(prompt_ids):
            rec = self._evidence.get(pid)
            if rec is not None:
                w = self._decay(step - rec[2])
                s[i], f[i] = rec[0] * w, rec[1] * w
        return s, f

    def posterior(self, prompt_ids: Sequence[str], prior_mean: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Beta(a, b) parameters of each prompt's pass rate at `step`, prior mean = p_hat."""
        p = np.clip(np.asarray(prior_mean, dtype=float), P_CLIP, 1.0 - P_CLIP)
        s, f = self.evidence(prompt_ids, step)
        return self.prior_strength * p + s, self.prior_strength * (1.0 - p) + f

    def update(self, prompt_id: str, rewards: Sequence[float], step: int) -> None:
        """Add one rolled-out group of `prompt_id` observed at `step`."""
        k, g = group_counts(rewards)
        s, f, last = self._evidence.get(prompt_id, (0.0, 0.0, step))  # unseen: no evidence to decay
        w = self._decay(step - last)
        self._evidence[prompt_id] = (s * w + k, f * w + g - k, step)

    def state_dict(self) -> dict:
        return {
            "prior_strength": self.prior_strength,
            "half_life": self.half_life,
            "evidence": {k: list(v) for k, v in self._evidence.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.prior_strength = float(state["prior_strength"])
        self.half_life = float(state["half_life"])
        self._evidence = {k: (float(v[0]), float(v[1]), int(v[2])) for k, v in state["evidence"].items()}
