"""GRPO's selection: keep every prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from depo.config import Config
from depo.metrics import effective_rate
from depo.selection.registry import register_selector
from depo.types import Candidate, Decisions, GroupOutcome


class Uniform:
    """Keep every candidate; report the effective rate of what was rolled out."""

    name = "uniform"

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        return Decisions.keep_all(len(batch))

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        rate = effective_rate(outcomes)
        return {} if rate is None else {"select/effective_rate": rate}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class UniformConfig(Config):
    """Uniform selection has no options."""


@register_selector("uniform", UniformConfig)
def _uniform(options: UniformConfig, *, group_size: int, seed: int, estimator: Any) -> Uniform:
    return Uniform()
