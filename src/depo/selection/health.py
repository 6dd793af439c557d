"""Estimator health: decide when DEPO must stop trusting its difficulty estimator (docs/method.md 4.7).

Two silent failures: collapse (the standard deviation of a step's predicted pass rates is below
`min_spread`) and calibration drift (|p_hat - mean reward| of the rolled-out groups, pooled over
the last `window` steps, above `max_calib_mae`). After `patience` consecutive unhealthy steps the
selector keeps every prompt until the first healthy step. A signal that cannot be measured (fewer
than two predictions, no rolled-out group with a recorded prediction in the window) counts as
healthy: no evidence is no alarm. Non-finite predictions count as a collapse.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np


class EstimatorHealth:
    """Per-step collapse / calibration check with a consecutive-steps trigger (state is checkpointed)."""

    def __init__(self, *, min_spread: float, max_calib_mae: float, window: int, patience: int) -> None:
        self.min_spread = float(min_spread)
        self.max_calib_mae = float(max_calib_mae)
        self.window = int(window)
        self.patience = int(patience)
        self.fallback = False  # True while selection keeps everything
        self.unhealthy_streak = 0
        self.fallback_steps = 0  # steps spent in fallback so far (for the summary)
        self._preds: list[float] = []  # predictions made since the last end_step
        self._errors: deque[list[float]] = deque(maxlen=self.window)  # |pred - target| per step

    def record_predictions(self, pred: np.ndarray) -> None:
        """Predictions of candidates scored for the current step (all of them, kept or not)."""
        self._preds.extend(float(p) for p in np.asarray(pred, dtype=float).reshape(-1))

    def end_step(self, preds: Sequence[float], targets: Sequence[float], *, check: bool = True) -> dict[str, float]:
        """Close one step: `preds` / `targets` are the select-time predictions and mean rewards of
        this step's rolled-out groups. With `check=False` (warm-up) the signals are measured and
        logged but do not count towards the trigger. Returns metrics; updates the fallback state.
        """
        metrics: dict[str, float] = {}
        spread = float(np.std(self._preds)) if len(self._preds) >= 2 else None
        self._preds = []
        self._errors.append([abs(float(p) - float(t)) for p, t in zip(preds, targets)])
        pooled = [e for step in self._errors for e in step]
        mae = float(np.mean(pooled)) if pooled else None
        # NaN/inf predictions are the worst collapse (every rule comparison is False): the
        # negated comparisons make a non-finite spread or error count as unhealthy.
        collapsed = spread is not None and not spread >= self.min_spread
        drifted = mae is not None and not mae <= self.max_calib_mae
        if spread is not None and np.isfinite(spread):
            metrics["select/pred_spread"] = spread
        if mae is not None and np.isfinite(mae):
            metrics["estimator/rolling_calib_mae"] = mae
        metrics["select/health_collapsed"] = float(collapsed)
        metrics["select/health_drifted"] = float(drifted)
        if check:
            self.unhealthy_streak = self.unhealthy_streak + 1 if (collapsed or drifted) else 0
            self.fallback = self.unhealthy_streak >= self.patience
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "fallback": self.fallback,
            "unhealthy_streak": self.unhealthy_streak,
            "fallback_steps": self.fallback_steps,
            "preds": list(self._preds),
            "errors": [list(e) for e in self._errors],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fallback = bool(state["fallback"])
        self.unhealthy_streak = int(state["unhealthy_streak"])
        self.fallback_steps = int(state["fallback_steps"])
        self._preds = [float(p) for p in state["preds"]]
        self._errors = deque(([float(e) for e in step] for step in state["errors"]), maxlen=self.window)
