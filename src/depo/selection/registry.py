"""The one registry of selectors: name -> (options model, builder).

Every trainer (the built-in engine, TRL, verl), the benchmarks and the router build selectors
with `make_selector`, so a name means the same selector everywhere, and its options are
checked by the same typed model. A selector registers itself next to its class:

    @register_selector("history", HistoryConfig)
    def _history(options, *, group_size, seed, estimator): return History(options, seed=seed)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from depo.config import Config
from depo.errors import DepoError
from depo.estimator import build_estimator, is_estimator
from depo.selection.base import Selector

Builder = Callable[..., Selector]


@dataclass(frozen=True)
class SelectorSpec:
    """A registered selector: its options model, its builder, the kind of estimator it reads
    by default ("bayes" or "trunk"; None for selectors without one), and, for a selector that
    needs what only a benchmark gives it (the policy itself), the command that runs it."""

    name: str
    options: type[Config]
    build: Builder
    estimator: str | None
    bench_only: str | None = None

    @property
    def uses_estimator(self) -> bool:
        return self.estimator is not None


SELECTORS: dict[str, SelectorSpec] = {}


def register_selector(name: str, options: type[Config], *, estimator: str | None = None,
                      bench_only: str | None = None) -> Callable[[Builder], Builder]:
    """Register `builder(options, *, group_size, seed, estimator) -> Selector` under `name`;
    `estimator` is the kind of estimator it is given by default; `bench_only` names the command
    that runs a selector no trainer can (trainers refuse it up front)."""

    def wrap(builder: Builder) -> Builder:
        if name in SELECTORS:
            raise ValueError(f"selector {name!r} is registered twice")
        SELECTORS[name] = SelectorSpec(name, options, builder, estimator, bench_only)
        return builder

    return wrap


def selector_spec(name: str, *, key: str | None = None) -> SelectorSpec:
    """The registered selector `name`; an unknown one is a DepoError (prefixed by the config `key` that named it)."""
    try:
        return SELECTORS[name]
    except KeyError:
        where = f"{key}: " if key else ""
        raise DepoError(f"{where}unknown selector {name!r}; choose one of: {', '.join(SELECTORS)}") from None


def trainable_selector(name: str, *, key: str | None = None) -> SelectorSpec:
    """`selector_spec(name)`, refused with the command to use when only a benchmark can run it."""
    spec = selector_spec(name, key=key)
    if spec.bench_only:
        where = f"{key}: " if key else ""
        raise DepoError(f"{where}selector {name!r} runs only in a benchmark: {spec.bench_only}")
    return spec


def selector_options(name: str, options: Mapping[str, Any] | None = None) -> Config:
    """The typed, validated options of selector `name` (unknown keys refused with the valid ones)."""
    return selector_spec(name).options.build(options, what=f"selector {name!r} options")


def make_selector(name: str, *, group_size: int, seed: int, options: Mapping[str, Any] | Config | None = None,
                  estimator: Any = None) -> Selector:
    """The selector registered as `name`, with its `options` (a mapping or its options model).

    `estimator` is what estimator-driven selectors (depo, depo-paper) read: an estimator object,
    or anything `depo.estimator.build_estimator` accepts (None = the selector's default kind of
    estimator, a config model or mapping of its fields, or the directory of a saved estimator).
    """
    if group_size < 2:
        raise DepoError(f"group size must be >= 2 (GRPO needs a group to compare), got {group_size}")
    spec = selector_spec(name)
    if not isinstance(options, Config):
        options = selector_options(name, options)
    if spec.uses_estimator and not is_estimator(estimator):
        estimator = build_estimator(estimator, seed=seed, default_kind=spec.estimator)
    return spec.build(options, group_size=group_size, seed=seed, estimator=estimator)
