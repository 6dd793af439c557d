"""Difficulty estimator: encoder + trunk + dual heads predicting a policy's pass rate from prompt text.

The names are imported lazily so `import depo.estimator` stays cheap (no torch) for CLI registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from depo.estimator.online import EstimatorConfig, OnlineEstimator

__all__ = ["EstimatorConfig", "OnlineEstimator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from depo.estimator import online

        return getattr(online, name)
    raise AttributeError(f"module 'depo.estimator' has no attribute {name!r}")
