"""Where a selector's gain is lost, step by step (`depo bench train --decompose`; bench only).

The rolled-out groups tell how well a selector did on what it kept, a selection-biased sample.
This probe measures a random sample of every scanned pool instead: before the selector's
decision is used, `probes` scanned candidates per selection call get their pass rate measured
on the current policy (`samples` answers each, by the p-oracle's meter; never trained on, never
counted as rollouts). Over the last `window` steps' probes, with s = the share of probes kept and
informativeness i = 1 - P_zv(p) at the measured rate p (docs/method.md section 7):

    eff_random     mean i over the probes                       (keeping at random)
    eff_kept       mean i over the probes the selector kept     (what it bought)
    eff_rank       mean i over the top s of the probes by the selector's own score
    eff_p_oracle   mean i over the top s by i itself             (the limit at this survival)
    eff_fresh      as eff_rank, with the scores recomputed after the step's update

    loss_ranking   = eff_p_oracle - eff_rank      the estimator's ranking of the pool
    loss_cut       = eff_rank - eff_kept          the rule's cut and exploration, at equal survival
    gain_freshness = eff_fresh - eff_rank         what one more update before deciding would buy

with `spearman_pool` (score vs i), `ece_zero_var` (the selector's P(zero-variance) against
P_zv(p), when it states one) and `seen_share` (probes with own history in the selector's
memory when it was scored). Logged per step as `probe/*`; the timings of a probed run include the measuring.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from depo.bench.metrics import keep_top_effective_rate
from depo.bench.p_oracle import SAMPLES, PolicyPassRateOracle
from depo.estimator.features import text_key
from depo.metrics import expected_calibration_error, spearman
from depo.selection.depo import DEPO
from depo.types import Candidate, Decisions, GroupOutcome
from depo.zero_variance import zero_var_probability

PROBES = 16
"""Candidates measured per selection call."""
WINDOW = 10
"""Steps of probes pooled in each step's figures."""


