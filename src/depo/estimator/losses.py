"""The estimator's loss, term by term: score BCE, distill BCE and ranking hinge (docs/method.md section 2.3).

Each term is a small pure function so it can be checked against a hand-worked example. The distill
term is skipped (contributes 0 and is reported as absent) for prompts without log-probs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from depo.errors import DepoError

DISTILL_CLIP = 1e-4


@dataclass(frozen=True)
class LossWeights:
    """Weights and ranking thresholds of the estimator loss (paper defaults)."""

    lambda_d: float = 0.5
    lambda_r: float = 3.0
    delta: float = 0.05
    margin: float = 0.5


def distill_target(mean_logprobs: Sequence[float] | None) -> float | None:
    """t = clip(exp(mean over responses of their mean token log-prob), 1e-4, 1 - 1e-4); None if absent."""
    if mean_logprobs is None or len(mean_logprobs) == 0:
        return None
    values = [float(v) for v in mean_logprobs]
    if not all(math.isfinite(v) for v in values):
        return None
    t = math.exp(sum(values) / len(values))
    return min(max(t, DISTILL_CLIP), 1.0 - DISTILL_CLIP)


def check_labels(values: np.ndarray, what: str) -> None:
    """Pass-rate labels must be finite and in [0, 1]; anything else is a one-line DepoError."""
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0):
        raise DepoError(f"estimator {what} must be pass rates in [0, 1] (mean rewards of binary or [0,1] rewards)")


def score_bce(score_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE(sigmoid(s), y), mean over prompts; y are mean group rewards in [0, 1]."""
    return F.binary_cross_entropy_with_logits(score_logits, y.to(score_logits.dtype))


def distill_bce(distill_logits: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """BCE(sigmoid(d), t), mean over the prompts where `mask` is True; None when no prompt has a target."""
    if not bool(mask.any()):
        return None
    return F.binary_cross_entropy_with_logits(distill_logits[mask], t[mask].to(distill_logits.dtype))


def pair_mask(y: torch.Tensor, delta: float) -> torch.Tensor:
    """mask[i, j] = y_i > y_j + delta: the ordered pairs the ranking loss compares (i clearly easier)."""
    return (y.unsqueeze(1) - y.unsqueeze(0)) > delta


def ranking_hinge(
    score_logits: torch.Tensor, y: torch.Tensor, delta: float, margin: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of max(0, m - (s_i - s_j)) over the pairs of `pair_mask`; 0 (with a graph) if there is none.

    Computed on the dense n x n matrix times the pair mask: the same value as gathering the pairs,
    without gathering (and scattering gradients back to) the ~n^2 / 2 pairs of a large batch.
    """
    mask = pair_mask(y, delta) if mask is None else mask
    count = mask.sum()
    if int(count) == 0:
        return score_logits.sum() * 0.0
    hinge = torch.clamp(margin - (score_logits.unsqueeze(1) - score_logits.unsqueeze(0)), min=0.0)
    return (hinge * mask).sum() / count


def estimator_loss(
    score_logits: torch.Tensor,
    distill_logits: torch.Tensor | None,
    y: torch.Tensor,
    t: torch.Tensor | None = None,
    t_mask: torch.Tensor | None = None,
    weights: LossWeights = LossWeights(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and its parts (as floats, for logging). Pass t=None to drop the distill term."""
    bce = score_bce(score_logits, y)
    mask = pair_mask(y, weights.delta)
    rank = ranking_hinge(score_logits, y, weights.delta, weights.margin, mask=mask)
    total = bce + weights.lambda_r * rank
    parts = {"loss_score": bce.item(), "loss_rank": rank.item(), "rank_pairs": float(mask.sum())}
    if t is not None and distill_logits is not None and weights.lambda_d > 0:
        t_mask = t_mask if t_mask is not None else torch.ones_like(t, dtype=torch.bool)
        distill = distill_bce(distill_logits, t, t_mask)
        if distill is not None:
            total = total + weights.lambda_d * distill
            parts["loss_distill"] = distill.item()
    parts["loss"] = total.item()
    return total, parts
