"""Turn one verl training batch into the per-prompt `GroupOutcome`s a selector learns from.

At the end of a step verl's batch holds one row per response, shuffled by `balance_batch`; rows
of one prompt share a `uid` (GRPO groups by it). Per response we read:
- the reward the estimator learns: `reward_key` from the reward function's extra info (e.g. the
  DAPO reward's `acc`, correctness in {0, 1}) or, by default, the sequence score
  `token_level_scores.sum(-1)` (the task reward before any KL penalty);
- the mean token log-probability of the response under the policy (`old_log_probs` over the
  `response_mask`): the estimator's distill target is exp(mean over the group) (docs/method.md
  section 2.1, step 4).
The estimator needs pass rates in [0, 1]; a score outside that range (e.g. DAPO's +-1 rewards)
is a DepoError that names `depo.reward_key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from depo.errors import DepoError
from depo.integrations.verl.prompts import ID_KEY
from depo.metrics import effective_rate
from depo.types import GroupOutcome
from depo.zero_variance import is_zero_variance

AUTO_KEYS = ("acc",)
"""Reward extra-info keys `reward_key="auto"` prefers over the score (verl's DAPO/math rewards)."""


def _column(batch: Any, key: str) -> np.ndarray | None:
    value = batch.non_tensor_batch.get(key)
    return None if value is None else np.asarray(value)


def response_rewards(batch: Any, reward_key: str = "auto") -> tuple[np.ndarray, str]:
    """Per-response rewards for the estimator, and where they came from."""
    if reward_key not in ("auto", "score"):
        col = _column(batch, reward_key)
        if col is None:
            raise DepoError(
                f"depo.reward_key={reward_key!r} is not in the batch's reward extra info "
                f"(have: {', '.join(sorted(batch.non_tensor_batch)) or 'none'})"
            )
        return col.astype(float), reward_key
    if reward_key == "auto":
        for key in AUTO_KEYS:
            col = _column(batch, key)
            if col is not None:
                return col.astype(float), key
    return sequence_scores(batch), "score"


def pass_rate_rewards(batch: Any, reward_key: str = "auto") -> np.ndarray:
    """`response_rewards`, refused with one DepoError line unless all are in [0, 1] (pass rates)."""
    rewards, source = response_rewards(batch, reward_key)
    if rewards.size and (not np.all(np.isfinite(rewards)) or rewards.min() < 0.0 or rewards.max() > 1.0):
        raise DepoError(
            f"rewards from {source!r} are outside [0, 1] (min {rewards.min():.3g}, max {rewards.max():.3g}); "
            "the estimator learns pass rates: set depo.reward_key to the reward's correctness key (e.g. acc)"
        )
    return rewards


def sequence_scores(batch: Any) -> np.ndarray:
    """verl's per-response task score: the token-level scores summed over the response."""
    scores = batch.batch["token_level_scores"]
    return scores.sum(dim=-1).detach().float().cpu().numpy()


def mean_logprobs(batch: Any) -> np.ndarray | None:
    """Mean over each response's tokens of log pi(token), or None when the batch has no log-probs."""
    keys = batch.batch.keys()
    source = "old_log_probs" if "old_log_probs" in keys else "rollout_log_probs" if "rollout_log_probs" in keys else None
    if source is None or "response_mask" not in keys:
        return None
    logp = batch.batch[source].detach().float().cpu()
    mask = batch.batch["response_mask"].detach().float().cpu()
    return ((logp * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).numpy()


def rows_by_uid(uids: Any) -> dict[str, list[int]]:
    """The row indices of each uid's responses, uids in first-seen order."""
    rows: dict[str, list[int]] = {}
    for r, uid in enumerate(uids):
        rows.setdefault(str(uid), []).append(r)
    return rows


def group_outcome(
    pid: str, text: str, rows: list[int], rewards: Any, logps: Any, explored: bool
) -> GroupOutcome:
    """The `GroupOutcome` of one prompt from its response rows (`logps` None: no log-probs)."""
    logp = None if logps is None else tuple(float(logps[r]) for r in rows)
    return GroupOutcome(pid, text, tuple(float(rewards[r]) for r in rows), logp, bool(explored))


def group_outcomes(
    batch: Any,
    texts: Mapping[str, str],
    explored: Mapping[str, bool] | None = None,
    *,
    reward_key: str = "auto",
) -> tuple[list[GroupOutcome], dict[str, float]]:
    """One `GroupOutcome` per uid (in first-seen order), plus accounting metrics.

    `texts` maps prompt id -> estimator text (the prompts the trainer selected); the prompt id of
    each row is `extra_info[ID_KEY]`. Metrics: `select/groups`, `select/effective_rate` on the
    estimator rewards and `select/effective_rate_score` on the scores GRPO trains on (they differ
    when e.g. an overlong penalty splits an all-correct group).
    """
    uids = _column(batch, "uid")
    extra = _column(batch, "extra_info")
    if uids is None or extra is None:
        raise DepoError("a verl batch without 'uid' or 'extra_info' cannot be grouped into prompts")
    rewards = pass_rate_rewards(batch, reward_key)
    scores = sequence_scores(batch)
    logps = mean_logprobs(batch)

    outcomes = []
    informative_score = 0
    for uid, idx in rows_by_uid(uids).items():
        info = extra[idx[0]]
        pid = info.get(ID_KEY) if isinstance(info, dict) else None
        if pid is None or pid not in texts:
            raise DepoError(f"response group {uid} carries no known {ID_KEY} in extra_info: was the batch drawn by DEPO?")
        outcomes.append(group_outcome(pid, texts[pid], idx, rewards, logps, (explored or {}).get(pid, False)))
        informative_score += not is_zero_variance(scores[idx])
    n = len(outcomes)
    metrics = {
        "select/groups": float(n),
        "select/effective_rate": effective_rate(outcomes) if n else float("nan"),
        "select/effective_rate_score": informative_score / n if n else float("nan"),
    }
    return outcomes, metrics
