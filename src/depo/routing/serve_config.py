"""Configuration of the routing service (`depo route serve --config FILE`), validated up front.

It is a `depo.config.Config`, so unknown keys are refused with the nearest valid name, `extends:`
works, and every mistake is a one-line DepoError at start-up, never a traceback on the first
request. Each backend's predictor is a saved estimator, a `module:factory` or a constant `rate`
(docs/routing.md; configs/route_serve.example.yaml is a commented example).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from depo.config import Config, load
from depo.errors import DepoError
from depo.routing.router import ModelSpec, PassRatePredictor, Router, RuleName

WHAT = "route serve config"


def _scalar_name(value: Any) -> Any:
    """A YAML name may be a number (`name: 7`); it is used as text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Name = Annotated[str, BeforeValidator(_scalar_name)]


def _env(variable: str, owner: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise DepoError(f"{owner}: environment variable {variable} is not set")
    return value


class BackendConfig(Config):
    """One model behind the router."""

    name: Name
    """The name clients and headers use (also accepted as `model` to pin a request to it)."""
    url: str
    """Base URL of the OpenAI-compatible API, up to and including /v1 (e.g. http://gpu1:8000/v1)."""
    cost: float
    backend_model: str | None = None
    """The `model` value sent to the backend (vLLM: the served model name); default: `name`."""
    api_key: str | None = None
    api_key_env: str | None = None
    """Environment variable holding the backend's API key (preferred over a key in the file)."""
    estimator: str | None = None
    """Directory of a saved OnlineEstimator; a relative path in a file is relative to that file
    (a `--set` one to the working directory)."""
    predictor: str | None = None
    """`module:factory` returning an object with predict(texts)."""
    rate: float | None = Field(None, ge=0.0, le=1.0)
    """A constant predicted pass rate for every query (e.g. the large model's mean: with a constant
    p_large the gain rule is a threshold on p_small, so one trained estimator suffices)."""

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_predictor(self) -> BackendConfig:
        given = [k for k in ("estimator", "predictor", "rate") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"backend {self.name!r}: give one of estimator, predictor, rate (got {given})")
        return self

    @property
    def upstream_model(self) -> str:
        return self.backend_model or self.name

    def resolved_api_key(self) -> str | None:
        return _env(self.api_key_env, f"backend {self.name!r}") if self.api_key_env else self.api_key


class ServeConfig(Config):
    """The whole service: listening address, routing rule, backends and limits."""

    # `lambda` is a Python keyword: the field is `lam`, read and written as `lambda` (`lam` also
    # reads, since the unknown-key hint names fields, not aliases)
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    models: list[BackendConfig]
    """The backends, in any order (the router sorts them by cost); at least two."""
    estimator: str | None = None
    """Directory of one saved multi-target estimator with a head per model, in the order of
    `models` (`depo bench route --save-estimators DIR` writes DIR/estimator_bayes): one forward
    per batch predicts every model's pass rate, with correlated errors, so the predicted gain is
    less noisy. The backends then name no predictor of their own. Relative as a backend's."""
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    rule: RuleName = "threshold"
    """threshold: the paper's rule (docs/method.md section 2.4); gain: section 4.6."""
    tau: float = 0.75
    lam: float = Field(0.0, alias="lambda")
    routed_aliases: tuple[Name, ...] = Field(("auto", "depo-router"), min_length=1)
    """Request `model` values that mean "let the router choose" (a configured name pins the model);
    at least one: the first is the default for a request without `model`."""
    connect_timeout_s: float = Field(5.0, ge=0)
    read_timeout_s: float = Field(300.0, ge=0)
    """Longest wait for the next byte from a backend (generation can be slow)."""
    max_concurrency: int = Field(64, ge=1)
    """Requests forwarded at once; more wait up to `queue_timeout_s`, then get 503."""
    queue_timeout_s: float = Field(30.0, ge=0)
    max_batch: int = Field(32, ge=1)
    """Most queries scored by the predictors in one call (concurrent requests are micro-batched)."""
    max_wait_ms: float = Field(2.0, ge=0)
    """How long the first query of a micro-batch waits for company before scoring."""
    bearer_token_env: str | None = None
    bearer_token: str | None = None
    """Clients must send `Authorization: Bearer <token>` when set (env var preferred)."""
    max_body_bytes: int = Field(4_000_000, ge=1)

    @field_validator("models", mode="before")
    @classmethod
    def _backends(cls, models: Any) -> Any:
        """Each backend validated as its own Config, so its errors name `models[i]` and its keys."""
        if not isinstance(models, list) or not models:
            raise DepoError(f"{WHAT}: 'models' must be a non-empty list")
        return [m if isinstance(m, BackendConfig) else BackendConfig.build(m, what=f"{WHAT} models[{i}]") for i, m in enumerate(models)]

    @model_validator(mode="after")
    def _consistent(self) -> ServeConfig:
        names = [m.name for m in self.models]
        if len(names) < 2:
            raise ValueError("configure at least two models")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names {names}")
        clash = set(names) & set(self.routed_aliases)
        if clash:
            raise ValueError(f"model names {sorted(clash)} clash with routed aliases")
        if self.estimator is not None:
            own = [m.name for m in self.models if m.estimator or m.predictor or m.rate is not None]
            if own:
                raise ValueError(f"with a shared multi-target estimator, backends {own} must not name their own predictor")
        return self

    def resolved_token(self) -> str | None:
        return _env(self.bearer_token_env, "auth") if self.bearer_token_env else self.bearer_token


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ServeConfig:
    """Read a YAML config (with its `extends:`), then `key=value` overrides (flags and `--set`s).

    A relative `estimator` is relative to the file it is written in (an inherited one to its
    base's file, a `--set` one to the working directory).
    """
    return load(ServeConfig, path, overrides, path_keys=("estimator",), what=WHAT)


class ConstantRate:
    """A fixed pass rate for every query (a prior where no estimator is trained)."""

    def __init__(self, rate: float):
        self.rate = float(rate)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.full(len(texts), self.rate, dtype=np.float64)


def load_predictor(spec: BackendConfig) -> PassRatePredictor | None:
    """The predictor a backend's config names, or None when it has none."""
    if spec.rate is not None:
        return ConstantRate(spec.rate)
    if spec.estimator is not None:
        return _saved_estimator(spec.estimator, 1, f"backend {spec.name!r}: ", "a backend's own estimator needs one "
                                "(a multi-target estimator goes in the config's top-level `estimator:`)")
    if spec.predictor is not None:
        module_name, _, attr = spec.predictor.partition(":")
        if not module_name or not attr:
            raise DepoError(f"backend {spec.name!r}: predictor must be 'module:callable', got {spec.predictor!r}")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise DepoError(f"backend {spec.name!r}: cannot import predictor {spec.predictor!r}: {exc}") from None
        if not callable(factory):
            raise DepoError(f"backend {spec.name!r}: {spec.predictor!r} is not callable")
        try:
            predictor = factory()
        except Exception as exc:  # the user's factory: its failure is a start-up error, in one line
            raise DepoError(f"backend {spec.name!r}: {spec.predictor!r} raised {type(exc).__name__}: {exc}") from None
        if not hasattr(predictor, "predict"):
            raise DepoError(f"backend {spec.name!r}: {spec.predictor!r} returned an object without predict()")
        return predictor
    return None


def _saved_estimator(path: str, heads: int, owner: str, why: str) -> PassRatePredictor:
    """The estimator saved in `path`, refused at start-up unless it has `heads` heads (`why` says why)."""
    from depo.estimator import load_estimator  # torch and an encoder only for a config that names one

    if not Path(path).is_dir():
        raise DepoError(f"{owner}estimator directory not found: {path}")
    # a service sees mostly new queries: keep the frozen-encoder vector cache small
    estimator = load_estimator(path, cache_max_mb=64.0)
    found = int(getattr(getattr(estimator, "config", None), "num_targets", 1))
    if found != heads:
        raise DepoError(f"{owner}estimator {path} has {found} head(s); {why}")
    return estimator


def build_router(config: ServeConfig) -> Router:
    """The Router the config describes (loads every estimator once, at start-up)."""
    models = [ModelSpec(m.name, m.cost) for m in config.models]
    if config.estimator is not None:  # one multi-target predictor with a head per model, columns in `models` order
        predictors = _saved_estimator(config.estimator, len(models), "", f"{len(models)} models need one each")
    else:
        predictors = {m.name: p for m in config.models if (p := load_predictor(m)) is not None}
    return Router(models, predictors, rule=config.rule, tau=config.tau, lam=config.lam)
