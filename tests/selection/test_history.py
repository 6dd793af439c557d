"""GRESO (the `history` selector): exploration probability, streaks and adaptation, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.selection.history import History, HistoryConfig, explore_probability
from depo.types import Candidate, GroupOutcome


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
