"""Difficulty estimators: predict a policy's pass rate on a prompt from its text, before the rollout.

Two kinds, one protocol (predict / update / fit / state_dict / load_state_dict / save / load):
- "trunk" (`OnlineEstimator`, the paper's, and the default of both DEPO selectors): encoder +
  trunk + dual heads trained by gradient steps (docs/method.md sections 2.2-2.3);
- "bayes" (`BayesEstimator`): a closed-form Bayesian posterior on frozen lexical and encoder
  features (docs/method.md section 4.10), chosen with `kind: bayes`.
`build_estimator` is the one place an estimator is built from options.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from depo.errors import DepoError
from depo.estimator.bayes import BayesEstimator, BayesEstimatorConfig
from depo.estimator.config import EstimatorConfig
from depo.estimator.online import OnlineEstimator
from depo.estimator.persistence import CONFIG_FILE

__all__ = ["KINDS", "BayesEstimator", "BayesEstimatorConfig", "EstimatorConfig", "OnlineEstimator",
           "build_estimator", "estimator_config", "is_estimator", "load_estimator"]

Kind = Literal["bayes", "trunk"]
KINDS: dict[str, tuple[type, type]] = {"bayes": (BayesEstimator, BayesEstimatorConfig), "trunk": (OnlineEstimator, EstimatorConfig)}
"""kind -> (estimator class, its config model)."""


def is_estimator(obj: Any) -> bool:
    """Whether `obj` can drive a DEPO selector: it has predict, update, state_dict, load_state_dict."""
    return all(callable(getattr(obj, name, None)) for name in ("predict", "update", "state_dict", "load_state_dict"))


def estimator_config(values: Mapping[str, Any] | None = None, *, default_kind: Kind = "trunk", what: str = "estimator options"):
    """The typed config of estimator options: their `kind` (default `default_kind`) picks the model."""
    values = dict(values or {})
    kind = values.setdefault("kind", default_kind)
    if kind not in KINDS:
        raise DepoError(f"{what}: unknown estimator kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return KINDS[kind][1].build(values, what=what)


def load_estimator(path: str | Path, **overrides: Any):
    """A saved estimator directory of either kind (the trunk's has estimator_config.json)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return OnlineEstimator.load(path, **overrides)
    if (path / "bayes_estimator.json").is_file():
        return BayesEstimator.load(path, **overrides)
    raise DepoError(f"{path} is not a saved depo estimator (no {CONFIG_FILE} or bayes_estimator.json)")


def build_estimator(spec: Any = None, *, seed: int | None = None, default_kind: Kind = "trunk", **overrides: Any):
    """An estimator from `spec`: None (the defaults of `default_kind`), a config model, a mapping
    of its fields (`kind` picks the estimator), or the directory of a saved estimator (a warm start;
    `overrides` replace its non-architecture settings). `seed` is used where the spec sets none."""
    if isinstance(spec, str | Path):
        return load_estimator(spec, **overrides)
    values = spec.to_dict() if isinstance(spec, EstimatorConfig | BayesEstimatorConfig) else dict(spec or {})
    if seed is not None and "seed" not in values:
        values["seed"] = seed
    config = estimator_config({**values, **overrides}, default_kind=default_kind)
    return KINDS[config.kind][0](config)

