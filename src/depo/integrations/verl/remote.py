"""The estimator as a Ray actor with its own CPU/GPU share (`depo.estimator.device: ray`).

The trainer process then only sends prompt texts and outcomes; the encoder forward and the
update run where the actor was placed. The proxy has the estimator's API (predict, update,
state_dict, load_state_dict) and exactly the other public methods of the estimator it wraps
(e.g. predict_distribution for `kind: bayes` only), so the selector cannot tell it from an
in-process one. State
crosses the boundary on CPU, so a checkpoint made with a GPU actor loads on a CPU driver.
Placement next to verl's resource pools: docs/verl.md, "Knobs".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from depo.estimator import build_estimator
from depo.types import GroupOutcome


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class _EstimatorActor:
    """Runs inside the Ray actor: owns the estimator (either kind)."""

    def __init__(self, config: Any) -> None:
        torch.manual_seed(config.seed)  # the actor's own process: the trunk's dropout draws from it
        self.estimator = build_estimator(config)

    def methods(self) -> list[str]:
        """The estimator's public methods (properties and data attributes are not methods)."""
        cls = type(self.estimator)
        return sorted(n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None)))

    def state_dict(self) -> dict:
        return _to_cpu(self.estimator.state_dict())

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.estimator, name)(*args, **kwargs)


class RemoteEstimator:
    """Proxy to an estimator living in a Ray actor (`ray.init` must have run)."""

    def __init__(self, config: Any, *, num_gpus: float = 1.0, num_cpus: float = 1.0) -> None:
        import ray  # comes with verl, not with depo: importing this module does not need it

        self._ray = ray
        actor_cls = ray.remote(_EstimatorActor)
        self.actor = actor_cls.options(num_gpus=num_gpus, num_cpus=num_cpus, name=None).remote(config)
        self.config = config
        self._methods = frozenset(ray.get(self.actor.methods.remote()))

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._ray.get(self.actor.call.remote(name, *args, **kwargs))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._call("predict", list(texts)))

    def update(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        return self._call("update", list(outcomes))

    def state_dict(self) -> dict:
        return self._ray.get(self.actor.state_dict.remote())

    def load_state_dict(self, state: dict) -> None:
        self._call("load_state_dict", state)

    def __getattr__(self, name: str) -> Any:
        """Any other method the wrapped estimator has (e.g. warm_cache) is called on the actor;
        a name it lacks raises AttributeError, as on the estimator itself (DEPO probes for
        `predict_distribution` to tell a Bayesian estimator from the trunk)."""
        if name.startswith("_") or name not in self.__dict__.get("_methods", ()):
            raise AttributeError(f"the remote estimator has no method {name!r}")
        return functools.partial(self._call, name)
