"""Every quality metric of selection and estimation, computed once, on scikit-learn and scipy.

The trainers log these per step (`select/effective_rate`, `estimator/auc_zero_var`, ...) and the
benchmarks report them per run; both call the functions here, so a number means the same thing
wherever it appears (definitions: docs/method.md section 7).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binned_statistic, pearsonr, spearmanr
from sklearn.metrics import precision_recall_curve, roc_auc_score

from depo.types import GroupOutcome


def share(flags: Sequence[bool]) -> float | None:
    """Fraction of True flags (None when empty): effective rate, false-skip rate, ..."""
    if len(flags) == 0:
        return None
    return float(np.mean(np.asarray(flags, dtype=bool)))


def effective_rate(outcomes: Sequence[GroupOutcome]) -> float | None:
    """Share of rolled-out groups that carry a gradient (not zero-variance); None when empty."""
    return share([not o.is_zero_variance for o in outcomes])


def share_of_gain(value: float, baseline: float, ceiling: float) -> float:
    """(value - baseline) / (ceiling - baseline): the share of the ceiling's gain over the baseline
    a method captured (docs/method.md section 7); NaN when the ceiling gains nothing."""
    gain = ceiling - baseline
    return (value - baseline) / gain if gain > 1e-9 else float("nan")


def auc(scores: Sequence[float], labels: Sequence[bool], weights: Sequence[float] | None = None) -> float | None:
    """Area under the ROC curve of `scores` for the positive `labels` (ties count 1/2).

    None when only one class is present (the AUC is undefined there). `weights` are sample
    weights (e.g. the expected-label AUC, where each prompt counts as positive with weight w
    and negative with 1 - w).
    """
    y = np.asarray(labels, dtype=bool)
    if y.size == 0 or y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=float), sample_weight=weights))


def calib_mae(predicted: Sequence[float], target: Sequence[float]) -> float | None:
    """Mean absolute error between predicted and observed pass rates (None when empty)."""
    p = np.asarray(predicted, dtype=float)
    if p.size == 0:
        return None
    return float(np.mean(np.abs(p - np.asarray(target, dtype=float))))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant or has fewer than 2 values."""
    return _correlation(spearmanr, a, b)


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant or has fewer than 2 values."""
    return _correlation(pearsonr, a, b)


def _correlation(fn, a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:  # exactly constant (np.std of one repeated float can be 1e-17)
        return float("nan")
    return float(fn(a, b).statistic)


def reliability_bins(pred: Sequence[float], true: Sequence[float], bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean prediction, mean true value, count) per equal-width bin of the prediction on [0, 1].

    Empty bins have NaN means. The targets may be rates, not only 0/1 labels (which is why this
    is scipy's binned statistic and not scikit-learn's `calibration_curve`, which needs labels).
    """
    pred, true = np.clip(np.asarray(pred, dtype=float), 0.0, 1.0), np.asarray(true, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    means, rates = binned_statistic(pred, [pred, true], "mean", bins=edges).statistic
    counts = binned_statistic(pred, pred, "count", bins=edges).statistic.astype(int)
    return means, rates, counts


def expected_calibration_error(pred: Sequence[float], true: Sequence[float], bins: int = 10) -> float:
    """ECE over equal-width bins: sum_b (n_b / n) |mean pred_b - mean true_b|."""
    means, rates, counts = reliability_bins(pred, true, bins)
    full = counts > 0
    return float(np.sum(counts[full] / counts.sum() * np.abs(means[full] - rates[full])))


def precision_recall(scores: Sequence[float], informative: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of "keep iff score >= t" over every distinct threshold t.

    Precision is the effective rate of the kept prompts, recall the share of all informative
    groups that were kept. scikit-learn's curve, without its artificial (recall 0, precision 1)
    end point.
    """
    precision, recall, _ = precision_recall_curve(np.asarray(informative, dtype=bool), np.asarray(scores, dtype=float))
    return recall[:-1], precision[:-1]


def precision_at_recall(scores: Sequence[float], informative: Sequence[bool], min_recall: float = 0.8) -> float:
    """The best effective rate of any threshold on `scores` that keeps >= min_recall of the informative groups
    (NaN when there is no informative group to recall)."""
    if not np.any(np.asarray(informative, dtype=bool)):
        return float("nan")
    recall, precision = precision_recall(scores, informative)
    ok = recall >= min_recall
    return float(precision[ok].max()) if ok.any() else float("nan")
