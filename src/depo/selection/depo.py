"""The DEPO selector: skip prompts predicted to give a zero-variance group, before the rollout.

Two modes (docs/method.md sections 2 and 4):

`paper` - the reference release, faithfully: keep everything for `warmup_steps` (100) observe
steps, then keep a prompt iff the estimator's pass rate p_hat is in [lo, hi] = [0.15, 0.85].
No memory, no exploration.

`default` - ours, fixing the weaknesses listed in docs/method.md section 4:
  (a) the rule follows the group size: keep iff P(zero-variance group) <= threshold, where
      P = P(K = 0) + P(K = G) for K ~ Beta-binomial(G, a, b) (see zero_variance.py);
  (b) exploration: each rejected prompt is still rolled out with probability `explore` (0.05),
      flagged `explored`, so the estimator keeps getting labels over the whole range and the
      false-skip rate (informative share among rejected-but-rolled-out prompts) is measured;
  (c) memory: (a, b) is a per-prompt discounted Beta posterior (memory.py) whose prior is the
      estimator's prediction with pseudo-count n0 = `prior_strength`; unseen prompts rely on
      the text, seen ones on the text and their own past groups;
  (d) graded rewards: zero variance means reward std <= 1e-6 (`is_zero_variance`), the label
      is the mean reward;
  (e) health fallback (health.py): when the estimator's predictions collapse (spread of a
      step's predictions < `health_min_spread`) or its rolling calibration error exceeds
      `health_max_calib_mae`, for `health_patience` consecutive steps, the selector keeps every
      prompt (`select/fallback` = 1) until the first healthy step. The estimator keeps
      learning meanwhile; exploration flags and the false-skip measurement go on as usual.
  (f) `skip`: which zero-variance side may be skipped: "both" (the paper), "hard" (only
      prompts predicted all-wrong: the rule uses P(K = 0), paper mode drops the upper bound
      hi) or "easy" (only predicted all-correct); an ablation knob (docs/method.md section 4.8,
      measured in BENCHMARKS.md). "both" is the default, as in the paper.

Defaults of `default`, and why (their measured effect: BENCHMARKS.md section 3):
  - threshold 0.5: a skipped prompt loses (1 - P) expected informative groups and saves one
    rollout that is wasted with probability P; with equal weights the Bayes rule skips iff
    P > 0.5. With n0 = 2 an unseen prompt is skipped iff p_hat < 0.19 or > 0.81 at G = 8
    (close to the paper's [0.15, 0.85]), < 0.29 or > 0.71 at G = 4, < 0.14 or > 0.86 at G = 16:
    the window follows G instead of being fixed.
  - prior_strength n0 = 2: one 8-sample group outweighs the text prior 4:1, so a prompt that
    was all-correct last time is skipped unless its text says otherwise (P = 0.78 at
    p_hat = 0.8, 0.53 at 0.5, but 0.40 at 0.3: kept). Real GRPO trajectories keep 77% of
    zero-variance prompts zero-variance next epoch (docs/method.md section 4.4), so own history
    should weigh more than a text regressor with MAE ~0.2.
  - memory_half_life 100 steps: about one epoch of a 13k-prompt set at batch 128; old groups
    fade as the policy improves, and exploration re-checks rejected prompts anyway.
  - warmup_steps 10: the untrained estimator predicts 0.5 for everything (P = 0.22 < 0.5), so
    it keeps all prompts anyway; the short warm-up only guards against the first few noisy
    updates. During warm-up, prompts the rule would have rejected are still rolled out and
    count towards the false-skip rate (unbiased, like explored ones).
  - health_min_spread 0.01: pass rates of a real prompt set spread widely (std ~0.3 on the
    real GRPO trajectories); a step whose predictions all sit within about
    +-0.01 of each other cannot rank prompts. health_max_calib_mae 0.4: predicting 0.5 for
    everything scores at most 0.5 on [0, 1] targets and a working text regressor ~0.2, so
    0.4 is close to no better than the uninformative constant. health_window 5 steps pools
    enough groups that one odd batch does not trip it; health_patience 3 steps. Paper mode
    has no fallback (the reference release has none).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
        self.config = config or DEPOConfig()
        self.name = "depo-paper" if self.config.mode == "paper" else "depo"
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.memory = BetaMemory(self.config.prior_strength, self.config.memory_half_life)
        self.steps = 0  # observe() calls = RL steps
        self._records: dict[str, list[_Record]] = {}
        self._predict_s = 0.0
        cfg = self.config
        self.health = (
            EstimatorHealth(
                min_spread=cfg.health_min_spread,
                max_calib_mae=cfg.health_max_calib_mae,
                window=cfg.health_window,
                patience=cfg.health_patience,
            )
            if cfg.health
            else None
        )

    # -- scoring ---------------------------------------------------------------------------
    @property
    def in_warmup(self) -> bool:
        return self.steps < self.config.warmup_steps

    @property
    def in_fallback(self) -> bool:
        """True while the health check has the selector keep every prompt."""
        return self.health is not None and self.health.fallback and not self.in_warmup

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
        """P(zero-variance group) per candidate, as the rule sees it (no side effects on the stream)."""
        score = self._score(batch)
        return score["none"] + score["every"]

    # -- Selector --------------------------------------------------------------------------
    def select(self, batch: Sequence[Candidate]) -> Decisions:
        n = len(batch)
        if n == 0:
            return Decisions(keep=[], explored=[], priority=np.zeros(0))
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
                p_skip_draw = score["none_draw"] * hard_side + score["every_draw"] * easy_side
                priority = -p_skip_draw
        u = self.rng.random(n)  # drawn for every candidate: the stream does not depend on outcomes
        warmup, fallback = self.in_warmup, self.in_fallback
        if self.health is not None:
            self.health.record_predictions(pred)
        if warmup:
            keep = np.ones(n, dtype=bool)
            explored = np.zeros(n, dtype=bool)
        else:
            if "none_draw" in score:  # Thompson: the draw's rule keeps what the mean's would not
                explored = ~rule & (-priority <= cfg.threshold)
            else:
                explored = ~rule & (u < cfg.explore)
            keep = np.ones(n, dtype=bool) if fallback else rule | explored
        for i, c in enumerate(batch):
            rec = _Record(
                float(pred[i]), float(p_zero[i]), bool(rule[i]), bool(explored[i]), warmup, self.steps, fallback
            )
            self._records.setdefault(c.prompt_id, []).append(rec)
        return Decisions(keep=[bool(k) for k in keep], explored=[bool(e) for e in explored], priority=priority,
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
        if seen:
            pred = [recs[i].pred for i in seen]
            metrics["estimator/pred_mean"] = float(np.mean(pred))
            metrics["estimator/calib_mae"] = calib_mae(pred, [targets[i] for i in seen])
            metrics["select/p_zero_mean"] = float(np.mean([recs[i].p_zero for i in seen]))
            a = auc([recs[i].p_zero for i in seen], [not informative[i] for i in seen])
            if a is not None:
                metrics["estimator/auc_zero_var"] = a
            # Rejected by the rule yet rolled out at random (exploration), by warm-up or by the
            # health fallback: an unbiased sample of what the rule skips. Forced prompts
            # (best-ranked) are excluded.
            shadow = [
                i for i in seen if not recs[i].rule_keep and (explored[i] or recs[i].warmup or recs[i].fallback)
            ]
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
            metrics.update(
                self.health.end_step(
                    [recs[i].pred for i in seen], [targets[i] for i in seen], check=not self.in_warmup
                )
            )
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


@register_selector("depo", DEPOOptions, estimator="trunk")
def _depo(options: DEPOOptions, *, group_size: int, seed: int, estimator: Any) -> DEPO:
    return DEPO(estimator, DEPOConfig.build({**options.model_dump(exclude_unset=True), "mode": "default", "group_size": group_size}), seed=seed)


@register_selector("depo-paper", DEPOOptions, estimator="trunk")
def _depo_paper(options: DEPOOptions, *, group_size: int, seed: int, estimator: Any) -> DEPO:
    return DEPO(estimator, DEPOConfig.build({**options.model_dump(exclude_unset=True), "mode": "paper", "group_size": group_size}), seed=seed)
