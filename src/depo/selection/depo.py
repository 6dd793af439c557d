"""The DEPO selector: skip prompts predicted to give a zero-variance group, before the rollout.

Two modes (SPEC.md sections 2 and 4):

`paper` - the reference release, faithfully: keep everything for `warmup_steps` (100) observe
steps, then keep a prompt iff the estimator's pass rate p_hat is in [lo, hi] = [0.15, 0.85].
No memory, no exploration.

`default` - ours, fixing the weaknesses listed in SPEC.md section 4:
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
      hi) or "easy" (only predicted all-correct). An ablation knob: on the tiny policy's
      `easy` preset the accuracy DEPO loses against GRPO comes with skipping predicted
      all-correct prompts, but "hard" alone did not win it back with the default rule
      (BENCHMARKS.md section 9). "both" is the default, as in the paper.

Defaults of `default`, and why (simulation figures: `python -m depo.selection.simulate`):
  - threshold 0.5: a skipped prompt loses (1 - P) expected informative groups and saves one
    rollout that is wasted with probability P; with equal weights the Bayes rule skips iff
    P > 0.5. With n0 = 2 an unseen prompt is skipped iff p_hat < 0.19 or > 0.81 at G = 8
    (close to the paper's [0.15, 0.85]), < 0.29 or > 0.71 at G = 4, < 0.14 or > 0.86 at G = 16:
    the window follows G instead of being fixed.
  - prior_strength n0 = 2: one 8-sample group outweighs the text prior 4:1, so a prompt that
    was all-correct last time is skipped unless its text says otherwise (P = 0.78 at
    p_hat = 0.8, 0.53 at 0.5, but 0.40 at 0.3: kept). Real GRPO trajectories keep 77% of
    zero-variance prompts zero-variance next epoch (SPEC.md section 4), so own history should
    weigh more than a text regressor with MAE ~0.2. In the simulation (200 steps, last-half
    effective rate) n0 = 2 gives 0.787, n0 = 4 0.739, text only 0.663, GRESO 0.745, uniform
    0.652, oracle 0.850.
  - memory_half_life 100 steps: about one epoch of a 13k-prompt set at batch 128; old groups
    fade as the policy improves (50 did worse in the simulation: 0.714), and exploration
    re-checks rejected prompts anyway.
  - warmup_steps 10: the untrained estimator predicts 0.5 for everything (P = 0.22 < 0.5), so
    it keeps all prompts anyway; the short warm-up only guards against the first few noisy
    updates. During warm-up, prompts the rule would have rejected are still rolled out and
    count towards the false-skip rate (unbiased, like explored ones).
  - health_min_spread 0.01: pass rates of a real prompt set spread widely (std ~0.3 on the
    GRPO trajectories of SPEC.md section 4); a step whose predictions all sit within about
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

from depo.errors import DepoError
from depo.selection.base import Candidate, Decisions, GroupOutcome
from depo.selection.health import EstimatorHealth
from depo.selection.memory import BetaMemory
from depo.selection.metrics import auc, calib_mae, share
from depo.selection.zero_variance import beta_binomial_extremes, zero_var_extremes

RECORD_TTL_STEPS = 100
"""Select-time records of prompts never observed (rejected, or dropped by the trainer) expire."""


@dataclass
class DEPOConfig:
    """DEPO selection settings. `None` fields take the mode's default (see the module doc)."""

    mode: Literal["default", "paper"] = "default"
    group_size: int = 8
    warmup_steps: int | None = None  # paper 100 (code), default 10
    lo: float = 0.15  # paper: keep iff lo <= p_hat <= hi (code)
    hi: float = 0.85
    threshold: float = 0.5  # default: keep iff P(zero-variance group) <= threshold
    skip: Literal["both", "hard", "easy"] = "both"  # which zero-variance side may be skipped
    explore: float | None = None  # default 0.05, paper 0.0
    memory: bool | None = None  # default True, paper False
    prior_strength: float = 2.0  # n0, pseudo-count of the estimator's prediction
    memory_half_life: float = 100.0  # steps
    health: bool | None = None  # estimator health fallback; default True, paper False
    health_min_spread: float = 0.01  # collapse: std of a step's predictions below this
    health_max_calib_mae: float = 0.4  # drift: rolling |p_hat - mean reward| above this
    health_window: int = 5  # steps pooled for the rolling calibration error
    health_patience: int = 3  # consecutive unhealthy steps before falling back

    def __post_init__(self) -> None:
        if self.mode not in ("default", "paper"):
            raise DepoError(f"DEPO mode must be 'default' or 'paper', got {self.mode!r}")
        paper = self.mode == "paper"
        if self.warmup_steps is None:
            self.warmup_steps = 100 if paper else 10
        if self.explore is None:
            self.explore = 0.0 if paper else 0.05
        if self.memory is None:
            self.memory = not paper
        if self.health is None:
            self.health = not paper
        if self.group_size < 2:
            raise DepoError(f"group size must be >= 2, got {self.group_size}")
        if self.warmup_steps < 0:
            raise DepoError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.lo <= self.hi <= 1.0:
            raise DepoError(f"need 0 <= lo <= hi <= 1, got lo={self.lo}, hi={self.hi}")
        if not 0.0 <= self.threshold <= 1.0:
            raise DepoError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.skip not in ("both", "hard", "easy"):
            raise DepoError(f"skip must be 'both', 'hard' or 'easy', got {self.skip!r}")
        if not 0.0 <= self.explore <= 1.0:
            raise DepoError(f"explore must be in [0, 1], got {self.explore}")
        if self.prior_strength <= 0 or self.memory_half_life <= 0:
            raise DepoError("prior_strength and memory_half_life must be > 0")
        if not self.health_min_spread >= 0.0:
            raise DepoError(f"health_min_spread must be >= 0, got {self.health_min_spread}")
        if not 0.0 <= self.health_max_calib_mae <= 1.0:
            raise DepoError(f"health_max_calib_mae must be in [0, 1], got {self.health_max_calib_mae}")
        if self.health_window < 1 or self.health_patience < 1:
            raise DepoError(
                f"health_window and health_patience must be >= 1, got {self.health_window} and {self.health_patience}"
            )


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

    def _predict(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        pred = np.asarray(self.estimator.predict(texts), dtype=float).reshape(-1)
        self._predict_s += time.perf_counter() - t0
        if pred.shape[0] != len(texts):
            raise ValueError(f"estimator.predict returned {pred.shape[0]} values for {len(texts)} texts")
        return pred

    def zero_var_prob(self, batch: Sequence[Candidate], pred: np.ndarray) -> np.ndarray:
        """P(zero-variance group) per candidate: Beta-binomial on the memory posterior (memory
        on), or the same with the estimator's prior alone (memory off, default mode), or the
        plug-in p^G + (1-p)^G (paper mode, whose rule is a window on p_hat)."""
        none, every = self._extremes(batch, pred)
        return none + every

    def _extremes(self, batch: Sequence[Candidate], pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(all wrong), P(all correct)) per candidate, the two parts of `zero_var_prob`."""
        g = self.config.group_size
        if self.config.mode == "paper":
            return zero_var_extremes(pred, g)
        ids = [c.prompt_id for c in batch] if self.config.memory else [""] * len(batch)
        memory = self.memory if self.config.memory else BetaMemory(self.config.prior_strength)
        a, b = memory.posterior(ids, pred, self.steps)
        return beta_binomial_extremes(a, b, g)

    def priority(self, batch: Sequence[Candidate]) -> np.ndarray:
        """Higher = more worth rolling out (used to force-fill a batch): -P(zero-variance)."""
        return self.decide(batch, record=False).priority

    # -- Selector --------------------------------------------------------------------------
    def decide(self, batch: Sequence[Candidate], *, record: bool = True) -> Decisions:
        n = len(batch)
        if n == 0:
            return Decisions(keep=[], explored=[], priority=np.zeros(0))
        cfg = self.config
        pred = self._predict([c.text for c in batch])
        none, every = self._extremes(batch, pred)
        p_zero = none + every
        hard_side, easy_side = cfg.skip in ("both", "hard"), cfg.skip in ("both", "easy")
        if cfg.mode == "paper":
            rule = ((pred >= cfg.lo) | (not hard_side)) & ((pred <= cfg.hi) | (not easy_side))
            priority = -np.abs(pred - 0.5)
        else:
            p_skip = none * hard_side + every * easy_side  # the zero-variance side(s) we may skip
            rule = p_skip <= cfg.threshold
            priority = -p_skip
        if not record:
            return Decisions(keep=[bool(k) for k in rule], explored=[False] * n, priority=priority)
        u = self.rng.random(n)  # drawn for every candidate: the stream does not depend on outcomes
        warmup, fallback = self.in_warmup, self.in_fallback
        if self.health is not None:
            self.health.record_predictions(pred)
        if warmup:
            keep = np.ones(n, dtype=bool)
            explored = np.zeros(n, dtype=bool)
        else:
            explored = ~rule & (u < cfg.explore)
            keep = np.ones(n, dtype=bool) if fallback else rule | explored
        for i, c in enumerate(batch):
            rec = _Record(
                float(pred[i]), float(p_zero[i]), bool(rule[i]), bool(explored[i]), warmup, self.steps, fallback
            )
            self._records.setdefault(c.prompt_id, []).append(rec)
        return Decisions(keep=[bool(k) for k in keep], explored=[bool(e) for e in explored], priority=priority)

    def select(self, batch: Sequence[Candidate]) -> list[bool]:
        return self.decide(batch).keep

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        """Update the estimator (once) and the memory with this step's groups; return metrics."""
        outcomes = list(outcomes)
        metrics: dict[str, float] = {}
        recs = [self._pop_record(o.prompt_id) for o in outcomes]
        informative = [not o.is_zero_variance for o in outcomes]
        targets = [o.mean_reward for o in outcomes]
        explored = [o.explored or (r is not None and r.explored) for o, r in zip(outcomes, recs)]

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
                i for i in seen if not recs[i].rule_keep and (recs[i].explored or recs[i].warmup or recs[i].fallback)
            ]
            if shadow:
                metrics["estimator/false_skip_rate"] = share([informative[i] for i in shadow])
                metrics["estimator/false_skip_n"] = float(len(shadow))

        if self.config.memory:
            for o in outcomes:
                self.memory.update(o.prompt_id, o.rewards, self.steps)
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
            "config": asdict(self.config),
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
