"""Hand-worked checks of the selection math: zero-variance probabilities, the memory posterior,
GRESO's exploration probability and adaptation, AUC and calibration MAE."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.errors import DepoError
from depo.metrics import auc, calib_mae, share
from depo.selection.history import History, HistoryConfig, explore_probability
from depo.selection.memory import BetaMemory
from depo.types import Candidate, GroupOutcome
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


def test_auc_hand_worked() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert auc([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.75)  # tie counts 1/2
    assert auc([0.9, 0.1], [True, False]) == 1.0 and auc([0.9, 0.1], [False, True]) == 0.0
    assert auc([0.3, 0.4], [True, True]) is None


def test_calibration_mae_and_share() -> None:
    assert calib_mae([0.2, 0.9], [0.0, 1.0]) == pytest.approx(0.15)
    assert calib_mae([], []) is None
    assert share([True, False, False, False]) == 0.25 and share([]) is None


def test_greso_exploration_probability_hand_worked() -> None:
    assert explore_probability(0.5, 0) == 1.0
    assert explore_probability(0.5, 1) == 0.5
    assert explore_probability(0.5, 3) == 0.125  # skip probability 0.875
    assert explore_probability(0.5, 7) == 0.01  # 0.5^7 = 0.0078 is floored at 0.01


def _group(pid: str, rewards: list[float]) -> GroupOutcome:
    return GroupOutcome(prompt_id=pid, text=pid, rewards=tuple(rewards))


def test_greso_streaks_and_adaptation_hand_worked() -> None:
    h = History(seed=0)  # p_easy = p_hard = 0.5, alpha_easy = 0.25/3, alpha_hard = 0.5/3, delta 0.01
    out = [_group("e", [1] * 4), _group("e2", [1] * 4), _group("m", [1, 0, 1, 0]), _group("m2", [0, 1, 1, 1])]
    m = h.observe(out)
    # easy zero-variance share 2/4 > 0.083 -> p_easy 0.49; hard share 0 < 0.167 -> p_hard 0.51
    assert m["history/p_easy"] == pytest.approx(0.49) and m["history/p_hard"] == pytest.approx(0.51)
    assert m["select/effective_rate"] == 0.5
    assert h.streak == {"e": 1, "e2": 1, "m": 0, "m2": 0}
    h.observe([_group("e", [1] * 4), _group("m", [0] * 4)])
    assert h.streak["e"] == 2 and h.streak["m"] == 1 and h.easy == {"e": True, "e2": True, "m": False}
    probs = h.explore_probabilities([Candidate("e", ""), Candidate("m", ""), Candidate("new", "")])
    assert probs == pytest.approx([h.p_easy**2, h.p_hard, 1.0])
    h.observe([_group("e", [0, 1, 0, 0])])  # informative: the streak resets
    assert h.streak["e"] == 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), streak=st.integers(1, 3))
def test_greso_skips_at_its_rate(seed: int, streak: int) -> None:
    h = History(HistoryConfig(p_easy=0.6, delta_p=0.0), seed=seed)
    n = 3000
    for i in range(n):
        h.streak[f"q{i}"] = streak
        h.easy[f"q{i}"] = True
    d = h.select([Candidate(f"q{i}", "") for i in range(n)])
    p = 0.6**streak
    assert abs(np.mean(d.keep) - p) <= 5 * np.sqrt(p * (1 - p) / n)
    assert d.explored == d.keep  # every rolled-out prompt on a streak is GRESO exploration
