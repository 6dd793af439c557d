"""GRPO / DAPO math as small pure functions: advantages, reward shaping, the clipped loss.

Each function is the formula of its paper, written once, with the paper named beside it, so
the trainer reads like docs/method.md sections 1 and 2.1 and each piece is checked against a
hand-worked example in tests/rl/test_losses.py.

Shapes: rewards are (N, G) — N prompts, G responses each. Per-token tensors are (B, T) with a
0/1 `mask` marking the response tokens that exist (B = N * G rows, right-padded).
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "dapo", "bnpo", "dr_grpo")
SCALE_REWARDS = ("group", "batch", "none")


def group_advantages(rewards: torch.Tensor, scale_rewards: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages, one per response: A_i = (r_i - mean_group(r)) / (std + eps).

    - "group" (GRPO, Shao et al. 2024, DeepSeekMath eq. 3): std over the G responses of the
      same prompt; TRL uses the unbiased std (torch.std) and eps = 1e-4, and so do we.
    - "batch" (PPO-Lite, arXiv 2508.08221): centre per group, scale by the std of the whole batch.
    - "none" (Dr. GRPO, Liu et al. 2025, arXiv 2503.20783): A_i = r_i - mean_group(r), no scaling,
      which removes the question-difficulty bias of dividing by a small std.

    A zero-variance group gets A = 0 for every response in all three modes.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (N, G), got shape {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale_rewards == "none":
        return centred
    if scale_rewards == "group":
        std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(rewards[:, :1])
    elif scale_rewards == "batch":
        std = rewards.std() if rewards.numel() > 1 else torch.zeros(())
    else:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}, got {scale_rewards!r}")
    return centred / (std + eps)


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer_len: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, eq. 13), added to the reward.

        R(y) = 0                              if |y| <= L_max - L_cache
             = ((L_max - L_cache) - |y|) / L_cache   if L_max - L_cache < |y| <= L_max
             = -1                             if |y| > L_max
    times `factor` (verl's overlong_penalty_factor). `buffer_len` = L_cache; 0 turns it off.
    """
    if buffer_len <= 0:
        return torch.zeros_like(lengths, dtype=torch.float32)
    # The linear ramp is >= 0 up to L_max - L_cache and < -1 past L_max: clamping gives all three cases.
    return ((max_len - buffer_len - lengths.to(torch.float32)) / buffer_len).clamp(-1.0, 0.0) * factor


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped loss (Schulman et al. 2017) with DAPO's clip-higher.

        ratio = exp(logp - old_logp)
        loss_t = -min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon_high) * A)

    `epsilon_high` (DAPO "clip-higher", arXiv 2503.14476 section 3.1) defaults to `epsilon`.
    `advantages` is per response (B,) or per token (B, T). Returns (loss (B, T), clipped (B, T)),
    where `clipped` is 1.0 where the clipped branch was taken (for the clip fraction metric).
    """
    eps_high = epsilon if epsilon_high is None else epsilon_high
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - epsilon, 1.0 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    return loss, (clipped < unclipped).to(loss.dtype)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) by Schulman's k3 estimator (GRPO, DeepSeekMath eq. 4):
    exp(ref - logp) - (ref - logp) - 1, which is >= 0 and unbiased for samples from pi."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str = "dapo", max_len: int | None = None) -> torch.Tensor:
    """Reduce a (B, T) per-token loss to a scalar, as TRL names the variants.

    - "grpo" (seq-mean, original GRPO): mean over responses of the mean over each one's tokens;
      a token of a short response weighs more than one of a long response.
    - "dapo" / "bnpo" (token-mean, DAPO section 3.3): sum over all tokens / number of tokens, so
      every token weighs the same.
    - "dr_grpo" (Dr. GRPO): sum over all tokens / (B * max_len), a constant normaliser.
    """
    mask = mask.to(per_token.dtype)
    masked = per_token * mask
    if loss_type == "grpo":
        return (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    if loss_type in ("dapo", "bnpo"):
        return masked.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        if max_len is None:
            raise ValueError("loss_type 'dr_grpo' needs max_len")
        return masked.sum() / (per_token.shape[0] * max_len)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
