"""Routing queries across models by predicted pass rate (docs/method.md section 2.4).

`Router` (rules: the paper's threshold, gain-aware), `depo bench route`, `depo route serve`.
"""

from __future__ import annotations

from depo.routing.router import Decision, ModelSpec, PassRatePredictor, Router

__all__ = ["Decision", "ModelSpec", "PassRatePredictor", "Router"]
