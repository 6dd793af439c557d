"""The DEPO selector: skip prompts predicted to give a zero-variance group, before the rollout.

Two modes. `paper` is the reference release (docs/method.md section 2.1): keep everything for
`warmup_steps` (100) steps, then keep a prompt iff the estimator's p_hat is in [lo, hi] =
[0.15, 0.85]; no memory, no exploration. `default` is ours (section 4): the rule keeps a prompt
iff P(zero-variance group) <= `threshold` under a Beta-binomial (4.2), with a per-prompt
discounted Beta memory whose prior is p_hat (4.4, memory.py), flat exploration of rejected
prompts that measures the false-skip rate (4.1), graded rewards (4.5), the estimator health
fallback (4.7, health.py) and the `skip` side (4.8). With a Bayesian estimator the default mode
scores with its predictive distribution and explores by Thompson sampling (4.10). Section 4.11
says why each default has its value.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from depo.config import Config
from depo.errors import DepoError
from depo.estimator.features import text_key
from depo.metrics import auc, calib_mae, share
from depo.selection.health import EstimatorHealth
from depo.selection.memory import BetaMemory
from depo.selection.registry import register_selector
from depo.types import Candidate, Decisions, GroupOutcome
from depo.zero_variance import (
    beta_binomial_extremes,
    logit_normal_extremes,
    logit_normal_mean,
    zero_var_extremes,
)

RECORD_TTL_STEPS = 100
"""Select-time records of prompts never observed (rejected, or dropped by the trainer) expire."""


class DEPOConfig(Config):
    """DEPO selection settings. Fields left unset take the mode's default (see the module doc)."""

    mode: Literal["default", "paper"] = "default"
    """default (ours) or paper (the reference release's rule)."""
    group_size: int = Field(8, ge=2)
    """G, the responses per prompt: the rule's P(zero-variance) depends on it."""
    warmup_steps: int | None = Field(None, ge=0)
    """Observe steps during which every prompt is kept (paper 100, default 10)."""
    lo: float = Field(0.15, ge=0.0, le=1.0)
    """Paper mode: keep iff lo <= p_hat <= hi."""
    hi: float = Field(0.85, ge=0.0, le=1.0)
    """Paper mode: upper end of the window."""
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Default mode: keep iff P(zero-variance group) <= threshold."""
    skip: Literal["both", "hard", "easy"] = "both"
    """Which zero-variance side may be skipped (docs/method.md section 4.8)."""
    explore: float | None = Field(None, ge=0.0, le=1.0)
    """Probability of rolling out a rejected prompt anyway (default 0.05, paper 0); not used when
    Thompson sampling explores (a Bayesian estimator in default mode)."""
    memory: bool | None = None
    """Per-prompt memory of past groups (default on, paper off)."""
    thompson: bool = True
    """Default mode with a Bayesian estimator: rank and explore by one posterior draw of the
    estimator per candidate (Thompson sampling) instead of the flat `explore` rate."""
    prior_strength: float = Field(2.0, gt=0.0)
    """n0, the pseudo-count of the estimator's prediction in the memory's prior."""
    memory_half_life: float = Field(100.0, gt=0.0)
    """Steps after which a past group's evidence counts half."""
    health: bool | None = None
    """Estimator health fallback (default on, paper off)."""
    health_min_spread: float = Field(0.01, ge=0.0)
    """Collapse: std of a step's predictions below this."""
    health_max_calib_mae: float = Field(0.4, ge=0.0, le=1.0)
    """Drift: rolling |p_hat - mean reward| above this."""
    health_window: int = Field(5, ge=1)
    """Steps pooled for the rolling calibration error."""
    health_patience: int = Field(3, ge=1)
    """Consecutive unhealthy steps before falling back."""

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        paper = values.get("mode", "default") == "paper"
        defaults = {"warmup_steps": 100 if paper else 10, "explore": 0.0 if paper else 0.05,
                    "memory": not paper, "health": not paper}
        return {**values, **{k: v for k, v in defaults.items() if values.get(k) is None}}

    @model_validator(mode="after")
    def _window(self) -> DEPOConfig:
        if self.lo > self.hi:
            raise ValueError(f"need lo <= hi, got lo={self.lo}, hi={self.hi}")
        return self


