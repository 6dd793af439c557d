"""Configuration of the routing service (`depo route serve --config FILE`), validated up front.

A YAML file names the backends (any OpenAI-compatible server: vLLM, SGLang, a provider), their
costs, and where each model's pass-rate predictor comes from. Every mistake is a one-line
DepoError at start-up, never a traceback on the first request. See
configs/route_serve.example.yaml for a commented example.

Per model, the predictor is one of:
- `estimator: DIR`  an OnlineEstimator saved with `.save(DIR)` (e.g. by `depo bench route --save`);
- `predictor: "module:factory"`  a Python callable returning any object with predict(texts);
- `rate: 0.73`  a constant prior (e.g. the large model's mean pass rate: with a constant p_large
  the gain rule reduces to a threshold on p_small, so one trained estimator suffices).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depo.errors import DepoError
from depo.routing.router import RULES, ModelSpec, PassRatePredictor, Router

ROUTED_ALIASES_DEFAULT = ("auto", "depo-router")


@dataclass
class BackendConfig:
    """One model behind the router."""

    name: str
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
    predictor: str | None = None
    rate: float | None = None

    @property
    def upstream_model(self) -> str:
        return self.backend_model or self.name

    def resolved_api_key(self) -> str | None:
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise DepoError(f"backend {self.name!r}: environment variable {self.api_key_env} is not set")
            return value
        return self.api_key


@dataclass
class ServeConfig:
    """The whole service: listening address, routing rule, backends and limits."""

    models: list[BackendConfig]
    host: str = "127.0.0.1"
    port: int = 8000
    rule: str = "threshold"
    tau: float = 0.75
    lam: float = 0.0
    routed_aliases: tuple[str, ...] = ROUTED_ALIASES_DEFAULT
    """Request `model` values that mean "let the router choose" (a configured name pins the model)."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0
    """Longest wait for the next byte from a backend (generation can be slow)."""
    max_concurrency: int = 64
    """Requests forwarded at once; more wait up to `queue_timeout_s`, then get 503."""
    queue_timeout_s: float = 30.0
    max_batch: int = 32
    """Most queries scored by the predictors in one call (concurrent requests are micro-batched)."""
    max_wait_ms: float = 2.0
    """How long the first query of a micro-batch waits for company before scoring."""
    bearer_token_env: str | None = None
    bearer_token: str | None = None
    """Clients must send `Authorization: Bearer <token>` when set (env var preferred)."""
    max_body_bytes: int = 4_000_000
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_token(self) -> str | None:
        if self.bearer_token_env:
            value = os.environ.get(self.bearer_token_env)
            if not value:
                raise DepoError(f"auth: environment variable {self.bearer_token_env} is not set")
            return value
        return self.bearer_token

    def validate(self) -> None:
        if len(self.models) < 2:
            raise DepoError("route serve: configure at least two models")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise DepoError(f"route serve: duplicate model names {names}")
        clash = set(names) & set(self.routed_aliases)
        if clash:
            raise DepoError(f"route serve: model names {sorted(clash)} clash with routed aliases")
        if self.rule not in RULES:
            raise DepoError(f"route serve: rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        for m in self.models:
            if not m.url.startswith(("http://", "https://")):
                raise DepoError(f"backend {m.name!r}: url must start with http:// or https://, got {m.url!r}")
            given = [k for k in ("estimator", "predictor", "rate") if getattr(m, k) is not None]
            if len(given) > 1:
                raise DepoError(f"backend {m.name!r}: give one of estimator, predictor, rate (got {given})")
            if m.rate is not None and not 0.0 <= m.rate <= 1.0:
                raise DepoError(f"backend {m.name!r}: rate must be in [0, 1], got {m.rate}")
        for name in ("connect_timeout_s", "read_timeout_s", "max_wait_ms", "queue_timeout_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise DepoError(f"route serve: {name} must be >= 0, got {value}")
        for name in ("max_concurrency", "max_batch", "max_body_bytes"):
            if int(getattr(self, name)) < 1:
                raise DepoError(f"route serve: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise DepoError(f"route serve: port must be in [0, 65535], got {self.port}")


_TOP_KEYS = {
    "host", "port", "rule", "tau", "lambda", "routed_aliases", "connect_timeout_s", "read_timeout_s",
    "max_concurrency", "queue_timeout_s", "max_batch", "max_wait_ms", "bearer_token_env", "bearer_token",
    "max_body_bytes", "models",
}  # fmt: skip
_MODEL_KEYS = {f for f in BackendConfig.__dataclass_fields__}


def config_from_dict(data: dict[str, Any], *, base_dir: Path | None = None) -> ServeConfig:
    """Build and validate a ServeConfig from parsed YAML; unknown keys are errors (typos fail loudly)."""
    if not isinstance(data, dict):
        raise DepoError("route serve config must be a mapping at the top level")
    unknown = sorted(_key(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise DepoError(f"route serve config: unknown key(s) {', '.join(unknown)}")
    raw_models = data.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise DepoError("route serve config: 'models' must be a non-empty list")
    models = []
    for i, raw in enumerate(raw_models):
        if not isinstance(raw, dict):
            raise DepoError(f"route serve config: models[{i}] must be a mapping")
        bad = sorted(_key(k) for k in raw if k not in _MODEL_KEYS)
        if bad:
            raise DepoError(f"route serve config: models[{i}] unknown key(s) {', '.join(bad)}")
        for key in ("name", "url", "cost"):
            if key not in raw:
                raise DepoError(f"route serve config: models[{i}] needs '{key}'")
        item = dict(raw)
        for key in ("backend_model", "api_key", "api_key_env", "estimator", "predictor"):
            _text(item.get(key), f"models[{i}].{key}")
        item["cost"] = _number(item["cost"], f"models[{i}].cost")
        if item.get("rate") is not None:
            item["rate"] = _number(item["rate"], f"models[{i}].rate")
        if item.get("estimator") and base_dir is not None and not Path(item["estimator"]).is_absolute():
            item["estimator"] = str(base_dir / item["estimator"])
        item["name"] = str(item["name"])
        item["url"] = str(item["url"]).rstrip("/")
        models.append(BackendConfig(**item))
    kwargs: dict[str, Any] = {k: v for k, v in data.items() if k not in ("models", "lambda")}
    for key in ("host", "rule", "bearer_token_env", "bearer_token"):
        _text(kwargs.get(key), key)
    if "lambda" in data:
        kwargs["lam"] = _number(data["lambda"], "lambda")
    for key in ("tau", "connect_timeout_s", "read_timeout_s", "queue_timeout_s", "max_wait_ms"):
        if key in kwargs:
            kwargs[key] = _number(kwargs[key], key)
    for key in ("port", "max_concurrency", "max_batch", "max_body_bytes"):
        if key in kwargs:
            kwargs[key] = int(_number(kwargs[key], key))
    if "routed_aliases" in kwargs:
        aliases = kwargs["routed_aliases"]
        if not isinstance(aliases, list) or not all(isinstance(a, str | int | float) for a in aliases):
            raise DepoError(f"route serve config: routed_aliases must be a list of names, got {aliases!r}")
        kwargs["routed_aliases"] = tuple(str(a) for a in aliases)
    config = ServeConfig(models=models, **kwargs)
    config.validate()
    return config


def _text(value: Any, what: str) -> None:
    """A string setting must be a string (or absent): YAML turns `host: [a]` into a list."""
    if value is not None and not isinstance(value, str):
        raise DepoError(f"route serve config: {what} must be a string, got {value!r}")


def _key(key: Any) -> str:
    """A YAML key (any scalar) as it reads in a one-line error."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _number(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DepoError(f"route serve config: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise DepoError(f"route serve config: {what} must be finite")
    return out


def load_config(path: str | Path) -> ServeConfig:
    """Read a YAML config; relative estimator paths are taken relative to the file."""
    from depo.yaml_file import read_yaml_mapping

    return config_from_dict(read_yaml_mapping(path, "route serve config"), base_dir=Path(path).parent)


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
        from depo.estimator import OnlineEstimator

        if not Path(spec.estimator).is_dir():
            raise DepoError(f"backend {spec.name!r}: estimator directory not found: {spec.estimator}")
        # a service sees mostly new queries: keep the frozen-encoder vector cache small
        return OnlineEstimator.load(spec.estimator, cache_max_mb=64.0)
    if spec.predictor is not None:
        module_name, _, attr = spec.predictor.partition(":")
        if not module_name or not attr:
            raise DepoError(f"backend {spec.name!r}: predictor must be 'module:callable', got {spec.predictor!r}")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise DepoError(f"backend {spec.name!r}: cannot import predictor {spec.predictor!r}: {exc}") from None
        predictor = factory()
        if not hasattr(predictor, "predict"):
            raise DepoError(f"backend {spec.name!r}: {spec.predictor!r} returned an object without predict()")
        return predictor
    return None


def build_router(config: ServeConfig) -> Router:
    """The Router the config describes (loads every estimator once, at start-up)."""
    predictors = {}
    for spec in config.models:
        predictor = load_predictor(spec)
        if predictor is not None:
            predictors[spec.name] = predictor
    models = [ModelSpec(m.name, m.cost) for m in config.models]
    return Router(models, predictors, rule=config.rule, tau=config.tau, lam=config.lam)  # type: ignore[arg-type]
