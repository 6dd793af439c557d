"""MoPPS (the `mopps` selector): the discounted posterior update by hand, Thompson selection, resume."""

from __future__ import annotations

import numpy as np
import pytest

from depo.selection import make_selector
from depo.selection.mopps import MoPPS, MoPPSConfig
from depo.types import Candidate, GroupOutcome


def _group(pid: str, k: int, g: int = 8) -> GroupOutcome:
    return GroupOutcome(prompt_id=pid, text=pid, rewards=(1.0,) * k + (0.0,) * (g - k))


def test_discounted_posterior_update_hand_worked() -> None:
    m = MoPPS(MoPPSConfig(discount=0.9))
    m.observe([_group("q", 6)])
    # alpha = 0.9 * 1 + 0.1 * 1 + 6 = 7; beta = 0.9 * 1 + 0.1 * 1 + 2 = 3
    assert m.posterior["q"] == pytest.approx((7.0, 3.0))
    m.observe([_group("q", 2)])
    # alpha = 0.9 * 7 + 0.1 + 2 = 8.4; beta = 0.9 * 3 + 0.1 + 6 = 8.8
    assert m.posterior["q"] == pytest.approx((8.4, 8.8))
    a, b = m.beta_parameters([Candidate("q", ""), Candidate("unseen", "")])
    assert a.tolist() == pytest.approx([8.4, 1.0]) and b.tolist() == pytest.approx([8.8, 1.0])


def test_discount_one_is_the_stationary_posterior_and_zero_keeps_only_the_last_group() -> None:
    stationary, last = MoPPS(MoPPSConfig(discount=1.0)), MoPPS(MoPPSConfig(discount=0.0))
    for k in (8, 0, 3):
        stationary.observe([_group("q", k)])
        last.observe([_group("q", k)])
    assert stationary.posterior["q"] == pytest.approx((1 + 11, 1 + 13))
    assert last.posterior["q"] == pytest.approx((1 + 3, 1 + 5))


def test_keeps_its_share_and_prefers_prompts_near_the_target() -> None:
    m = MoPPS(MoPPSConfig(keep_share=0.25), seed=1)
    for _ in range(5):  # 40 answers each: posteriors far from and close to 0.5
        m.observe([_group(f"easy{i}", 8) for i in range(20)] + [_group(f"mid{i}", 4) for i in range(20)]
                  + [_group(f"hard{i}", 0) for i in range(20)])
    batch = [Candidate(f"{kind}{i}", "") for kind in ("easy", "mid", "hard") for i in range(20)]
    d = m.select(batch)
    assert sum(d.keep) == 15  # ceil(0.25 * 60)
    assert all(c.prompt_id.startswith("mid") for c, k in zip(batch, d.keep) if k)
    assert not any(d.explored)  # the draws of 40-answer posteriors agree with their means here


def test_a_kept_draw_below_the_means_cut_is_explored_and_ties_are_not() -> None:
    m = MoPPS(MoPPSConfig(target=0.3), seed=0)  # all on the flat prior: the means tie, the draws decide
    d = m.select([Candidate(f"q{i}", "") for i in range(100)])
    assert sum(d.keep) == 50 and not any(d.explored)
    m.observe([_group(f"q{i}", 2) for i in range(50)])  # q0..q49: Beta(3, 7), mean on the target
    d = m.select([Candidate(f"q{i}", "") for i in range(100)])
    explored = [i for i, e in enumerate(d.explored) if e]
    assert explored and all(i >= 50 and d.keep[i] for i in explored)  # unseen prompts kept by their draw


def test_resume_gives_identical_decisions() -> None:
    batch = [Candidate(f"q{i}", "") for i in range(30)]
    a = make_selector("mopps", group_size=8, seed=3)
    a.observe([_group(f"q{i}", i % 9) for i in range(30)])
    b = make_selector("mopps", group_size=8, seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        da, db = a.select(batch), b.select(batch)
        assert da.keep == db.keep and np.array_equal(da.priority, db.priority)
