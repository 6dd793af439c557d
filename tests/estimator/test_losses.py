"""Each estimator loss term against a hand-worked example (SPEC.md section 2, "Estimator loss")."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.estimator.losses import (
    LossWeights,
    distill_bce,
    distill_target,
    estimator_loss,
    pair_mask,
    ranking_hinge,
    score_bce,
)


def test_distill_target_is_exp_of_mean_of_mean_logprobs_clipped():
    # responses with mean token log-probs -0.5 and -1.5: exp(mean) = exp(-1.0)
    assert distill_target((-0.5, -1.5)) == pytest.approx(math.exp(-1.0))
    assert distill_target((-30.0,)) == pytest.approx(1e-4)
    assert distill_target((0.0, 0.0)) == pytest.approx(1 - 1e-4)
    assert distill_target(None) is None
    assert distill_target(()) is None
    assert distill_target((float("nan"),)) is None


def test_score_bce_hand_worked():
    # sigmoid(0) = 0.5 vs y=1 -> ln 2; sigmoid(ln 3) = 0.75 vs y=0.5 -> -(0.5 ln 0.75 + 0.5 ln 0.25)
    s = torch.tensor([0.0, math.log(3.0)])
    y = torch.tensor([1.0, 0.5])
    expected = (math.log(2.0) - 0.5 * math.log(0.75) - 0.5 * math.log(0.25)) / 2
    assert score_bce(s, y).item() == pytest.approx(expected, rel=1e-6)


def test_distill_bce_uses_only_masked_prompts():
    d = torch.tensor([0.0, 5.0, math.log(3.0)])
    t = torch.tensor([0.5, 0.0, 0.75])
    mask = torch.tensor([True, False, True])
    # sigmoid(0)=0.5 vs 0.5 -> ln 2; sigmoid(ln 3)=0.75 vs 0.75 -> -(0.75 ln .75 + .25 ln .25)
    expected = (math.log(2.0) - 0.75 * math.log(0.75) - 0.25 * math.log(0.25)) / 2
    assert distill_bce(d, t, mask).item() == pytest.approx(expected, rel=1e-6)
    assert distill_bce(d, t, torch.zeros(3, dtype=torch.bool)) is None


def test_pair_mask_keeps_only_clear_orderings():
    y = torch.tensor([1.0, 0.5, 0.52, 0.0])
    i, j = torch.nonzero(pair_mask(y, delta=0.05), as_tuple=True)
    # 0.52 vs 0.5 differ by less than delta: neither (2, 1) nor (1, 2) is a pair
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)}


def test_ranking_hinge_hand_worked():
    y = torch.tensor([1.0, 0.5, 0.52, 0.0])
    s = torch.tensor([1.0, 0.2, 0.9, 0.0])
    # pairs (0,1): 0.5-0.8<0 -> 0; (0,2): 0.5-0.1=0.4; (0,3): 0; (1,3): 0.5-0.2=0.3; (2,3): 0
    assert ranking_hinge(s, y, delta=0.05, margin=0.5).item() == pytest.approx(0.7 / 5)


def test_ranking_hinge_without_pairs_is_zero_and_differentiable():
    s = torch.tensor([0.3, -0.2], requires_grad=True)
    loss = ranking_hinge(s, torch.tensor([0.5, 0.5]), delta=0.05, margin=0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(s.grad, torch.zeros(2))


def test_estimator_loss_combines_terms_with_paper_weights():
    s = torch.tensor([1.0, 0.2, 0.9, 0.0])
    d = torch.tensor([0.0, 0.0, 0.0, 0.0])
    y = torch.tensor([1.0, 0.5, 0.52, 0.0])
    t = torch.tensor([0.5, 0.5, 0.5, 0.5])
    total, parts = estimator_loss(s, d, y, t, None, LossWeights())
    expected = score_bce(s, y).item() + 3.0 * (0.7 / 5) + 0.5 * math.log(2.0)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert parts["loss_distill"] == pytest.approx(math.log(2.0))
    assert parts["rank_pairs"] == 5


def test_estimator_loss_skips_distill_without_targets():
    s = torch.tensor([0.4, -0.1])
    y = torch.tensor([1.0, 0.0])
    total, parts = estimator_loss(s, torch.zeros(2), y, None, None, LossWeights())
    assert "loss_distill" not in parts
    expected = score_bce(s, y).item() + 3.0 * max(0.0, 0.5 - 0.5)
    assert total.item() == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(-3.0, 3.0)), min_size=1, max_size=10),
    st.floats(0.0, 0.5),
    st.floats(0.0, 2.0),
)
def test_ranking_hinge_matches_brute_force_over_ordered_pairs(rows, delta, margin):
    y = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    s = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    terms = [
        max(0.0, margin - (rows[i][1] - rows[j][1]))
        for i in range(len(rows))
        for j in range(len(rows))
        if rows[i][0] > rows[j][0] + delta
    ]
    expected = sum(terms) / len(terms) if terms else 0.0
    assert ranking_hinge(s, y, delta=delta, margin=margin).item() == pytest.approx(expected, abs=1e-9)
