"""Prompt selection: which prompts to roll out before generation.

The selectors that need scipy (DEPO, History, Oracle, BetaMemory) are imported lazily, so that
`import depo.selection` stays cheap for CLI registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from depo.selection.depo import DEPO, DEPOConfig
    from depo.selection.history import History
    from depo.selection.memory import BetaMemory
    from depo.selection.oracle import Oracle

_LAZY = {"DEPO": "depo", "DEPOConfig": "depo", "History": "history", "Oracle": "oracle", "BetaMemory": "memory"}

__all__ = [
    "SELECTORS",
    "BetaMemory",
    "Candidate",
    "DEPO",
    "DEPOConfig",
    "DataOrder",
    "Decisions",
    "EpochCounts",
    "GroupOutcome",
    "History",
    "Oracle",
    "RefillStream",
    "Selector",
    "Uniform",
    "decide",
    "is_zero_variance",
    "make_selector",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"depo.selection.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'depo.selection' has no attribute {name!r}")
