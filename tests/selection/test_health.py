"""DEPO's estimator-health fallback: collapse or calibration drift -> keep everything, then recover."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pytest

from depo.errors import DepoError
from depo.selection import DataOrder, RefillStream
from depo.selection.depo import DEPO, DEPOConfig
from depo.selection.health import EstimatorHealth
from depo.selection.stream import RankStream
from depo.types import Candidate, GroupOutcome

G = 10
TEXTS = [f"q{i}" for i in range(20)]
RATES = {t: 0.1 + 0.04 * i for i, t in enumerate(TEXTS)}  # true pass rates 0.10 .. 0.86


class SwitchableEstimator:
    """Predicts the true pass rates while `mode == "ok"`; `"collapsed"` predicts one constant
    (0.97: every prompt looks too easy, the rule would skip them all); `"inverted"` predicts
    1 - rate (a wide spread, badly calibrated); `"nan"` predicts NaN."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.updates = 0

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        rates = np.array([RATES[t] for t in texts], dtype=float)
        if self.mode == "collapsed":
            return np.full(len(texts), 0.97)
        if self.mode == "inverted":
            return 1.0 - rates
        if self.mode == "nan":
            return np.full(len(texts), np.nan)
        return rates

    def update(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        self.updates += 1
        return {}

    def state_dict(self) -> dict:
        return {"mode": self.mode, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.mode, self.updates = state["mode"], state["updates"]


def cands(texts: Sequence[str]) -> list[Candidate]:
    return [Candidate(prompt_id=t, text=t) for t in texts]


def outcome(text: str) -> GroupOutcome:
    """A group whose mean reward is the prompt's true rate (so a truthful estimator has MAE 0)."""
    k = round(RATES[text] * G)
    return GroupOutcome(prompt_id=text, text=text, rewards=tuple([1.0] * k + [0.0] * (G - k)))


def step(sel: DEPO) -> tuple[list[bool], dict[str, float]]:
    """One RL step on all TEXTS: decide, roll out the kept ones, observe; metrics without timings."""
    keep = sel.select(cands(TEXTS)).keep
    metrics = sel.observe([outcome(t) for t, k in zip(TEXTS, keep) if k])
    return keep, {k: v for k, v in metrics.items() if not k.startswith("time/")}


def make(**options) -> tuple[DEPO, SwitchableEstimator]:
    est = SwitchableEstimator()
    config = {"group_size": G, "warmup_steps": 0, "explore": 0.0, "memory": False, "health_patience": 3} | options
    return DEPO(est, DEPOConfig(**config), seed=0), est


def test_collapse_falls_back_after_patience_then_recovers() -> None:
    sel, est = make(health_window=1)
    healthy_keep, m = step(sel)
    assert 0 < sum(healthy_keep) < len(TEXTS)  # the rule skips the hard and the easy ends
    assert m["select/fallback"] == 0.0 and m["select/health_collapsed"] == 0.0

    est.mode = "collapsed"
    log = [step(sel) for _ in range(6)]
    flags = [m["select/fallback"] for _, m in log]
    # steps 1-3 are unhealthy (rule skips everything); from the 4th on the selector keeps all
    assert flags == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert [sum(k) for k, _ in log[:3]] == [0, 0, 0]
    assert all(all(k) for k, _ in log[3:])
    assert all(m["select/health_collapsed"] == 1.0 for _, m in log)
    assert log[-1][1]["select/pred_spread"] < 1e-12
    assert log[-1][1]["select/fallback_steps"] == 3.0
    # the estimator keeps learning in fallback: 1 healthy + 3 fallback steps had groups (the 3
    # collapsed steps before the fallback rolled nothing out)
    assert est.updates == 4

    est.mode = "ok"
    keep, m = step(sel)  # decided in fallback; its healthy groups end the fallback
    assert all(keep) and m["select/fallback"] == 1.0 and m["select/health_collapsed"] == 0.0
    keep, m = step(sel)
    assert keep == healthy_keep and m["select/fallback"] == 0.0


def test_calibration_drift_alone_triggers_fallback_and_rolling_window_delays_recovery() -> None:
    sel, est = make(health_window=3, health_max_calib_mae=0.3)
    est.mode = "inverted"  # spread stays wide: only calibration can catch this one
    log = [step(sel) for _ in range(4)]
    assert [m["select/fallback"] for _, m in log] == [0.0, 0.0, 0.0, 1.0]
    assert all(m["select/health_collapsed"] == 0.0 and m["select/health_drifted"] == 1.0 for _, m in log)
    assert log[0][1]["estimator/rolling_calib_mae"] > 0.3

    est.mode = "ok"
    flags = [step(sel)[1]["select/fallback"] for _ in range(5)]
    # the 3-step window still holds drifted errors for 2 healthy steps (their share of the pool
    # keeps the MAE above 0.3), then the fallback ends
    assert flags[0] == 1.0 and flags[-1] == 0.0
    assert flags == sorted(flags, reverse=True)  # one switch back, no flapping


def test_nan_predictions_count_as_collapse() -> None:
    sel, est = make()
    est.mode = "nan"
    log = [step(sel) for _ in range(4)]
    assert [m["select/fallback"] for _, m in log] == [0.0, 0.0, 0.0, 1.0]
    assert all(log[3][0])


def test_warmup_steps_do_not_count_towards_the_trigger() -> None:
    sel, est = make(warmup_steps=5)
    est.mode = "collapsed"
    log = [step(sel) for _ in range(8)]
    assert [m["select/fallback"] for _, m in log] == [0.0] * 8  # 5 warm-up + 3 counted steps
    assert step(sel)[1]["select/fallback"] == 1.0


def test_paper_mode_and_health_off_never_fall_back() -> None:
    for options in ({"health": False}, {"mode": "paper"}):
        sel, est = make(**options)
        est.mode = "collapsed"
        for _ in range(6):
            keep, m = step(sel)
            assert "select/fallback" not in m
        assert not any(keep)
    assert DEPOConfig().health is True and DEPOConfig(mode="paper").health is False


def test_stream_fills_without_forcing_in_fallback() -> None:
    sel, est = make(health_patience=1)
    est.mode = "collapsed"
    stream = RefillStream(DataOrder(len(TEXTS), seed=0), sel, lambda i: Candidate(TEXTS[i], TEXTS[i]), batch_size=4, max_scan=8)
    idx, s = stream.next_batch()
    assert s["select/forced"] == 4 and s["select/kept"] == 0  # collapsed estimator rejects all
    sel.observe([outcome(TEXTS[i]) for i in idx])
    idx, s = stream.next_batch()
    assert len(idx) == 4 and s["select/forced"] == 0 and s["select/kept"] >= 4


def test_rank_stream_keeps_a_plain_batch_in_fallback() -> None:
    """Keep by rank would otherwise still rank a pool by the unhealthy estimator's priority."""
    sel, est = make(health_patience=1)
    est.mode = "collapsed"
    stream = RankStream(DataOrder(len(TEXTS), seed=0), sel, lambda i: Candidate(TEXTS[i], TEXTS[i]), batch_size=4, oversample=2.0)
    idx, s = stream.next_batch()
    assert not sel.keeps_all and s["select/scanned"] == 8 and len(idx) == 4  # healthy so far: rank 8, keep 4
    sel.observe([outcome(TEXTS[i]) for i in idx])
    assert sel.in_fallback and sel.keeps_all
    idx, s = stream.next_batch()
    assert s["select/scanned"] == 4 and s["select/kept"] == 4 and len(idx) == 4  # GRPO's batch, no ranking


def test_fallback_groups_measure_false_skips() -> None:
    sel, est = make(health_patience=1, health_window=1)
    est.mode = "collapsed"
    step(sel)
    keep, m = step(sel)  # in fallback: the rule rejected all 20, all rolled out anyway
    assert all(keep)
    informative = sum(0 < RATES[t] * G < G for t in TEXTS) / len(TEXTS)
    assert m["estimator/false_skip_n"] == 20.0 and m["estimator/false_skip_rate"] == pytest.approx(informative)


def test_health_state_survives_a_checkpoint_mid_streak() -> None:
    sel, est = make(health_window=2)
    est.mode = "collapsed"
    step(sel)
    step(sel)  # streak 2 of 3
    saved = copy.deepcopy(sel.state_dict())
    assert saved["health"]["unhealthy_streak"] == 2
    other, _ = make(health_window=2)
    other.load_state_dict(saved)
    a = [step(sel) for _ in range(3)]
    b = [step(other) for _ in range(3)]
    assert a == b and a[0][1]["select/fallback"] == 0.0 and a[1][1]["select/fallback"] == 1.0
    old = copy.deepcopy(saved)
    del old["health"]  # a checkpoint from before the health check loads with a fresh one
    fresh, _ = make()
    fresh.load_state_dict(old)
    assert fresh.health.unhealthy_streak == 0


def test_unmeasurable_steps_are_healthy() -> None:
    health = EstimatorHealth(min_spread=0.01, max_calib_mae=0.4, window=2, patience=1)
    health.record_predictions(np.array([0.5]))  # one prediction: no spread
    m = health.end_step([], [])
    assert health.fallback is False and "select/pred_spread" not in m and "estimator/rolling_calib_mae" not in m


@pytest.mark.parametrize(
    "bad",
    [{"health_min_spread": -0.1}, {"health_max_calib_mae": 1.5}, {"health_window": 0}, {"health_patience": 0}],
)
def test_bad_health_settings_are_clear_errors(bad: dict) -> None:
    with pytest.raises(DepoError, match=f"^config {next(iter(bad))}: Input should be"):
        DEPOConfig.build(bad)
