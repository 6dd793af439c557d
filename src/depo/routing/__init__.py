"""Routing queries across models by predicted pass rate (docs/method.md section 2.4).

`Router` (rules: the paper's threshold, gain-aware), `depo bench route`, `depo route serve`.
Names are imported lazily so command registration stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from depo.routing.router import Decision, ModelSpec, PassRatePredictor, Router

__all__ = ["Decision", "ModelSpec", "PassRatePredictor", "Router"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from depo.routing import router

        return getattr(router, name)
    raise AttributeError(f"module 'depo.routing' has no attribute {name!r}")
