"""The one selection interface every trainer speaks (built-in engine, TRL, verl).

A trainer asks `select` which candidate prompts to roll out *before* generation, then hands
the rolled-out groups' rewards to `observe` (docs/method.md section 2.1). Nothing here
imports a trainer or a policy; the objects exchanged live in `depo.types`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from depo.metrics import effective_rate
from depo.types import Candidate, Decisions, GroupOutcome


@runtime_checkable
class Selector(Protocol):
    """Decides which prompts get rolled out, and learns from the groups that were."""

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        """Keep / explore / priority for every candidate of `batch`, aligned with it."""
        ...

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        """Learn from this step's rolled-out groups; return metrics to log (`select/*`, ...)."""
        ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def checked_select(selector: Selector, batch: Sequence[Candidate]) -> Decisions:
    """`selector.select(batch)`, refusing an answer that does not cover the batch (a user's selector)."""
    decisions = selector.select(batch)
    if not isinstance(decisions, Decisions):
        raise TypeError(f"{type(selector).__name__}.select must return depo.types.Decisions, got {type(decisions).__name__}")
    if len(decisions.keep) != len(batch):
        raise ValueError(f"{type(selector).__name__}.select returned {len(decisions.keep)} decisions for {len(batch)} candidates")
    return decisions


def top_mask(priority: np.ndarray, n_keep: int) -> np.ndarray:
    """Keep-by-rank: True for the `n_keep` candidates with the highest priority (ties by position)."""
    priority = np.asarray(priority, dtype=float)
    mask = np.zeros(len(priority), dtype=bool)
    mask[np.argsort(-priority, kind="stable")[:n_keep]] = True
    return mask


def explored_by_rank(kept: np.ndarray, mean_priority: np.ndarray, n_keep: int) -> np.ndarray:
    """Which of the `kept` (the top `n_keep` by a noisy draw) the posterior means would not have
    kept: strictly below the n_keep-th best mean, so candidates tied at the cut are not explored."""
    mean_priority = np.asarray(mean_priority, dtype=float)
    if n_keep <= 0 or n_keep >= len(mean_priority):
        return np.zeros(len(mean_priority), dtype=bool)
    cut = np.sort(mean_priority)[::-1][n_keep - 1]
    return np.asarray(kept, dtype=bool) & (mean_priority < cut)


class LearnsNothing:
    """For selectors whose decisions never depend on outcomes (uniform, the oracle): `observe`
    only reports the effective rate, and there is no state to checkpoint."""

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        rate = effective_rate(outcomes)
        return {} if rate is None else {"select/effective_rate": rate}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
