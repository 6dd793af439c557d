"""Where a selector's gain is lost, step by step (`depo bench train --decompose`; bench only).

A random sample of every scanned pool is measured on the current policy (docs/method.md
section 7): `PROBES` candidates per selection call get `SAMPLES` answers (the p-oracle's meter);
the last G form an independent group (`informative`: 0 < K < G), the others measure the pass
rate p the p-oracle ranks by. Over the last `WINDOW` steps' probes, with s = the share of probes
the selector kept:

    eff_random     mean informative over the probes               (keeping at random)
    eff_kept       mean informative over the probes it kept        (what it bought)
    eff_rank       over the top s of the probes by its own score
    eff_p_oracle   over the top s by 1 - P_zv(p)                    (the limit at this survival)
    eff_fresh      as eff_rank, with scores recomputed after the step's update

    loss_ranking   = eff_p_oracle - eff_rank      the estimator's ranking of the pool
    loss_cut       = eff_rank - eff_kept          the rule's cut and exploration, at equal survival
    gain_freshness = eff_fresh - eff_rank         what one more update before deciding would buy

with `spearman_pool` (score vs 1 - P_zv(p)), `ece_zero_var` (the selector's P(zero-variance)
against the independent group's outcome, when it states one) and `seen_share` (probes with own
history in the selector's memory when scored). Logged per step as `probe/*`; the measuring runs
inside the trainer's selection phase and is logged as `time/probe_s`, which the reports subtract.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from depo.bench.metrics import top_share_mean
from depo.bench.p_oracle import PolicyPassRateOracle
from depo.estimator.features import text_key
from depo.metrics import expected_calibration_error, spearman
from depo.selection.base import top_mask
from depo.selection.depo import DEPO
from depo.types import Candidate, Decisions, GroupOutcome
from depo.zero_variance import is_zero_variance, zero_var_probability

PROBES = 16
"""Candidates measured per selection call."""
SAMPLES = 24
"""Answers per probe: 24 - G measure its pass rate, the last G are its independent group."""
WINDOW = 10
"""Steps of probes pooled in each step's figures."""


