"""Zero-variance groups: the test on a group's rewards and the probability of one before the rollout.

A group of G rewards is *zero-variance* when every response got the same reward: all GRPO
advantages are then 0 and the group gives no gradient (docs/method.md section 1). For graded
rewards this is std(rewards) <= 1e-6, not mean in {0, 1} (section 4.5). Its probability before
the rollout: the plug-in p^G + (1 - p)^G, the Beta-binomial when p ~ Beta(a, b) (section 4.2),
and, with the Bayesian estimator's logit-normal predictive (section 4.10), the expectations
    P(K = 0) = E[(1 - sigmoid(z))^G],   P(K = G) = E[sigmoid(z)^G]
under N(z; m, v) sigmoid(z)^s (1 - sigmoid(z))^f (s successes and f failures of the prompt's own
discounted past groups), computed on a fixed grid of z (the posterior can be far narrower than
the prior).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import betaln, expit, gammaln, log_expit, logsumexp

ZERO_VARIANCE_STD = 1e-6
"""A group is zero-variance when the std of its rewards is at most this (graded rewards too)."""


def is_zero_variance(rewards: Sequence[float]) -> bool:
    """True when every response got the same reward (std <= 1e-6): GRPO advantages are all 0."""
    return len(rewards) == 0 or float(np.std(np.asarray(rewards, dtype=float))) <= ZERO_VARIANCE_STD


def group_counts(rewards: Sequence[float]) -> tuple[float, float]:
    """(successes k, responses G) of one group, the Beta-binomial's counts: graded rewards, clipped
    to [0, 1], count as fractional successes."""
    r = np.clip(np.asarray(rewards, dtype=float), 0.0, 1.0)
    return float(r.sum()), float(len(r))


def zero_var_probability(p: np.ndarray | float, group_size: int) -> np.ndarray:
    """Plug-in P(zero-variance group) = p^G + (1 - p)^G for a known pass rate p."""
    none, every = zero_var_extremes(p, group_size)
    return none + every


def zero_var_extremes(p: np.ndarray | float, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Plug-in ((1 - p)^G, p^G): the all-wrong and the all-correct parts of `zero_var_probability`."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    return (1.0 - p) ** group_size, p**group_size


def beta_binomial_zero_var(a: np.ndarray | float, b: np.ndarray | float, group_size: int) -> np.ndarray:
    """P(0 or G successes out of G) when the pass rate is Beta(a, b) distributed (a, b > 0)."""
    none, every = beta_binomial_extremes(a, b, group_size)
    return none + every


def beta_binomial_extremes(a: np.ndarray | float, b: np.ndarray | float,
                           group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(K = 0), P(K = G)): the all-wrong and the all-correct parts of P(zero-variance)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    base = betaln(a, b)
    return np.exp(betaln(a, b + group_size) - base), np.exp(betaln(a + group_size, b) - base)


_Z_GRID = np.linspace(-12.0, 12.0, 481)


def logit_normal_extremes(
    mean: np.ndarray, var: np.ndarray, group_size: int,
    successes: np.ndarray | None = None, failures: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(K = 0), P(K = G)) when p = sigmoid(z), z ~ N(mean, var), times the binomial likelihood
    of `successes` / `failures` already seen (module doc); one value per row of `mean`."""
    mean, var = np.asarray(mean, float).reshape(-1, 1), np.asarray(var, float).reshape(-1, 1)
    z = _Z_GRID[None, :]
    log_w = -0.5 * (z - mean) ** 2 / np.maximum(var, 1e-8)
    if successes is not None:
        s, f = np.asarray(successes, float).reshape(-1, 1), np.asarray(failures, float).reshape(-1, 1)
        log_w = log_w + s * log_expit(z) + f * log_expit(-z)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    p = expit(_Z_GRID)
    return w @ (1.0 - p) ** group_size, w @ p**group_size


def logit_normal_log_likelihood(mean: np.ndarray, var: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """log P(k of n) per row when k ~ Binomial(n, sigmoid(z)), z ~ N(mean, var) (the same grid,
    the normal's weights normalised on it)."""
    mean, var = np.asarray(mean, float).reshape(-1, 1), np.asarray(var, float).reshape(-1, 1)
    k, n = np.asarray(k, float).reshape(-1, 1), np.asarray(n, float).reshape(-1, 1)
    z = _Z_GRID[None, :]
    log_prior = -0.5 * (z - mean) ** 2 / np.maximum(var, 1e-8)
    log_prior = log_prior - logsumexp(log_prior, axis=1, keepdims=True)
    log_binom = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * log_expit(z) + (n - k) * log_expit(-z)
    return logsumexp(log_prior + log_binom, axis=1)


def logit_normal_mean(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """E[sigmoid(z)] for z ~ N(mean, var): the predicted pass rate (same grid)."""
    mean, var = np.broadcast_arrays(np.asarray(mean, float), np.asarray(var, float))
    log_w = -0.5 * (_Z_GRID[None, :] - mean.reshape(-1, 1)) ** 2 / np.maximum(var.reshape(-1, 1), 1e-8)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return ((w @ expit(_Z_GRID)) / w.sum(axis=1)).reshape(mean.shape)
