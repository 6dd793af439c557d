"""Accuracy against share-to-small curves for routing rules (DEPO paper section 5, Table 3).

A routing rule with one knob (tau for the threshold rule, lambda for the gain-aware rule) orders
the queries by a score: the threshold rule sends a query to the small model iff p_small >= tau,
so lowering tau admits queries in decreasing order of p_small; the gain rule with two models sends
a query to the small model iff p_large - p_small <= lambda * (cost_large - cost_small), so raising
lambda admits queries in increasing order of predicted gain. Sweeping the knob over every distinct
score value is therefore the same as taking the top-k queries by score for k = 0..n, and the
expected accuracy of a routing is the mean true success rate of the chosen model per query:

    acc = (1/n) * sum_q [ small(q) * p_small(q) + (1 - small(q)) * p_large(q) ]

Ties in the score are broken by row order, so every curve is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from depo.errors import DepoError


@dataclass(frozen=True)
class CurvePoint:
    share: float  # fraction of queries sent to the small model
    accuracy: float  # expected accuracy (mean true success rate of the chosen model)
    knob: float  # the score cut that yields this share: tau, or for the gain rule (score p_small - p_large) -lambda * cost gap


def _check(ps: np.ndarray, pl: np.ndarray) -> None:
    if ps.shape != pl.shape or ps.ndim != 1 or ps.size == 0:
        raise DepoError("routing curve: true success rates must be two non-empty vectors of equal length")


def routed_accuracy(to_small: np.ndarray, ps: np.ndarray, pl: np.ndarray) -> float:
    """Expected accuracy when queries with to_small=True go to the small model."""
    return float(np.where(to_small, ps, pl).mean())


def accuracy_at_share(score: np.ndarray, ps: np.ndarray, pl: np.ndarray, share: float) -> CurvePoint:
    """Send round(share * n) queries with the highest score to the small model."""
    ps, pl = np.asarray(ps, dtype=np.float64), np.asarray(pl, dtype=np.float64)
    _check(ps, pl)
    if not 0.0 <= share <= 1.0:
        raise DepoError(f"share must be in [0, 1], got {share}")
    n = len(ps)
    k = int(round(share * n))
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    knob = float(np.asarray(score)[order[k - 1]]) if k > 0 else float("inf")
    return CurvePoint(share=k / n, accuracy=routed_accuracy(mask, ps, pl), knob=knob)


def random_curve(ps: np.ndarray, pl: np.ndarray, shares: Sequence[float]) -> list[CurvePoint]:
    """Random routing: a uniformly random share s of queries goes small. Its expected accuracy is
    exactly s * mean(p_small) + (1 - s) * mean(p_large), reported without sampling noise."""
    ps, pl = np.asarray(ps, dtype=np.float64), np.asarray(pl, dtype=np.float64)
    _check(ps, pl)
    a, b = float(ps.mean()), float(pl.mean())
    return [CurvePoint(share=float(s), accuracy=s * a + (1 - s) * b, knob=float("nan")) for s in shares]
