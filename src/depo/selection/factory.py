"""Build a selector by name, as `depo train --selector NAME` does."""

from __future__ import annotations

from typing import Any

from depo.errors import DepoError
from depo.selection.base import Selector, Uniform

SELECTORS = ("uniform", "depo", "depo-paper", "history", "oracle")


def _check_options(name: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise DepoError(f"unknown option(s) for selector {name!r}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}")


def _default_estimator(config: Any, init: str | None) -> Any:
    """The project's online estimator (heavy import, done lazily): loaded from `init` (a
    directory written by OnlineEstimator.save, for a warm start), else built from `config`
    (an EstimatorConfig, a dict of its fields, or None for the paper's defaults)."""
    from depo.estimator import EstimatorConfig, OnlineEstimator

    if init is not None:
        return OnlineEstimator.load(init)
    if isinstance(config, dict):
        config = EstimatorConfig.from_dict(config)
    return OnlineEstimator(config or EstimatorConfig())


def make_selector(
    name: str,
    *,
    group_size: int,
    seed: int,
    options: dict[str, Any] | None = None,
    estimator: Any = None,
) -> Selector:
    """A selector for `name` in SELECTORS.

    `options` are the selector's own keyword arguments (see each class: `DEPOConfig` fields for
    depo / depo-paper, `History`, `Oracle`); unknown keys are a DepoError. `estimator` (anything
    with predict/update/state_dict/load_state_dict) is used by depo and depo-paper; when None a
    `depo.estimator.OnlineEstimator` is built from `options["estimator_config"]` (dict or
    EstimatorConfig) or loaded from `options["estimator_init"]` (a saved estimator directory).
    `oracle` needs `options["pass_rates"]`
    (a mapping prompt_id -> true pass rate, or a callable).
    """
    options = dict(options or {})
    if group_size < 2:
        raise DepoError(f"group size must be >= 2 (GRPO needs a group to compare), got {group_size}")
    if name == "uniform":
        _check_options(name, options, set())
        return Uniform()
    if name in ("depo", "depo-paper"):
        from dataclasses import fields

        from depo.selection.depo import DEPO, DEPOConfig

        allowed = {f.name for f in fields(DEPOConfig)} - {"mode", "group_size"}
        _check_options(name, options, allowed | {"estimator_config", "estimator_init"})
        config, init = options.pop("estimator_config", None), options.pop("estimator_init", None)
        if estimator is None:
            estimator = _default_estimator(config, init)
        mode = "paper" if name == "depo-paper" else "default"
        return DEPO(estimator, DEPOConfig(mode=mode, group_size=group_size, **options), seed=seed)
    if name == "history":
        from depo.selection.history import History

        _check_options(name, options, {"p_easy", "p_hard", "target_zero_variance", "delta_p", "p_min"})
        return History(seed=seed, **options)
    if name == "oracle":
        from depo.selection.oracle import Oracle

        if "pass_rates" not in options:
            raise DepoError("selector 'oracle' needs options['pass_rates'] (prompt_id -> true pass rate)")
        _check_options(name, options, {"pass_rates", "threshold"})
        return Oracle(group_size=group_size, **options)
    raise DepoError(f"unknown selector {name!r}; choose one of: {', '.join(SELECTORS)}")
