"""Metrics of a pass-rate predictor against measured pass rates (issue 4, `depo bench estimator`).

A group of G binary rewards with pass rate p is zero-variance (all right or all wrong) with
probability P_zv(p) = p^G + (1 - p)^G (SPEC.md section 4, "A fixed window ignores G"). A
predictor is judged on how well its P_zv(p_hat) ranks zero-variance groups (AUC) and on the
share of informative groups among the prompts it would keep.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

KEEP_SHARES = (0.3, 0.5, 0.7)
PAPER_WINDOW = (0.15, 0.85)
"""DEPO's keep window on the predicted pass rate (SPEC.md section 2, from the reference code)."""


def p_zero_variance(p: np.ndarray, group_size: int) -> np.ndarray:
    """P(all G rewards equal) = p^G + (1 - p)^G for pass rate p."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    return p**group_size + (1.0 - p) ** group_size


def expected_calibration_error(pred: np.ndarray, true: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width bins of the prediction: sum_b (n_b / n) |mean pred_b - mean true_b|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(pred, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(pred[mask].mean() - true[mask].mean())
    return float(total)


def reliability_bins(pred: np.ndarray, true: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean prediction, mean true rate, count) per equal-width bin, for the reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(pred, edges[1:-1]), 0, bins - 1)
    means, rates, counts = np.full(bins, np.nan), np.full(bins, np.nan), np.zeros(bins, dtype=int)
    for b in range(bins):
        mask = which == b
        counts[b] = int(mask.sum())
        if counts[b]:
            means[b], rates[b] = pred[mask].mean(), true[mask].mean()
    return means, rates, counts


def _safe_corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(fn(a, b)[0])


def _auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    if weights is None:
        if labels.min() == labels.max():
            return float("nan")
        return float(roc_auc_score(labels, scores))
    return float(roc_auc_score(labels, scores, sample_weight=weights))


def sampled_zero_variance(true: np.ndarray, group_size: int, seed: int) -> np.ndarray:
    """One sampled group per prompt (k ~ Binomial(G, p), fixed seed): True where k is 0 or G."""
    k = np.random.default_rng(seed).binomial(group_size, np.clip(true, 0.0, 1.0))
    return (k == 0) | (k == group_size)


def keep_top_effective_rate(score: np.ndarray, true: np.ndarray, share: float, group_size: int) -> float:
    """Expected share of informative groups among the `share` of prompts with the highest `score`.

    Prompts tied at the cut are kept fractionally (equally), so a constant score gets the random
    rate instead of whatever the row order happens to favour.
    """
    informative = 1.0 - p_zero_variance(true, group_size)
    n_keep = max(1.0, share * len(score))
    cut = np.sort(score)[::-1][int(np.ceil(n_keep)) - 1]
    above, tied = score > cut, score == cut
    weight = above.astype(float) + tied * (n_keep - above.sum()) / tied.sum()
    return float(np.sum(weight * informative) / np.sum(weight))


def prediction_metrics(pred: np.ndarray, true: np.ndarray, *, group_size: int, seed: int) -> dict[str, float]:
    """All of `depo bench estimator`'s metrics for one predictor on the test rows."""
    pred = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    true = np.asarray(true, dtype=np.float64)
    zv_score = p_zero_variance(pred, group_size)  # predicted P(zero-variance group)
    zv_true = p_zero_variance(true, group_size)
    sampled = sampled_zero_variance(true, group_size, seed)
    # in expectation: each prompt is a zero-variance example with weight P_zv(p) and informative with 1 - P_zv(p)
    labels = np.concatenate([np.ones_like(true), np.zeros_like(true)])
    weights = np.concatenate([zv_true, 1.0 - zv_true])
    out = {
        "spearman": _safe_corr(spearmanr, pred, true),
        "pearson": _safe_corr(pearsonr, pred, true),
        "mae": float(np.mean(np.abs(pred - true))),
        "ece": expected_calibration_error(pred, true),
        "auc_zero_var": _auc(sampled.astype(int), zv_score),
        "auc_zero_var_expected": _auc(labels, np.concatenate([zv_score, zv_score]), weights),
    }
    informative_score = 1.0 - zv_score
    for share in KEEP_SHARES:
        out[f"eff_top{int(share * 100)}"] = keep_top_effective_rate(informative_score, true, share, group_size)
    lo, hi = PAPER_WINDOW
    kept = (pred >= lo) & (pred <= hi)
    out["window_keep"] = float(kept.mean())
    out["window_eff"] = float(np.mean(1.0 - zv_true[kept])) if kept.any() else float("nan")
    return out


def reference_rows(true: np.ndarray, *, group_size: int) -> dict[str, dict[str, float]]:
    """Random keeping (effective rate of everything) and the oracle that ranks by the true rate."""
    zv_true = p_zero_variance(true, group_size)
    random_eff = float(np.mean(1.0 - zv_true))
    oracle = {f"eff_top{int(s * 100)}": keep_top_effective_rate(1.0 - zv_true, true, s, group_size) for s in KEEP_SHARES}
    random = {f"eff_top{int(s * 100)}": random_eff for s in KEEP_SHARES}
    return {"random": random, "oracle": oracle}
