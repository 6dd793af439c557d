"""Prompt selection: which prompts to roll out before generation (docs/method.md sections 2 and 4).

Importing the package registers every selector (`SELECTORS`), so `make_selector(name, ...)`
builds any of them.
"""

from __future__ import annotations

from depo.selection import depo, history, mopps, oracle, uniform  # noqa: F401  (each registers its selector)
from depo.selection.base import Selector, checked_select
from depo.selection.depo import DEPO, DEPOConfig
from depo.selection.history import History, HistoryConfig
from depo.selection.memory import BetaMemory
from depo.selection.mopps import MoPPS, MoPPSConfig
from depo.selection.oracle import Oracle
from depo.selection.order import DataOrder
from depo.selection.registry import (
    SELECTORS,
    make_selector,
    register_selector,
    selector_options,
    selector_spec,
    trainable_selector,
)
from depo.selection.stream import EpochCounts, RankStream, RefillStream, make_stream
from depo.selection.uniform import Uniform

__all__ = [
    "DEPO",
    "SELECTORS",
    "BetaMemory",
    "DEPOConfig",
    "DataOrder",
    "EpochCounts",
    "History",
    "HistoryConfig",
    "MoPPS",
    "MoPPSConfig",
    "Oracle",
    "RankStream",
    "RefillStream",
    "Selector",
    "Uniform",
    "checked_select",
    "make_selector",
    "make_stream",
    "register_selector",
    "selector_options",
    "selector_spec",
    "trainable_selector",
]