@dataclass
class _Record:
    """What was known about a prompt when it was decided (for the metrics at observe time)."""

    pred: float  # estimator's p_hat (text only)
    p_zero: float  # predicted P(zero-variance group) used by the rule
    rule_keep: bool  # what the rule said (before warm-up and exploration)
    explored: bool
    warmup: bool
    step: int
    fallback: bool = False  # kept by the health fallback whatever the rule said


class DEPO:
    """Selector driven by a difficulty estimator (predict/update/state_dict/load_state_dict)."""

    def __init__(self, estimator: Any, config: DEPOConfig | None = None, *, seed: int = 0) -> None:
        self.estimator = estimator
        self.config = cfg = config or DEPOConfig()
        self.name = "depo-paper" if cfg.mode == "paper" else "depo"
        self.rng = np.random.default_rng(int(seed))
        self.memory = BetaMemory(cfg.prior_strength, cfg.memory_half_life)
        self.steps = 0  # observe() calls = RL steps
        self._records: dict[str, list[_Record]] = {}
        self._predict_s = 0.0
        self.health = EstimatorHealth(
            min_spread=cfg.health_min_spread, max_calib_mae=cfg.health_max_calib_mae,
            window=cfg.health_window, patience=cfg.health_patience,
        ) if cfg.health else None

    # -- scoring ---------------------------------------------------------------------------
    @property
    def in_warmup(self) -> bool:
        return self.steps < self.config.warmup_steps

    @property
    def in_fallback(self) -> bool:
        """True while the health check has the selector keep every prompt."""
        return self.health is not None and self.health.fallback and not self.in_warmup

    @property
    def keeps_all(self) -> bool:
        """Warm-up or health fallback: every scanned prompt is kept (GRPO's behaviour), so a
        keep-by-rank stream scans only a batch instead of ranking a pool (docs/method.md 4.7)."""
        return self.in_warmup or self.in_fallback

    @property
    def bayesian(self) -> bool:
        """The estimator gives a predictive distribution (depo.estimator.BayesEstimator): the default
        mode then scores with it, and explores by Thompson sampling."""
        return self.config.mode == "default" and callable(getattr(self.estimator, "predict_distribution", None))

    def _predict(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        pred = np.asarray(self.estimator.predict(texts), dtype=float).reshape(-1)
        self._predict_s += time.perf_counter() - start
        if pred.shape[0] != len(texts):
            raise ValueError(f"estimator.predict returned {pred.shape[0]} values for {len(texts)} texts")
        return pred

    def _memory_keys(self, batch: Sequence[Candidate]) -> list[str]:
        """The memory is keyed by the prompt's text: the same question under two ids is one prompt
        for the policy."""
        return [text_key(c.text) for c in batch]

    def _score(self, batch: Sequence[Candidate]) -> dict[str, np.ndarray]:
        """Predicted pass rate `pred` and (P(all wrong), P(all correct)) per candidate (`none`,
        `every`); with Thompson sampling also `none_draw`, `every_draw` under one posterior draw.

        Paper mode: the plug-in p^G + (1-p)^G of p_hat. Default mode with a Bayesian estimator:
        the logit-normal predictive times the prompt's own discounted groups (docs/method.md
        section 4.10). Default mode with another estimator: the Beta-binomial of the memory
        posterior whose prior is p_hat with pseudo-count n0 (section 4.4).
        """
        cfg, g = self.config, self.config.group_size
        texts = [c.text for c in batch]
        if not self.bayesian:
            pred = self._predict(texts)
            if cfg.mode == "paper":
                none, every = zero_var_extremes(pred, g)
            else:
                keys = self._memory_keys(batch) if cfg.memory else [""] * len(batch)
                memory = self.memory if cfg.memory else BetaMemory(cfg.prior_strength)
                none, every = beta_binomial_extremes(*memory.posterior(keys, pred, self.steps), g)
            return {"pred": pred, "none": none, "every": every}
        thompson = cfg.thompson and not self.in_warmup
        start = time.perf_counter()
        d = self.estimator.predict_distribution(texts, sample=thompson)
        self._predict_s += time.perf_counter() - start
        mean, var, tau2 = d["mean"][:, 0], d["var"][:, 0], float(d["tau"][0]) ** 2
        s, f = self.memory.evidence(self._memory_keys(batch), self.steps) if cfg.memory else (None, None)
        out = {"pred": logit_normal_mean(mean, var + tau2)}
        out["none"], out["every"] = logit_normal_extremes(mean, var + tau2, g, s, f)
        if thompson:
            out["none_draw"], out["every_draw"] = logit_normal_extremes(d["sample"][:, 0], np.full_like(mean, tau2), g, s, f)
        return out

    def zero_var_prob(self, batch: Sequence[Candidate]) -> np.ndarray:
        """P(zero-variance group) per candidate, as the rule sees it (no side effect on the stream;
        with a Bayesian estimator and Thompson sampling it takes a draw from the estimator's generator)."""
        score = self._score(batch)
        return score["none"] + score["every"]

    # -- Selector --------------------------------------------------------------------------
    def select(self, batch: Sequence[Candidate]) -> Decisions:
        n = len(batch)
        if n == 0:
            return Decisions.keep_all(0)
        cfg = self.config
        score = self._score(batch)
        pred, none, every = score["pred"], score["none"], score["every"]
        p_zero = none + every
        hard_side, easy_side = cfg.skip in ("both", "hard"), cfg.skip in ("both", "easy")
        if cfg.mode == "paper":
            rule = ((pred >= cfg.lo) | (not hard_side)) & ((pred <= cfg.hi) | (not easy_side))
            priority = mean_priority = -np.abs(pred - 0.5)
        else:
            p_skip = none * hard_side + every * easy_side  # the zero-variance side(s) we may skip
            rule = p_skip <= cfg.threshold
            priority = mean_priority = -p_skip
            if "none_draw" in score:
                priority = -(score["none_draw"] * hard_side + score["every_draw"] * easy_side)
        u = self.rng.random(n)  # drawn for every candidate: the stream does not depend on outcomes
        warmup, fallback = self.in_warmup, self.in_fallback
        if self.health is not None:
            self.health.record_predictions(pred)
        if warmup:
            explored = np.zeros(n, dtype=bool)
        elif "none_draw" in score:  # Thompson: the draw's rule keeps what the mean's would not
            explored = ~rule & (-priority <= cfg.threshold)
        else:
            explored = ~rule & (u < cfg.explore)
        keep = np.ones(n, dtype=bool) if warmup or fallback else rule | explored
        for i, c in enumerate(batch):
            rec = _Record(float(pred[i]), float(p_zero[i]), bool(rule[i]), bool(explored[i]),
                          warmup, self.steps, fallback)
            self._records.setdefault(c.prompt_id, []).append(rec)
        return Decisions(keep=keep.tolist(), explored=explored.tolist(), priority=priority,
                         mean_priority=mean_priority)

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        """Update the estimator (once) and the memory with this step's groups; return metrics."""
        outcomes = list(outcomes)
        metrics: dict[str, float] = {}
        recs = [self._pop_record(o.prompt_id) for o in outcomes]
        informative = [not o.is_zero_variance for o in outcomes]
        targets = [o.mean_reward for o in outcomes]
        # The stream's word on exploration where it gave one: a rank stream may keep a prompt the
        # rule rejected because it ranked well, which is no random sample of the rejected ones.
        explored = [o.explored if o.explored is not None else (r is not None and r.explored)
                    for o, r in zip(outcomes, recs)]

        if outcomes:
            metrics["select/effective_rate"] = share(informative)
            metrics["select/explored"] = float(sum(explored))
            metrics["estimator/target_mean"] = float(np.mean(targets))
        seen = [i for i, r in enumerate(recs) if r is not None]
        seen_pred, seen_targets = [recs[i].pred for i in seen], [targets[i] for i in seen]
        if seen:
            metrics["estimator/pred_mean"] = float(np.mean(seen_pred))
            metrics["estimator/calib_mae"] = calib_mae(seen_pred, seen_targets)
            metrics["select/p_zero_mean"] = float(np.mean([recs[i].p_zero for i in seen]))
            a = auc([recs[i].p_zero for i in seen], [not informative[i] for i in seen])
            if a is not None:
                metrics["estimator/auc_zero_var"] = a
            # Rejected by the rule yet rolled out at random (exploration), by warm-up or by the
            # health fallback: an unbiased sample of what the rule skips. Forced prompts
            # (best-ranked) are excluded.
            shadow = [i for i in seen
                      if not recs[i].rule_keep and (explored[i] or recs[i].warmup or recs[i].fallback)]
            if shadow:
                metrics["estimator/false_skip_rate"] = share([informative[i] for i in shadow])
                metrics["estimator/false_skip_n"] = float(len(shadow))

        if self.config.memory:
            for o in outcomes:
                self.memory.update(text_key(o.text), o.rewards, self.steps)
            metrics["select/memory_size"] = float(len(self.memory))
        t0 = time.perf_counter()
        est = dict(self.estimator.update(outcomes) or {}) if outcomes else {}
        update_s = time.perf_counter() - t0
        for key, value in est.items():
            metrics[key if "/" in key else f"estimator/{key}"] = float(value)
        metrics["time/estimator_update_s"] = update_s
        metrics["time/estimator_predict_s"] = self._predict_s
        metrics["select/warmup"] = float(self.in_warmup)
        if self.health is not None:
            # select/fallback: this step's decisions were made in fallback; the check below
            # decides the next step's (it needs this step's groups).
            metrics["select/fallback"] = float(self.in_fallback)
            self.health.fallback_steps += int(self.in_fallback)
            metrics["select/fallback_steps"] = float(self.health.fallback_steps)
            metrics.update(self.health.end_step(seen_pred, seen_targets, check=not self.in_warmup))
        self._predict_s = 0.0
        self.steps += 1
        self._expire_records()
        return metrics

    def _pop_record(self, prompt_id: str) -> _Record | None:
        """The newest decision about this prompt: an older one is a rejection never rolled out
        (the prompt came back in a later epoch), so it does not describe this group."""
        stack = self._records.get(prompt_id)
        if not stack:
            return None
        rec = stack.pop()
        if not stack:
            del self._records[prompt_id]
        return rec

    def _expire_records(self) -> None:
        for pid in list(self._records):
            kept = [r for r in self._records[pid] if self.steps - r.step <= RECORD_TTL_STEPS]
            if kept:
                self._records[pid] = kept
            else:
                del self._records[pid]

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "estimator": self.estimator.state_dict(),
            "memory": self.memory.state_dict(),
            "rng": self.rng.bit_generator.state,
            "steps": self.steps,
            "records": {k: [asdict(r) for r in v] for k, v in self._records.items()},
            "health": self.health.state_dict() if self.health is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"]["mode"] != self.config.mode:
            raise DepoError(f"checkpoint is for DEPO mode {state['config']['mode']!r}, not {self.config.mode!r}")
        self.estimator.load_state_dict(state["estimator"])
        self.memory.load_state_dict(state["memory"])
        self.rng.bit_generator.state = state["rng"]
        self.steps = int(state["steps"])
        self._records = {k: [_Record(**r) for r in v] for k, v in state["records"].items()}
        if self.health is not None and state.get("health") is not None:  # older checkpoints have none
            self.health.load_state_dict(state["health"])


class DEPOOptions(DEPOConfig):
    """The options of the `depo` / `depo-paper` selectors: DEPOConfig without the fields the name fixes."""

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, values: Any) -> Any:
        """Overrides DEPOConfig's: unset fields stay unset, so the selector name's mode fills them."""
        if isinstance(values, dict):
            for key in ("mode", "group_size"):
                if key in values:
                    raise ValueError(f"{key} is set by the selector name and the trainer's group size, not by an option")
        return values


def _build_depo(mode: str, options: DEPOOptions, *, group_size: int, seed: int, estimator: Any) -> DEPO:
    values = {**options.model_dump(exclude_unset=True), "mode": mode, "group_size": group_size}
    return DEPO(estimator, DEPOConfig.build(values), seed=seed)


register_selector("depo", DEPOOptions, estimator="trunk")(partial(_build_depo, "default"))
register_selector("depo-paper", DEPOOptions, estimator="trunk")(partial(_build_depo, "paper"))
