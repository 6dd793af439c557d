"""Test doubles shared by the selection tests (pytest puts this folder on sys.path)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from depo.types import GroupOutcome


class FakeEstimator:
    """Predicts a fixed pass rate per text (default 0.5); each update nudges the predictions of
    the observed texts halfway to their mean reward, so its state matters for resumption."""

    def __init__(self, rates: dict[str, float] | None = None, default: float = 0.5) -> None:
        self.rates = dict(rates or {})
        self.default = default
        self.updates = 0
        self.predicted = 0

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        self.predicted += len(texts)
        return np.array([self.rates.get(t, self.default) for t in texts], dtype=float)

    def update(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        self.updates += 1
        for o in outcomes:
            self.rates[o.text] = 0.5 * self.rates.get(o.text, self.default) + 0.5 * o.mean_reward
        return {"estimator/loss": 0.25, "score_bce": 0.5}

    def state_dict(self) -> dict:
        return {"rates": dict(self.rates), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.rates = dict(state["rates"])
        self.updates = state["updates"]