class PoolProbe:
    """A trainer's selector, unchanged in what it decides, with a random sample of each pool measured."""

    def __init__(self, selector: Any, trainer: Any, *, group_size: int, rank_keep: int | None = None,
                 seed: int = 0) -> None:
        if group_size >= SAMPLES:
            raise ValueError(f"the probe needs more than G = {group_size} answers per candidate, got {SAMPLES}")
        self.selector = selector
        self.group_size = int(group_size)
        self.rank_keep = rank_keep  # keep-by-rank: the stream keeps this many of each pool (its batch)
        self.meter = PolicyPassRateOracle(group_size=group_size, samples=SAMPLES, seed=seed + 7919).bind(trainer)
        self.rng = np.random.default_rng([seed, 4241])
        self.steps: deque[dict[str, np.ndarray]] = deque(maxlen=WINDOW)
        self._calls: list[dict[str, np.ndarray]] = []  # this step's probes, one entry per selection call
        self._probed: list[Candidate] = []
        self.probe_s = 0.0  # this step's measuring, inside the trainer's selection time

    def __getattr__(self, name: str) -> Any:  # keeps_all, estimator, config ... of the probed selector
        if "selector" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["selector"], name)

    # -- what the probed selector states about a candidate ----------------------------------
    def _zero_var_hat(self, score: np.ndarray, cands: list[Candidate]) -> np.ndarray:
        """The selector's own P(zero-variance) of the probed candidates (`score`: their mean
        priority), NaN where it states none."""
        s = self.selector
        if isinstance(s, DEPO) and s.config.mode == "default" and s.config.skip == "both":
            return -score  # its priority is -P(zero-variance)
        if isinstance(s, DEPO) and not s.bayesian:
            return s.zero_var_prob(cands)
        return np.full(len(score), np.nan)

    def _fresh(self, cands: list[Candidate]) -> np.ndarray:
        """Scores recomputed now (after the update); NaN where that would draw random numbers."""
        s = self.selector
        if isinstance(s, DEPO) and not s.bayesian and s.config.mode == "default":
            return -s.zero_var_prob(cands)
        return np.full(len(cands), np.nan)

    # -- Selector ---------------------------------------------------------------------------
    def select(self, batch: Sequence[Candidate]) -> Decisions:
        d = self.selector.select(batch)
        n = len(batch)
        if n == 0 or getattr(self.selector, "keeps_all", False):
            return d  # warm-up or health fallback: no selection to decompose, so no probe in the window
        idx = np.sort(self.rng.choice(n, size=min(PROBES, n), replace=False))
        score = np.asarray(d.mean_priority if d.mean_priority is not None else d.priority, dtype=float)
        if self.rank_keep is not None:
            kept = top_mask(d.priority, self.rank_keep)  # what the rank stream will keep of this pool
        else:
            kept = np.asarray(d.keep, dtype=bool)
        cands = [batch[i] for i in idx]
        start = time.perf_counter()
        answers = self.meter.answers(cands)
        self.probe_s += time.perf_counter() - start
        g = self.group_size
        memory = self.selector.memory if isinstance(self.selector, DEPO) and self.selector.config.memory else None
        self._probed += cands
        self._calls.append({
            "score": score[idx],
            "p_zv_hat": self._zero_var_hat(score[idx], cands),
            "kept": kept[idx],
            "rate": answers[:, :-g].mean(axis=1),
            "seen": np.array([memory is not None and text_key(c.text) in memory for c in cands], dtype=bool),
            "informative": np.array([not is_zero_variance(group) for group in answers[:, -g:]], dtype=bool),
        })
        return d

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        metrics = dict(self.selector.observe(outcomes))
        if self._calls:
            step = {key: np.concatenate([c[key] for c in self._calls]) for key in self._calls[0]}
            step["fresh"] = self._fresh(self._probed)
            self.steps.append(step)
            self._calls, self._probed = [], []
        metrics.update(decompose(self.steps, self.group_size))
        metrics["probe/measured"] = float(self.meter.measured)
        metrics["time/probe_s"], self.probe_s = self.probe_s, 0.0
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
    kept, score = pool["kept"].astype(bool), pool["score"]
    if not kept.any():
        return {}
    informative = pool["informative"].astype(float)
    p_zv = zero_var_probability(pool["rate"], group_size)
    s = float(kept.mean())
    out = {
        "probe/n": float(len(score)),
        "probe/survival": s,
        "probe/eff_random": float(informative.mean()),
        "probe/eff_kept": float(informative[kept].mean()),
        "probe/eff_rank": top_share_mean(score, informative, s),
        "probe/eff_p_oracle": top_share_mean(1.0 - p_zv, informative, s),
        "probe/spearman_pool": spearman(score, 1.0 - p_zv),
        "probe/seen_share": float(pool["seen"].mean()),
    }
    out["probe/loss_ranking"] = out["probe/eff_p_oracle"] - out["probe/eff_rank"]
    out["probe/loss_cut"] = out["probe/eff_rank"] - out["probe/eff_kept"]
    fresh = pool["fresh"]
    if np.isfinite(fresh).all():
        out["probe/eff_fresh"] = top_share_mean(fresh, informative, s)
        out["probe/gain_freshness"] = out["probe/eff_fresh"] - out["probe/eff_rank"]
    p_hat = pool["p_zv_hat"]
    if np.isfinite(p_hat).all():
        out["probe/ece_zero_var"] = expected_calibration_error(p_hat, 1.0 - informative)
    return out


def attach_probe(trainer: Any, *, seed: int = 0) -> None:
    """Wrap `trainer`'s selector (built-in engine) in a PoolProbe; not for uniform selection,
    which has nothing to decompose."""
    cfg = trainer.cfg
    if cfg.selector != "uniform":
        trainer.selector = trainer.stream.selector = PoolProbe(
            trainer.selector, trainer, group_size=cfg.num_generations,
            rank_keep=cfg.batch_size if cfg.selection == "rank" else None, seed=seed)
