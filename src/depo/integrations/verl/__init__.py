"""DEPO for verl: select prompts before the rollout in verl's Ray trainer (docs/verl.md).

Two hooks: `RayDEPOTrainer` for verl 0.8+ (`python -m depo.integrations.verl.main`), and
`DEPOCurriculumSampler` for verl 0.7.x (`data.sampler.class_path` / `class_name`). This module
stays import-light: nothing here imports verl, Ray or torch; the verl-facing classes are loaded
on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEPOCurriculumSampler", "DepoSettings", "RayDEPOTrainer"]

_LAZY = {
    "RayDEPOTrainer": "depo.integrations.verl.trainer",
    "DEPOCurriculumSampler": "depo.integrations.verl.curriculum_sampler",
    "DepoSettings": "depo.integrations.verl.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
