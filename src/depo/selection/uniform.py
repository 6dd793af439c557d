"""GRPO's selection: keep every prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from depo.config import Config
from depo.selection.base import LearnsNothing
from depo.selection.registry import register_selector
from depo.types import Candidate, Decisions


class Uniform(LearnsNothing):
    """Keep every candidate; report the effective rate of what was rolled out."""

    name = "uniform"

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        return Decisions.keep_all(len(batch))


class UniformConfig(Config):
    """Uniform selection has no options."""


@register_selector("uniform", UniformConfig)
def _uniform(options: UniformConfig, *, group_size: int, seed: int, estimator: Any) -> Uniform:
    return Uniform()
