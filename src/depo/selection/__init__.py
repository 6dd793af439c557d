"""Prompt selection: which prompts to roll out before generation."""

from depo.selection.base import (
    Candidate,
    Decisions,
    GroupOutcome,
    Selector,
    Uniform,
    decide,
    is_zero_variance,
)
from depo.selection.factory import SELECTORS, make_selector
from depo.selection.order import DataOrder
from depo.selection.stream import EpochCounts, RefillStream

__all__ = [
    "SELECTORS",
    "Candidate",
    "DataOrder",
    "Decisions",
    "EpochCounts",
    "GroupOutcome",
    "RefillStream",
    "Selector",
    "Uniform",
    "decide",
    "is_zero_variance",
    "make_selector",
]
