"""P(zero-variance group): the plug-in p^G + (1-p)^G and the Beta-binomial version, by hand."""

from __future__ import annotations

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
