"""P(zero-variance group): the plug-in p^G + (1-p)^G and the Beta-binomial version, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.zero_variance import beta_binomial_zero_var, zero_var_probability


def test_plug_in_zero_variance_probability() -> None:
    assert zero_var_probability(0.5, 8) == pytest.approx(2 / 256)
    assert zero_var_probability(0.15, 8) == pytest.approx(0.85**8 + 0.15**8)
    assert zero_var_probability(0.0, 8) == 1.0 and zero_var_probability(1.0, 4) == 1.0


def test_beta_binomial_zero_variance_hand_worked() -> None:
    # Beta(1, 1) = uniform p: K is uniform on 0..G, so P(0 or G) = 2 / (G + 1).
    for g in (2, 4, 8, 16):
        assert beta_binomial_zero_var(1.0, 1.0, g) == pytest.approx(2 / (g + 1))
    # G = 2: P(K=0) = b(b+1) / ((a+b)(a+b+1)), P(K=2) = a(a+1) / ((a+b)(a+b+1)).
    a, b = 3.5, 6.5
    assert beta_binomial_zero_var(a, b, 2) == pytest.approx((b * (b + 1) + a * (a + 1)) / ((a + b) * (a + b + 1)))


@settings(max_examples=50, deadline=None)
@given(p=st.floats(0.01, 0.99), g=st.integers(2, 32))
def test_beta_binomial_tends_to_plug_in_when_certain(p: float, g: int) -> None:
    strength = 1e7  # Beta(n p, n (1-p)) concentrates on p
    assert beta_binomial_zero_var(strength * p, strength * (1 - p), g) == pytest.approx(zero_var_probability(p, g), rel=1e-3, abs=1e-9)
    # and uncertainty never lowers it (Jensen: p^G + (1-p)^G is convex)
    assert beta_binomial_zero_var(2 * p, 2 * (1 - p), g) >= zero_var_probability(p, g) - 1e-12


def test_logit_normal_tends_to_plug_in_when_certain() -> None:
    from scipy.special import expit, logit

    from depo.zero_variance import logit_normal_extremes, logit_normal_mean

    p = np.array([0.1, 0.5, 0.8])
    none, every = logit_normal_extremes(logit(p), np.full(3, 1e-6), 8)
    np.testing.assert_allclose(none, (1 - p) ** 8, rtol=5e-2, atol=1e-5)  # the grid steps 0.05 in logit
    np.testing.assert_allclose(every, p**8, rtol=5e-2, atol=1e-5)  # the grid steps 0.05 in logit
    np.testing.assert_allclose(logit_normal_mean(logit(p), 1e-6), p, atol=5e-3)
    # spread raises P(zero-variance) (Jensen) and, at mean 0, is symmetric
    wide_none, wide_every = logit_normal_extremes(np.zeros(1), np.full(1, 4.0), 8)
    assert wide_none[0] == pytest.approx(wide_every[0]) and wide_none[0] + wide_every[0] > 2 * 0.5**8 * 5
    # Monte Carlo check of the grid integral
    rng = np.random.default_rng(0)
    z = rng.normal(0.7, 1.3, 400_000)
    assert logit_normal_extremes(np.array([0.7]), np.array([1.69]), 4)[1][0] == pytest.approx(np.mean(expit(z) ** 4), rel=1e-2)


def test_logit_normal_evidence_moves_toward_what_was_seen() -> None:
    from depo.zero_variance import logit_normal_extremes

    mean, var = np.zeros(2), np.ones(2)
    none, every = logit_normal_extremes(mean, var, 8, successes=np.array([8.0, 0.0]), failures=np.array([0.0, 8.0]))
    assert every[0] > 0.2 > 0.01 > every[1] and none[1] > 0.2 > 0.01 > none[0]
