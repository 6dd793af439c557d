"""Difficulty estimator: encoder + trunk + dual heads predicting a policy's pass rate from prompt text.

`build_estimator` is the one place an estimator is built from options (docs/method.md section 2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from depo.estimator.config import EstimatorConfig
from depo.estimator.online import OnlineEstimator

__all__ = ["EstimatorConfig", "OnlineEstimator", "build_estimator", "is_estimator"]


def is_estimator(obj: Any) -> bool:
    """Whether `obj` can drive a DEPO selector: it has predict, update, state_dict, load_state_dict."""
    return all(callable(getattr(obj, name, None)) for name in ("predict", "update", "state_dict", "load_state_dict"))


def build_estimator(
    spec: EstimatorConfig | Mapping[str, Any] | str | Path | None = None, *, seed: int | None = None, **overrides: Any
) -> OnlineEstimator:
    """An estimator from `spec`: None (the paper's defaults), an EstimatorConfig or a mapping of
    its fields, or the directory of a saved estimator (a warm start; `overrides` replace
    non-architecture settings). `seed` is used where the spec does not set one."""
    if isinstance(spec, str | Path):
        return OnlineEstimator.load(spec, **overrides)
    values = spec.to_dict() if isinstance(spec, EstimatorConfig) else dict(spec or {})
    if seed is not None and "seed" not in values:
        values["seed"] = seed
    return OnlineEstimator(EstimatorConfig.build({**values, **overrides}, what="estimator options"))
