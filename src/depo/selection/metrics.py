"""Selection and estimator quality metrics, as small pure functions (logged every step)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` for the positive `labels` (ties count 1/2).

    Mann-Whitney form: AUC = (sum of positive ranks - n+ (n+ + 1) / 2) / (n+ n-), with average
    ranks for ties. None when only one class is present (the AUC is undefined there).
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calib_mae(predicted: Sequence[float], target: Sequence[float]) -> float | None:
    """Mean absolute error between predicted and observed pass rates (None when empty)."""
    p = np.asarray(predicted, dtype=float)
    t = np.asarray(target, dtype=float)
    if p.size == 0:
        return None
    return float(np.mean(np.abs(p - t)))


def share(flags: Sequence[bool]) -> float | None:
    """Fraction of True flags (None when empty): effective rate, false-skip rate, ..."""
    if len(flags) == 0:
        return None
    return float(np.mean(np.asarray(flags, dtype=bool)))
