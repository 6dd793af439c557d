"""The oracle selector (benchmarks only): it knows each prompt's true pass rate.

It keeps a prompt iff its true P(zero-variance group) = p^G + (1 - p)^G <= threshold, the same
rule and default threshold (0.5) as DEPO's default mode, so it bounds what a perfect estimator
could reach. The pass rates come from a mapping prompt_id -> rate or a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field

from depo.config import Config
from depo.errors import DepoError
from depo.selection.base import LearnsNothing
from depo.selection.registry import register_selector
from depo.types import Candidate, Decisions
from depo.zero_variance import zero_var_probability


class Oracle(LearnsNothing):
    name = "oracle"

    def __init__(self, pass_rates: Mapping[str, float] | Callable[[str], float], *, group_size: int,
                 threshold: float = 0.5) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise DepoError(f"oracle threshold must be in [0, 1], got {threshold}")
        if group_size < 2:
            raise DepoError(f"group size must be >= 2, got {group_size}")
        self.pass_rates = pass_rates
        self.group_size = int(group_size)
        self.threshold = float(threshold)

    def _rate(self, prompt_id: str) -> float:
        if callable(self.pass_rates):
            return float(self.pass_rates(prompt_id))
        try:
            return float(self.pass_rates[prompt_id])
        except KeyError:
            raise DepoError(f"oracle selector: no true pass rate for prompt {prompt_id!r}") from None

    def zero_var_prob(self, batch: Sequence[Candidate]) -> np.ndarray:
        return zero_var_probability(np.array([self._rate(c.prompt_id) for c in batch]), self.group_size)

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        p_zero = self.zero_var_prob(batch)
        keep = [bool(v <= self.threshold) for v in p_zero]
        return Decisions(keep=keep, explored=[False] * len(batch), priority=-p_zero)


class OracleOptions(Config):
    """The oracle's inputs: the true pass rates (bench only) and the rule's threshold."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    pass_rates: Any
    """A mapping prompt_id -> true pass rate, or a callable prompt_id -> rate."""
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Keep iff the true P(zero-variance group) <= threshold."""


@register_selector("oracle", OracleOptions)
def _oracle(options: OracleOptions, *, group_size: int, seed: int, estimator: Any) -> Oracle:
    return Oracle(options.pass_rates, group_size=group_size, threshold=options.threshold)
