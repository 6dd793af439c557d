"""Zero-variance groups: the test on a group's rewards and the probability of one before the rollout.

A group of G rewards is *zero-variance* when every response got the same reward: all GRPO
advantages are then 0 and the group gives no gradient (docs/method.md section 1). For graded
rewards this is std(rewards) <= 1e-6, not mean in {0, 1} (section 4.5).

For a prompt with pass rate p, the G binary rewards are i.i.d. Bernoulli(p), so
    P(zero-variance) = p^G + (1 - p)^G                                   (section 4.2)
When p itself is uncertain, p ~ Beta(a, b), the count of successes K is Beta-binomial and
    P(K = 0) = B(a, b + G) / B(a, b),   P(K = G) = B(a + G, b) / B(a, b)
(B the Beta function). Uncertainty moves mass to the extremes: a Beta(1, 1) prompt (mean 0.5)
is zero-variance with probability 2/(G+1), far above the plug-in 2 * 0.5^G.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import betaln

ZERO_VARIANCE_STD = 1e-6
"""A group is zero-variance when the std of its rewards is at most this (graded rewards too)."""


def is_zero_variance(rewards: Sequence[float]) -> bool:
    """True when every response got the same reward (std <= 1e-6): GRPO advantages are all 0."""
    return len(rewards) == 0 or float(np.std(np.asarray(rewards, dtype=float))) <= ZERO_VARIANCE_STD


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


def beta_binomial_extremes(
    a: np.ndarray | float, b: np.ndarray | float, group_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(P(K = 0), P(K = G)): the all-wrong and the all-correct parts of P(zero-variance)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    base = betaln(a, b)
    return np.exp(betaln(a, b + group_size) - base), np.exp(betaln(a + group_size, b) - base)
