"""Route each query to one of several models from predicted pass rates (docs/method.md section 2.4).

The DEPO paper (section 5, Table 3) trains the difficulty estimator for the *small* policy and
sends a query to the small model iff its predicted pass rate p_small >= tau, else to the large
one. That rule ignores what the large model would do (docs/method.md section 4.6): a query
both models fail, or both solve, costs accuracy nothing when sent to the small model. The
gain-aware rule therefore predicts every model's pass rate and picks

    m* = argmax_m  p_m - lambda * cost_m                                  (gain-aware rule)

which, for two models, sends a query to the large model only when its predicted gain
p_large - p_small exceeds lambda * (cost_large - cost_small). Both rules are pure functions of
the predicted rates, so routing is deterministic and batched: one `predict` call per model (or
one call of a multi-head predictor) per batch of queries.

A predictor is any object with `predict(texts) -> np.ndarray` of pass rates in [0, 1]: the
`OnlineEstimator`, a TF-IDF regressor, or a fixed function of the text in tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from depo.errors import DepoError

RuleName = Literal["threshold", "gain"]
RULES: tuple[str, ...] = ("threshold", "gain")


@runtime_checkable
class PassRatePredictor(Protocol):
    """Anything that predicts pass rates for a batch of query texts."""

    def predict(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelSpec:
    """One routable model: its name (as the backends know it) and its cost per query.

    The cost is in any unit shared by all models (parameters in billions, dollars per query);
    only differences between models matter to the gain-aware rule.
    """

    name: str
    cost: float

    def __post_init__(self) -> None:
        if not self.name:
            raise DepoError("a routed model needs a non-empty name")
        if not math.isfinite(self.cost) or self.cost < 0:
            raise DepoError(f"model {self.name!r}: cost must be a finite number >= 0, got {self.cost}")


@dataclass(frozen=True)
class Decision:
    """Why one query went where it went: the per-query explanation."""

    model: str
    index: int  # position of `model` in Router.models (sorted by cost, cheapest first)
    rule: str
    rates: dict[str, float]  # predicted pass rate per model that has a predictor
    scores: dict[str, float] = field(default_factory=dict)  # gain rule: p_m - lambda * cost_m

    def explain(self) -> str:
        """One human-readable line, e.g. for logs and the x-depo-explain header."""
        rates = ", ".join(f"p({k})={v:.3f}" for k, v in self.rates.items())
        return f"{self.rule}: {rates} -> {self.model}"

    def to_dict(self) -> dict:
        return {"model": self.model, "rule": self.rule, "rates": self.rates, "scores": self.scores}

    def rates_json(self) -> str:
        return json.dumps({k: round(v, 4) for k, v in self.rates.items()}, separators=(",", ":"))


def threshold_choice(rates: np.ndarray, tau: float) -> np.ndarray:
    """The paper's rule, generalised to a cascade over models sorted by cost.

    rates: (n, M) predicted pass rates, columns cheapest first; the last column is not read
    (the most expensive model is the fallback). A query goes to the cheapest model whose
    predicted rate is >= tau, else to the most expensive one. With M = 2 this is exactly
    "small iff p_small >= tau" (DEPO paper, section 5).
    """
    rates = np.asarray(rates, dtype=np.float64)
    n, m = rates.shape
    ok = rates[:, : m - 1] >= tau
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), m - 1)
    return first.astype(np.int64) if n else np.zeros(0, dtype=np.int64)


def gain_choice(rates: np.ndarray, costs: Sequence[float], lam: float) -> np.ndarray:
    """Gain-aware rule: argmax_m p_m - lambda * cost_m, ties to the cheaper model.

    rates: (n, M) predicted pass rates, columns sorted by cost (cheapest first). np.argmax
    returns the first maximum, which is the cheapest tied model: deterministic and cost-saving.
    """
    rates = np.asarray(rates, dtype=np.float64)
    scores = rates - lam * np.asarray(costs, dtype=np.float64)[None, :]
    return scores.argmax(axis=1).astype(np.int64)


class Router:
    """Routes query texts to models by predicted pass rates.

    models: the routable models; kept sorted by cost (cheapest first, stable for ties).
    predictors: either a mapping model name -> predictor returning (n,) rates, or one
        multi-head predictor whose `predict` returns (n, M) rates in `models` order as given.
        The threshold rule needs predictors for every model but the most expensive; the
        gain rule needs all of them.
    rule: "threshold" (paper: small iff p_small >= tau) or "gain" (argmax p_m - lambda cost_m).
    """

    def __init__(
        self,
        models: Sequence[ModelSpec],
        predictors: Mapping[str, PassRatePredictor] | PassRatePredictor,
        *,
        rule: RuleName = "threshold",
        tau: float = 0.75,
        lam: float = 0.0,
    ) -> None:
        if len(models) < 2:
            raise DepoError("routing needs at least two models")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise DepoError(f"duplicate model names in {names}")
        if rule not in RULES:
            raise DepoError(f"unknown routing rule {rule!r}; choose one of {', '.join(RULES)}")
        if not 0.0 <= tau <= 1.0:
            raise DepoError(f"tau must be in [0, 1], got {tau}")
        if not math.isfinite(lam) or lam < 0:
            raise DepoError(f"lambda must be a finite number >= 0, got {lam}")
        self._given_order = names
        self.models: list[ModelSpec] = sorted(models, key=lambda m: m.cost)
        self.rule: str = rule
        self.tau = float(tau)
        self.lam = float(lam)
        if isinstance(predictors, Mapping):
            unknown = set(predictors) - set(names)
            if unknown:
                raise DepoError(f"predictors for unknown models: {sorted(unknown)}")
            self._per_model: dict[str, PassRatePredictor] | None = dict(predictors)
            self._multi: PassRatePredictor | None = None
            needed = names if rule == "gain" else [m.name for m in self.models[:-1]]
            missing = [n for n in needed if n not in predictors]
            if missing:
                raise DepoError(f"rule {rule!r} needs a pass-rate predictor for {missing}")
        else:
            if not hasattr(predictors, "predict"):
                raise DepoError("predictors must be a mapping name -> predictor or one object with predict()")
            self._per_model = None
            self._multi = predictors

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def costs(self) -> list[float]:
        return [m.cost for m in self.models]

    def predicted_names(self) -> list[str]:
        """Models whose pass rate is predicted (and reported in explanations)."""
        if self._per_model is None:
            return self.names
        return [n for n in self.names if n in self._per_model]

    def predict_rates(self, texts: Sequence[str]) -> np.ndarray:
        """(n, M) predicted pass rates, columns in `self.models` order; NaN where not predicted."""
        n = len(texts)
        out = np.full((n, len(self.models)), np.nan, dtype=np.float64)
        if n == 0:
            return out
        if self._multi is not None:
            raw = np.asarray(self._multi.predict(list(texts)), dtype=np.float64)
            if raw.shape != (n, len(self.models)):
                raise DepoError(f"multi-head predictor returned shape {raw.shape}, expected {(n, len(self.models))}")
            for j, name in enumerate(self.names):
                out[:, j] = raw[:, self._given_order.index(name)]
        else:
            assert self._per_model is not None
            for j, name in enumerate(self.names):
                if name in self._per_model:
                    col = np.asarray(self._per_model[name].predict(list(texts)), dtype=np.float64).reshape(-1)
                    if col.shape != (n,):
                        raise DepoError(f"predictor for {name!r} returned {col.shape[0]} rates for {n} texts")
                    out[:, j] = col
        known = ~np.isnan(out)
        if np.any((out[known] < 0) | (out[known] > 1)):
            raise DepoError("a predictor returned pass rates outside [0, 1]")
        return out

    def choose(self, rates: np.ndarray) -> np.ndarray:
        """Model indices (into self.models) for (n, M) rates under this router's rule."""
        if self.rule == "threshold":
            return threshold_choice(np.nan_to_num(rates, nan=0.0), self.tau)
        return gain_choice(rates, self.costs, self.lam)

    def route(self, texts: Sequence[str]) -> list[Decision]:
        """Route a batch of texts; one Decision (model + explanation) per text, same order."""
        rates = self.predict_rates(texts)
        chosen = self.choose(rates)
        shown = self.predicted_names()
        cols = [self.names.index(n) for n in shown]
        costs = np.asarray(self.costs)
        decisions = []
        for i, j in enumerate(chosen.tolist()):
            r = {n: float(rates[i, c]) for n, c in zip(shown, cols)}
            scores = (
                {n: float(rates[i, c] - self.lam * costs[c]) for n, c in zip(shown, cols)}
                if self.rule == "gain"
                else {}
            )
            decisions.append(Decision(model=self.names[j], index=j, rule=self.rule, rates=r, scores=scores))
        return decisions

    def fallback_order(self, chosen: str) -> list[str]:
        """Models to try when `chosen` is down: the chosen one, then the others by rising cost
        distance, preferring the more capable (more expensive) model on ties."""
        j = self.names.index(chosen)
        others = sorted(
            (k for k in range(len(self.models)) if k != j),
            key=lambda k: (abs(k - j), -k),
        )
        return [chosen] + [self.names[k] for k in others]
