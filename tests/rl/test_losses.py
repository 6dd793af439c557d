"""GRPO/DAPO math against hand-worked numbers (each expected value is derived in a comment)."""

from __future__ import annotations

import math

import pytest
import torch

from depo.rl.evaluation import pass_at_k
from depo.rl.losses import aggregate, clipped_surrogate, group_advantages, kl_k3, overlong_penalty


def test_group_advantages_grpo_std_normalised():
    # rewards 1,0,0,1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735; A = +-0.5 / (0.57735 + 1e-4)
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), "group")
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert torch.allclose(adv, torch.tensor([[expected, -expected, -expected, expected]]), atol=1e-6)


def test_group_advantages_zero_variance_group_is_zero_in_every_mode():
    for mode in ("group", "batch", "none"):
        adv = group_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.5]]), mode)
        assert torch.equal(adv[0], torch.zeros(3))
        assert adv[1].abs().sum() > 0


def test_group_advantages_dr_grpo_has_no_std():
    # mean 0.25: A = r - 0.25
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), "none")
    assert torch.allclose(adv, torch.tensor([[0.75, -0.25, -0.25, -0.25]]))


def test_group_advantages_batch_scaling():
    # centred [[.5, -.5], [0, 0]]; batch values 1,0,1,1: mean .75, unbiased var (3*.0625 + .5625)/3 = .25, std .5
    adv = group_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), "batch")
    assert torch.allclose(adv, torch.tensor([[0.5 / 0.5001, -0.5 / 0.5001], [0.0, 0.0]]), atol=1e-6)


def test_group_advantages_rejects_unknown_mode():
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(torch.zeros(1, 2), "median")


def test_overlong_penalty_dapo_formula():
    # L_max 10, L_cache 4: no penalty up to 6, then (6 - |y|) / 4, and -1 past L_max
    lengths = torch.tensor([5, 6, 7, 10, 11])
    assert torch.allclose(overlong_penalty(lengths, 10, 4), torch.tensor([0.0, 0.0, -0.25, -1.0, -1.0]))
    assert torch.allclose(overlong_penalty(lengths, 10, 4, factor=0.5), torch.tensor([0.0, 0.0, -0.125, -0.5, -0.5]))
    assert torch.equal(overlong_penalty(lengths, 10, 0), torch.zeros(5))


def test_clipped_surrogate_cases_and_clip_higher():
    # ratios 1.5, 0.5, 0.5, 1.5 with advantages +1, +1, -1, -1 and epsilon 0.2:
    #   r=1.5, A=+1: min(1.5, 1.2) = 1.2   -> loss -1.2, clipped
    #   r=0.5, A=+1: min(0.5, 0.8) = 0.5   -> loss -0.5
    #   r=0.5, A=-1: min(-0.5, -0.8) = -0.8 -> loss 0.8, clipped
    #   r=1.5, A=-1: min(-1.5, -1.2) = -1.5 -> loss 1.5
    ratio = torch.tensor([[1.5, 0.5, 0.5, 1.5]])
    logp = torch.log(ratio)
    old = torch.zeros_like(logp)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss, clipped = clipped_surrogate(logp, old, adv, epsilon=0.2)
    assert torch.allclose(loss, torch.tensor([[-1.2, -0.5, 0.8, 1.5]]), atol=1e-6)
    assert torch.equal(clipped, torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    # clip-higher (DAPO epsilon_high 0.28) only moves the upper bound: first token -> -1.28
    loss_hi, _ = clipped_surrogate(logp, old, adv, epsilon=0.2, epsilon_high=0.28)
    assert torch.allclose(loss_hi, torch.tensor([[-1.28, -0.5, 0.8, 1.5]]), atol=1e-6)


def test_clipped_surrogate_broadcasts_per_response_advantages():
    logp = torch.zeros(2, 3)
    loss, _ = clipped_surrogate(logp, logp, torch.tensor([2.0, -1.0]))
    assert torch.equal(loss, torch.tensor([[-2.0] * 3, [1.0] * 3]))


def test_aggregation_seq_mean_token_mean_dr_grpo():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(per_token, mask, "grpo").item() == pytest.approx((2.0 + 4.0) / 2)  # seq-mean
    assert aggregate(per_token, mask, "dapo").item() == pytest.approx(10.0 / 4)  # token-mean
    assert aggregate(per_token, mask, "bnpo").item() == pytest.approx(10.0 / 4)
    assert aggregate(per_token, mask, "dr_grpo", max_len=5).item() == pytest.approx(10.0 / (2 * 5))
    with pytest.raises(ValueError):
        aggregate(per_token, mask, "sum")


def test_kl_k3():
    # delta = ref - logp = log 2: exp(delta) - delta - 1 = 2 - log 2 - 1
    logp = torch.tensor([0.0, math.log(0.5)])
    ref = torch.tensor([0.0, 0.0])
    assert torch.allclose(kl_k3(logp, ref), torch.tensor([0.0, 1.0 - math.log(2.0)]))


def test_pass_at_k_unbiased():
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
