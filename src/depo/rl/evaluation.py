"""Held-out evaluation: Avg@k and pass@k on a fixed prompt set.

Avg@k (the paper's metric, docs/method.md section 3) = mean over problems of the mean reward of k
samples. pass@k = share of problems with at least one fully correct sample among k; with n >= k
samples it is the unbiased estimator of Chen et al. 2021 (Codex paper, eq. 1):
pass@k = 1 - C(n - c, k) / C(n, k), averaged over problems (c = correct samples).

Sampling uses its own generator seeded from `seed`, so the training stream of random numbers
is untouched (a resumed run stays identical) and every evaluation of a run sees the same
random draws, which makes steps comparable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from math import comb

import numpy as np
import torch

from depo.policy import sample
from depo.tasks.base import Task, score_responses


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def sample_rewards(
    model, tokenizer, tasks: Sequence[Task], *, k: int = 8, max_new_tokens: int = 16,
    temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 1024,
) -> tuple[np.ndarray, int]:
    """(tasks, k) verifier rewards of k sampled responses per task, and the tasks whose verifier
    failed (their failed responses count as reward 0)."""
    generator = torch.Generator().manual_seed(int(seed))
    rollouts = sample(model, tokenizer, [t.prompt for t in tasks], k, max_new_tokens=max_new_tokens,
                      temperature=temperature, top_p=top_p, generator=generator, batch_size=batch_size)
    rewards, errors = np.zeros((len(tasks), k)), 0
    for i, task in enumerate(tasks):
        rewards[i], error = score_responses(task, rollouts.response_text[i * k : (i + 1) * k])
        errors += int(error is not None)
    return rewards, errors


def evaluate(
    model, tokenizer, tasks: Sequence[Task], *, k: int = 8, max_new_tokens: int = 16,
    temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 1024,
    per_task: bool = False,
) -> dict[str, float]:
    """Sample k responses per task and score them: `eval/avg@k`, `eval/pass@k`, `eval/errors`.

    With `per_task`, also `eval/avg@k/<name>` per `Task.meta["task"]` (the gym task name).
    Verifier failures count as reward 0 and are reported in `eval/errors` (tasks).
    """
    if not tasks:
        return {}
    rewards, errors = sample_rewards(model, tokenizer, tasks, k=k, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size)
    avg = rewards.mean(axis=1)
    passed = [pass_at_k(k, int(np.sum(r >= 1.0 - 1e-9)), k) for r in rewards]
    out = {f"eval/avg@{k}": float(np.mean(avg)), f"eval/pass@{k}": float(np.mean(passed)), "eval/errors": float(errors)}
    if per_task:
        by_task: dict[str, list[float]] = defaultdict(list)
        for task, mean in zip(tasks, avg):
            by_task[str(task.meta.get("task", "all"))].append(float(mean))
        for name, values in sorted(by_task.items()):
            out[f"eval/avg@{k}/{name}"] = float(np.mean(values))
    return out