class PoolProbe:
    """A trainer's selector, unchanged in what it decides, with a random sample of each pool measured."""

    def __init__(self, selector: Any, trainer: Any, *, group_size: int, rank_share: float | None = None,
                 probes: int = PROBES, samples: int = SAMPLES, window: int = WINDOW, seed: int = 0) -> None:
        self.selector = selector
        self.group_size = int(group_size)
        self.rank_share = rank_share  # keep-by-rank: the stream keeps this top share of each pool
        self.probes = int(probes)
        self.meter = PolicyPassRateOracle(group_size=group_size, samples=samples, seed=seed + 7919).bind(trainer)
        self.rng = np.random.default_rng([seed, 4241])
        self.steps: deque[dict[str, np.ndarray]] = deque(maxlen=window)
        self._step: list[tuple] = []  # (candidate, score, P_zv stated, kept, measured rate, seen) per probe

    def __getattr__(self, name: str) -> Any:  # in_warmup, estimator, config ... of the probed selector
        if "selector" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["selector"], name)

    # -- what the probed selector states about a candidate ----------------------------------
    def _zero_var_hat(self, decisions: Decisions, idx: np.ndarray, cands: list[Candidate]) -> np.ndarray:
        """The selector's own P(zero-variance) of the probed candidates, NaN where it states none."""
        s = self.selector
        if isinstance(s, DEPO) and s.config.mode == "default" and s.config.skip == "both":
            mean = decisions.mean_priority if decisions.mean_priority is not None else decisions.priority
            return -np.asarray(mean, dtype=float)[idx]  # its priority is -P(zero-variance)
        if isinstance(s, DEPO) and not s.bayesian:
            return s.zero_var_prob(cands)
        return np.full(len(idx), np.nan)

    def _fresh(self, cands: list[Candidate]) -> np.ndarray | None:
        """Scores recomputed now (after the update); only where that draws no random numbers."""
        s = self.selector
        if isinstance(s, DEPO) and not s.bayesian and s.config.mode == "default":
            return -s.zero_var_prob(cands)
        return None

    # -- Selector ---------------------------------------------------------------------------
    def select(self, batch: Sequence[Candidate]) -> Decisions:
        d = self.selector.select(batch)
        n = len(batch)
        if n == 0:
            return d
        idx = np.sort(self.rng.choice(n, size=min(self.probes, n), replace=False))
        score = np.asarray(d.mean_priority if d.mean_priority is not None else d.priority, dtype=float)
        if self.rank_share is not None and not getattr(self.selector, "in_warmup", False):
            prio = np.asarray(d.priority, dtype=float)
            n_keep = max(1, int(np.ceil(self.rank_share * n)))
            kept = np.zeros(n, dtype=bool)
            kept[np.argsort(-prio, kind="stable")[:n_keep]] = True
        else:
            kept = np.asarray(d.keep, dtype=bool)
        cands = [batch[i] for i in idx]
        rates = self.meter.measure(cands)
        p_hat = self._zero_var_hat(d, idx, cands)
        memory = self.selector.memory if isinstance(self.selector, DEPO) and self.selector.config.memory else None
        seen = [memory is not None and text_key(c.text) in memory for c in cands]
        self._step += [(c, float(score[i]), float(ph), bool(kept[i]), float(p), sn)
                       for c, i, ph, p, sn in zip(cands, idx, p_hat, rates, seen)]
        return d

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        metrics = dict(self.selector.observe(outcomes))
        if self._step:
            cands = [e[0] for e in self._step]
            fresh = self._fresh(cands)
            self.steps.append({
                "score": np.array([e[1] for e in self._step]),
                "p_zv_hat": np.array([e[2] for e in self._step]),
                "kept": np.array([e[3] for e in self._step]),
                "rate": np.array([e[4] for e in self._step]),
                "fresh": fresh if fresh is not None else np.full(len(cands), np.nan),
                "seen": np.array([e[5] for e in self._step]),
            })
            self._step = []
        metrics.update(decompose(self.steps, self.group_size))
        metrics["probe/measured"] = float(self.meter.measured)
        return metrics

    def state_dict(self) -> dict:
        """The probed selector's own state: a checkpoint of a probed run resumes with or without the
        probe (which then draws other probes; the selector's decisions are the same)."""
        return self.selector.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.selector.load_state_dict(state)


def decompose(steps: Sequence[dict[str, np.ndarray]], group_size: int) -> dict[str, float]:
    """The module doc's figures over the pooled probes of `steps` (empty when none was kept)."""
    if not steps:
        return {}
    pool = {k: np.concatenate([s[k] for s in steps]) for k in steps[0]}
    kept, rate, score = pool["kept"].astype(bool), pool["rate"], pool["score"]
    if not kept.any():
        return {}
    p_zv = zero_var_probability(rate, group_size)
    informative = 1.0 - p_zv
    s = float(kept.mean())
    out = {
        "probe/n": float(len(rate)),
        "probe/survival": s,
        "probe/eff_random": float(informative.mean()),
        "probe/eff_kept": float(informative[kept].mean()),
        "probe/eff_rank": keep_top_effective_rate(score, rate, s, group_size),
        "probe/eff_p_oracle": keep_top_effective_rate(informative, rate, s, group_size),
        "probe/spearman_pool": spearman(score, informative),
        "probe/seen_share": float(pool["seen"].mean()),
    }
    out["probe/loss_ranking"] = out["probe/eff_p_oracle"] - out["probe/eff_rank"]
    out["probe/loss_cut"] = out["probe/eff_rank"] - out["probe/eff_kept"]
    fresh = pool["fresh"]
    if np.isfinite(fresh).all():
        out["probe/eff_fresh"] = keep_top_effective_rate(fresh, rate, s, group_size)
        out["probe/gain_freshness"] = out["probe/eff_fresh"] - out["probe/eff_rank"]
    p_hat = pool["p_zv_hat"]
    if np.isfinite(p_hat).all():
        out["probe/ece_zero_var"] = expected_calibration_error(p_hat, p_zv)
    return out
