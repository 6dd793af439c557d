"""`depo bench estimator`'s scores of a pass-rate predictor against measured pass rates.

A group of G binary rewards with pass rate p is zero-variance (all right or all wrong) with
probability P_zv(p) = p^G + (1 - p)^G (docs/method.md section 4.2). A predictor is judged on how
well its P_zv(p_hat) ranks zero-variance groups (AUC) and on the share of informative groups
among the prompts it would keep. The formulas themselves live in depo.metrics and
depo.zero_variance; this module only assembles them into the bench's table.
"""

from __future__ import annotations

import numpy as np

from depo.metrics import auc, expected_calibration_error, pearson, spearman
from depo.zero_variance import zero_var_probability

KEEP_SHARES = (0.3, 0.5, 0.7)
PAPER_WINDOW = (0.15, 0.85)
"""DEPO's keep window on the predicted pass rate (docs/method.md section 2.1)."""


def _auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    value = auc(scores, labels.astype(bool), weights)
    return float("nan") if value is None else value


def keep_top_effective_rate(score: np.ndarray, true: np.ndarray, share: float, group_size: int) -> float:
    """Expected share of informative groups among the `share` of prompts with the highest `score`
    (ties at the cut as in `top_share_mean`: a constant score gets the random rate)."""
    return top_share_mean(score, 1.0 - zero_var_probability(true, group_size), share)


def top_share_mean(score: np.ndarray, values: np.ndarray, share: float) -> float:
    """Mean of `values` over the `share` of rows with the highest `score`, rows tied at the cut
    counted fractionally (equally), so a constant score gives the plain mean."""
    score, values = np.asarray(score, dtype=float), np.asarray(values, dtype=float)
    n_keep = max(1.0, share * len(score))
    cut = np.sort(score)[::-1][int(np.ceil(n_keep)) - 1]
    above, tied = score > cut, score == cut
    weight = above.astype(float) + tied * (n_keep - above.sum()) / tied.sum()
    return float(np.sum(weight * values) / np.sum(weight))


def prediction_metrics(pred: np.ndarray, true: np.ndarray, *, group_size: int, seed: int,
                       zero_var: np.ndarray | None = None) -> dict[str, float]:
    """All of `depo bench estimator`'s metrics for one predictor on the test rows.

    `zero_var`: the predictor's own P(zero-variance group) where it has a predictive
    distribution (what DEPO's selection acts on); else the plug-in value at the predicted rate.
    """
    pred = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    true = np.asarray(true, dtype=np.float64)
    zv_score = zero_var_probability(pred, group_size) if zero_var is None else np.asarray(zero_var, float)
    zv_true = zero_var_probability(true, group_size)
    # one sampled group per prompt (k ~ Binomial(G, p), fixed seed): zero-variance where k is 0 or G
    k = np.random.default_rng(seed).binomial(group_size, np.clip(true, 0.0, 1.0))
    sampled = (k == 0) | (k == group_size)
    # in expectation: each prompt is a zero-variance example with weight P_zv(p) and informative with 1 - P_zv(p)
    labels = np.concatenate([np.ones_like(true), np.zeros_like(true)])
    weights = np.concatenate([zv_true, 1.0 - zv_true])
    out = {
        "spearman": spearman(pred, true),
        "pearson": pearson(pred, true),
        "mae": float(np.mean(np.abs(pred - true))),
        "ece": expected_calibration_error(pred, true),
        "auc_zero_var": _auc(sampled, zv_score),
        "auc_zero_var_expected": _auc(labels, np.concatenate([zv_score, zv_score]), weights),
        # calibration of the probability the selection acts on, against each row's true P(zero-var)
        "ece_zero_var": expected_calibration_error(zv_score, zv_true),
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
    zv_true = zero_var_probability(true, group_size)
    random_eff = float(np.mean(1.0 - zv_true))
    oracle = {f"eff_top{int(s * 100)}": keep_top_effective_rate(1.0 - zv_true, true, s, group_size) for s in KEEP_SHARES}
    random = {f"eff_top{int(s * 100)}": random_eff for s in KEEP_SHARES}
    return {"random": random, "oracle": oracle}
