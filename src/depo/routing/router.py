"""Route each query to one of several models from predicted pass rates (docs/method.md 2.4, 4.6).

Two rules, both pure functions of the predicted rates, so routing is deterministic and batched
(one `predict` call per model, or one call of a multi-head predictor, per batch of queries):
the paper's threshold rule (small iff p_small >= tau) and the gain-aware rule
m* = argmax_m p_m - lambda * cost_m. A predictor is any object with `predict(texts) ->
np.ndarray` of pass rates in [0, 1]: the `OnlineEstimator`, a TF-IDF regressor, or a fixed
function of the text in tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args, runtime_checkable

import numpy as np

from depo.errors import DepoError

RuleName = Literal["threshold", "gain"]
RULES: tuple[str, ...] = get_args(RuleName)


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
        """One human-readable line, e.g. for a log."""
        rates = ", ".join(f"p({k})={v:.3f}" for k, v in self.rates.items())
        return f"{self.rule}: {rates} -> {self.model}"


def threshold_choice(rates: np.ndarray, tau: float) -> np.ndarray:
    """The paper's rule, generalised to a cascade over models sorted by cost.

    rates: (n, M) predicted pass rates, columns cheapest first; the last column is not read
    (the most expensive model is the fallback). A query goes to the cheapest model whose
    predicted rate is >= tau, else to the most expensive one. With M = 2 this is exactly
    "small iff p_small >= tau" (DEPO paper, section 5).
    """
    rates = np.asarray(rates, dtype=np.float64)
    last = rates.shape[1] - 1
    ok = rates[:, :last] >= tau
    return np.where(ok.any(axis=1), ok.argmax(axis=1), last).astype(np.int64)


def gain_scores(rates: np.ndarray, costs: Sequence[float], lam: float) -> np.ndarray:
    """(n, M) scores p_m - lambda * cost_m of the gain-aware rule (docs/method.md section 4.6)."""
    return np.asarray(rates, dtype=np.float64) - lam * np.asarray(costs, dtype=np.float64)[None, :]


def gain_choice(rates: np.ndarray, costs: Sequence[float], lam: float) -> np.ndarray:
    """Gain-aware rule: argmax_m p_m - lambda * cost_m, ties to the cheaper model.

    rates: (n, M) predicted pass rates, columns sorted by cost (cheapest first). np.argmax
    returns the first maximum, which is the cheapest tied model: deterministic and cost-saving.
    """
    return gain_scores(rates, costs, lam).argmax(axis=1).astype(np.int64)


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
        self.models: list[ModelSpec] = sorted(models, key=lambda m: m.cost)
        # multi-head columns come in the given order; the router's columns are cheapest first
        self._given_columns = [names.index(m.name) for m in self.models]
        self.rule: str = rule
        self.tau = float(tau)
        self.lam = float(lam)
        self._multi: PassRatePredictor | None = None
        self._per_model: dict[str, PassRatePredictor] = {}
        if not isinstance(predictors, Mapping):
            if not hasattr(predictors, "predict"):
                raise DepoError("predictors must be a mapping name -> predictor or one object with predict()")
            self._multi = predictors
        else:
            unknown = set(predictors) - set(names)
            if unknown:
                raise DepoError(f"predictors for unknown models: {sorted(unknown)}")
            needed = names if rule == "gain" else [m.name for m in self.models[:-1]]
            missing = [n for n in needed if n not in predictors]
            if missing:
                raise DepoError(f"rule {rule!r} needs a pass-rate predictor for {missing}")
            self._per_model = dict(predictors)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def costs(self) -> list[float]:
        return [m.cost for m in self.models]

    def predict_rates(self, texts: Sequence[str]) -> np.ndarray:
        """(n, M) predicted pass rates, columns in `self.models` order; NaN where not predicted."""
        n, m = len(texts), len(self.models)
        out = np.full((n, m), np.nan, dtype=np.float64)
        if n == 0:
            return out
        if self._multi is not None:
            raw = np.asarray(self._multi.predict(list(texts)), dtype=np.float64)
            if raw.shape != (n, m):
                raise DepoError(f"multi-head predictor returned shape {raw.shape}, expected {(n, m)}")
            out = raw[:, self._given_columns]
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
        scores = gain_scores(rates, self.costs, self.lam) if self.rule == "gain" else None
        names = self.names
        # explanations show the models whose pass rate is predicted
        shown = [c for c, n in enumerate(names) if self._multi is not None or n in self._per_model]
        return [
            Decision(
                model=names[j],
                index=j,
                rule=self.rule,
                rates={names[c]: float(rates[i, c]) for c in shown},
                scores={} if scores is None else {names[c]: float(scores[i, c]) for c in shown},
            )
            for i, j in enumerate(self.choose(rates).tolist())
        ]

    def fallback_order(self, chosen: str) -> list[str]:
        """Models to try when `chosen` is down: the chosen one, then the others by distance in the
        cost order, preferring the more capable (more expensive) model on ties."""
        j = self.names.index(chosen)
        return [self.names[k] for k in sorted(range(len(self.models)), key=lambda k: (abs(k - j), -k))]
