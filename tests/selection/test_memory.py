"""The per-prompt discounted Beta memory (docs/method.md section 4.4), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from depo.errors import DepoError
from depo.selection.memory import BetaMemory
from depo.zero_variance import beta_binomial_zero_var


def test_memory_posterior_hand_worked() -> None:
    mem = BetaMemory(prior_strength=4.0, half_life=10.0)
    a, b = mem.posterior(["q"], np.array([0.25]), step=0)
    assert (a[0], b[0]) == pytest.approx((1.0, 3.0))  # unseen: the estimator's prior alone
    mem.update("q", [1, 1, 0, 0, 0, 0, 0, 0], step=0)  # k = 2 of 8
    mem.update("q", [1, 1, 1, 1, 0, 0, 0, 0], step=10)  # one half-life later, k = 4 of 8
    # At step 20: s = (2 * 0.5 + 4) * 0.5 = 2.5, f = (6 * 0.5 + 4) * 0.5 = 3.5
    s, f = mem.evidence(["q", "unseen"], step=20)
    assert s == pytest.approx([2.5, 0.0]) and f == pytest.approx([3.5, 0.0])
    a, b = mem.posterior(["q"], np.array([0.25]), step=20)
    assert (a[0], b[0]) == pytest.approx((3.5, 6.5))
    assert beta_binomial_zero_var(a, b, 2)[0] == pytest.approx(64.5 / 110)
    # Graded rewards count as fractional successes (clipped to [0, 1]).
    mem.update("g", [0.25, 0.75, 1.5], step=20)
    s, f = mem.evidence(["g"], step=20)
    assert (s[0], f[0]) == pytest.approx((2.0, 1.0))


def test_memory_state_round_trip_and_errors() -> None:
    mem = BetaMemory(2.0, 5.0)
    mem.update("x", [1, 0, 1], step=3)
    other = BetaMemory()
    other.load_state_dict(mem.state_dict())
    np.testing.assert_allclose(other.posterior(["x"], np.array([0.5]), 9), mem.posterior(["x"], np.array([0.5]), 9))
    with pytest.raises(DepoError):
        BetaMemory(prior_strength=0)
    with pytest.raises(DepoError):
        BetaMemory(half_life=-1)
