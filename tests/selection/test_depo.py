"""The DEPO selector (both modes) with a fake estimator, alone and inside the refill stream."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.errors import DepoError
from depo.selection import DataOrder, RefillStream, make_selector
from depo.selection.depo import DEPO, DEPOConfig
from depo.types import Candidate, GroupOutcome
from depo.zero_variance import beta_binomial_zero_var
from tests.selection.selection_fakes import FakeEstimator

QUICK = settings(max_examples=50, deadline=None)


def cands(texts: Sequence[str]) -> list[Candidate]:
    return [Candidate(prompt_id=t, text=t) for t in texts]


def group(text: str, rewards: Sequence[float], explored: bool | None = None) -> GroupOutcome:
    return GroupOutcome(prompt_id=text, text=text, rewards=tuple(float(r) for r in rewards), explored=explored)


def test_paper_mode_warmup_then_window() -> None:
    est = FakeEstimator({"low": 0.1, "edge_lo": 0.15, "mid": 0.5, "edge_hi": 0.85, "high": 0.9})
    sel = DEPO(est, DEPOConfig(mode="paper", warmup_steps=2), seed=0)
    batch = cands(["low", "edge_lo", "mid", "edge_hi", "high"])
    for _ in range(2):
        assert sel.select(batch).keep == [True] * 5  # warm-up keeps everything
        m = sel.observe([])
        assert m["select/warmup"] == 1.0
    assert est.updates == 0  # nothing observed, nothing to learn from
    assert sel.select(batch).keep == [False, True, True, True, False]  # window [0.15, 0.85], inclusive
    assert DEPOConfig(mode="paper").warmup_steps == 100 and DEPOConfig(mode="paper").explore == 0.0


def test_default_rule_follows_group_size() -> None:
    est = FakeEstimator({"hard": 0.15})
    keep = {}
    for g in (4, 16):
        sel = DEPO(est, DEPOConfig(group_size=g, warmup_steps=0, explore=0.0, memory=False), seed=0)
        keep[g] = sel.select(cands(["hard"])).keep[0]
        n0 = sel.config.prior_strength
        expected = beta_binomial_zero_var(n0 * 0.15, n0 * 0.85, g) <= 0.5
        assert keep[g] == bool(expected)
    # a 15%-pass prompt is hopeless for 4 samples but worth rolling out with 16
    assert keep == {4: False, 16: True}


@pytest.mark.parametrize("mode", ["paper", "default"])
def test_skip_one_side_only(mode: str) -> None:
    """skip="hard" rolls out predicted all-correct prompts, skip="easy" predicted all-wrong ones."""
    est = FakeEstimator({"hopeless": 0.02, "mid": 0.5, "solved": 0.98})
    batch = cands(["hopeless", "mid", "solved"])
    kept = {}
    for skip in ("both", "hard", "easy"):
        sel = DEPO(est, DEPOConfig(mode=mode, skip=skip, warmup_steps=0, explore=0.0, memory=False), seed=0)
        kept[skip] = sel.select(batch).keep
    assert kept == {"both": [False, True, False], "hard": [False, True, True], "easy": [True, True, False]}
    with pytest.raises(DepoError, match="skip: Input should be 'both', 'hard' or 'easy'"):
        DEPOConfig.build({"skip": "sideways"})


def test_untrained_estimator_keeps_everything() -> None:
    sel = DEPO(FakeEstimator(default=0.5), DEPOConfig(warmup_steps=0, explore=0.0), seed=0)
    assert all(sel.select(cands([f"q{i}" for i in range(20)])).keep)


def test_memory_combines_history_and_text() -> None:
    est = FakeEstimator({"easy_seen": 0.8, "easy_unseen": 0.8, "hard_text_seen": 0.3})
    # an estimator that does not learn isolates the memory's effect
    est.update = lambda outcomes: {}  # type: ignore[method-assign]
    sel = DEPO(est, DEPOConfig(warmup_steps=0, explore=0.0), seed=0)
    assert sel.config.prior_strength == 2.0
    sel.select(cands(["easy_seen", "hard_text_seen"]))
    sel.observe([group("easy_seen", [1] * 8), group("hard_text_seen", [1] * 8)])
    # n0 = 2, w = 0.5^(1/100): easy_seen Beta(1.6 + 8w, 0.4), P(zero-var) ~ 0.78 -> skip; its
    # unseen twin has the prior alone (P ~ 0.47) -> keep; the prompt whose text says hard but
    # that went 8/8 has Beta(0.6 + 8w, 1.4), P ~ 0.40 -> keep: text and history both count.
    assert sel.select(cands(["easy_seen", "easy_unseen", "hard_text_seen"])).keep == [False, True, True]
    off = DEPO(est, DEPOConfig(warmup_steps=0, explore=0.0, memory=False), seed=0)
    off.observe([group("easy_seen", [1] * 8)])
    assert off.select(cands(["easy_seen"])).keep == [True]


def test_the_time_metrics_are_the_estimators_own(monkeypatch) -> None:
    """`time/estimator_predict_s` sums the estimator's predict calls of the step (one per select),
    `time/estimator_update_s` is its update: on a fake clock that only the estimator advances."""
    clock = [0.0]
    monkeypatch.setattr("depo.selection.depo.time", SimpleNamespace(perf_counter=lambda: clock[0]))

    class SlowEstimator(FakeEstimator):
        def predict(self, texts):
            clock[0] += 2.0
            return super().predict(texts)

        def update(self, outcomes):
            clock[0] += 3.0
            return super().update(outcomes)

    sel = DEPO(SlowEstimator(), DEPOConfig(warmup_steps=0), seed=0)
    sel.select(cands(["a", "b"]))
    sel.select(cands(["c"]))
    m = sel.observe([group("a", [0, 1, 1, 1]), group("c", [1, 1, 1, 1])])
    assert m["time/estimator_predict_s"] == 4.0 and m["time/estimator_update_s"] == 3.0
    sel.select(cands(["d"]))
    assert sel.observe([group("d", [0, 0, 1, 1])])["time/estimator_predict_s"] == 2.0  # per step


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 0.5), seed=st.integers(0, 10_000))
def test_exploration_rate_within_tolerance(eps: float, seed: int) -> None:
    sel = DEPO(FakeEstimator(default=0.01), DEPOConfig(warmup_steps=0, explore=eps), seed=seed)
    n = 3000
    d = sel.select(cands([f"q{i}" for i in range(n)]))
    rate = float(np.mean(d.keep))
    assert abs(rate - eps) <= 5 * np.sqrt(eps * (1 - eps) / n) + 1e-9
    assert d.explored == d.keep  # every kept prompt here was rejected by the rule


def test_observe_metrics_hand_worked() -> None:
    est = FakeEstimator({"a": 0.3, "b": 0.8, "c": 0.01, "d": 0.5})
    sel = DEPO(est, DEPOConfig(warmup_steps=0, explore=1.0, memory=False), seed=0)
    d = sel.select(cands(["a", "b", "c", "d"]))
    assert d.keep == [True] * 4 and d.explored == [False, False, True, False]
    m = sel.observe(
        [
            group("a", [0, 0, 0, 1]),  # y = 0.25, informative
            group("b", [1, 1, 1, 1]),  # y = 1, zero-variance
            group("c", [0, 0, 0, 0]),  # y = 0, zero-variance, explored
            group("d", [0.5, 0.5, 0.5, 0.5]),  # graded, y = 0.5, zero-variance (std 0)
        ]
    )
    assert est.updates == 1
    assert m["select/effective_rate"] == pytest.approx(0.25)
    assert m["select/explored"] == 1.0
    assert m["estimator/pred_mean"] == pytest.approx((0.3 + 0.8 + 0.01 + 0.5) / 4)
    assert m["estimator/target_mean"] == pytest.approx(0.4375)
    assert m["estimator/calib_mae"] == pytest.approx((0.05 + 0.2 + 0.01 + 0.0) / 4)
    # P(zero-var) (n0 = 2, G = 8) ranks c (p 0.01) > b (0.8) > a (0.3) > d (0.5); zero-variance: b, c, d; informative: a.
    # AUC = share of (zero-var, informative) pairs ranked right = (b>a, c>a, d<a) = 2/3
    assert m["estimator/auc_zero_var"] == pytest.approx(2 / 3)
    assert m["estimator/false_skip_rate"] == 0.0 and m["estimator/false_skip_n"] == 1.0
    assert m["estimator/loss"] == 0.25 and m["estimator/score_bce"] == 0.5
    assert m["select/warmup"] == 0.0


def test_warmup_groups_the_rule_rejects_measure_false_skips() -> None:
    sel = DEPO(FakeEstimator({"x": 0.02, "y": 0.5}), DEPOConfig(warmup_steps=1), seed=0)
    assert sel.select(cands(["x", "y"])).keep == [True, True]
    m = sel.observe([group("x", [0, 1, 0, 0, 0, 0, 0, 0]), group("y", [0] * 8)])
    assert m["estimator/false_skip_rate"] == 1.0 and m["estimator/false_skip_n"] == 1.0


@pytest.mark.parametrize(("stream_says", "counted"), [(None, 2), (False, 0), (True, 2)])
def test_the_streams_word_on_exploration_decides_what_measures_false_skips(stream_says, counted) -> None:
    """Both prompts are rejected by the rule and flagged explored by DEPO's own coin (explore=1).
    A rank stream that kept them for their rank says explored=False: they are the best of the
    rejected, no random sample, so they neither count as explored nor measure false skips."""
    sel = DEPO(FakeEstimator({"x": 0.02, "y": 0.99}), DEPOConfig(warmup_steps=0, explore=1.0, memory=False), seed=0)
    assert sel.select(cands(["x", "y"])).explored == [True, True]
    m = sel.observe([group("x", [0, 1, 0, 0, 0, 0, 0, 0], stream_says), group("y", [1] * 8, stream_says)])
    assert m["select/explored"] == counted
    assert m.get("estimator/false_skip_n", 0.0) == counted
    if counted:
        assert m["estimator/false_skip_rate"] == 0.5


def _run(sel: DEPO, steps: int, seed: int) -> list:
    """Decide on random batches and feed back random binary groups; return all decisions."""
    rng = np.random.default_rng(seed)
    log = []
    for _ in range(steps):
        texts = [f"q{i}" for i in rng.integers(0, 30, size=8)]
        d = sel.select(cands(texts))
        log.append((d.keep, d.explored, np.round(d.priority, 12).tolist()))
        out = [group(t, rng.integers(0, 2, size=4)) for t, k in zip(texts, d.keep) if k]
        sel.observe(out)
    return log


@QUICK
@given(seed=st.integers(0, 10_000), warmup=st.integers(0, 3), eps=st.floats(0.0, 0.5), mode=st.sampled_from(["default", "paper"]))
def test_same_seed_same_decisions_and_resume(seed, warmup, eps, mode) -> None:
    def build(s: int) -> DEPO:
        rates = {f"q{i}": float(v) for i, v in enumerate(np.linspace(0.0, 1.0, 30))}
        return DEPO(FakeEstimator(rates), DEPOConfig(mode=mode, group_size=4, warmup_steps=warmup, explore=eps), seed=s)

    assert _run(build(seed), 6, seed) == _run(build(seed), 6, seed)
    a = build(seed)
    _run(a, 3, seed + 1)
    saved = copy.deepcopy(a.state_dict())
    b = build(seed + 7)  # another seed: everything must come from the state
    b.load_state_dict(saved)
    assert _run(a, 4, seed + 2) == _run(b, 4, seed + 2)


def test_state_mode_mismatch_is_an_error() -> None:
    a = DEPO(FakeEstimator(), DEPOConfig(mode="paper"))
    with pytest.raises(DepoError, match="mode"):
        DEPO(FakeEstimator(), DEPOConfig()).load_state_dict(a.state_dict())


@pytest.mark.parametrize("bad", [{"lo": 0.9, "hi": 0.1}, {"threshold": 1.5}, {"explore": -0.1}, {"group_size": 1}, {"mode": "x"}])
def test_bad_config_is_a_clear_error(bad: dict) -> None:
    with pytest.raises(DepoError, match=f"^config {next(iter(bad))}: |need lo <= hi"):
        DEPOConfig.build(bad)


def test_stream_with_depo_rejecting_everything_forces_least_bad() -> None:
    rates = {f"q{i}": 0.001 * i for i in range(50)}  # all hopeless; q49 is the least hopeless
    sel = DEPO(FakeEstimator(rates), DEPOConfig(warmup_steps=0, explore=0.0), seed=0)
    stream = RefillStream(DataOrder(50, seed=0), sel, lambda i: Candidate(f"q{i}", f"q{i}"), batch_size=4, max_scan=50)
    idx, s = stream.next_batch()
    assert s["select/kept"] == 0 and s["select/forced"] == 4 and s["select/scanned"] == 50
    assert sorted(idx) == [46, 47, 48, 49]
    m = sel.observe([group(f"q{i}", [0] * 8) for i in idx])
    assert "estimator/false_skip_rate" not in m  # forced prompts are not an unbiased sample


@QUICK
@given(seed=st.integers(0, 1000), eps=st.floats(0.0, 0.6), steps=st.integers(1, 6))
def test_stream_accounting_with_depo(seed: int, eps: float, steps: int) -> None:
    rng = np.random.default_rng(seed)
    rates = {f"q{i}": float(p) for i, p in enumerate(rng.random(40))}
    sel = make_selector("depo", group_size=8, seed=seed, options={"warmup_steps": 1, "explore": eps}, estimator=FakeEstimator(rates))
    stream = RefillStream(DataOrder(40, seed), sel, lambda i: Candidate(f"q{i}", f"q{i}"), batch_size=6, max_scan=18)
    for _ in range(steps):
        idx, s = stream.next_batch()
        assert len(idx) == 6
        assert s["select/kept"] + s["select/skipped"] == s["select/scanned"]
        assert s["select/explored"] <= s["select/kept"]
        out = [group(f"q{i}", rng.random(8) < rates[f"q{i}"], explored=e) for i, e in zip(idx, stream.last_explored)]
        m = sel.observe(out)
        assert m["select/explored"] == s["select/explored"]


def test_metrics_use_the_newest_decision_of_a_prompt() -> None:
    est = FakeEstimator({"q": 0.01})
    est.update = lambda outcomes: {}  # type: ignore[method-assign]
    sel = DEPO(est, DEPOConfig(warmup_steps=0, explore=0.0, memory=False), seed=0)
    assert sel.select(cands(["q"])).keep == [False]  # rejected, never rolled out
    sel.observe([])
    est.rates["q"] = 0.5  # the estimator changed its mind; the prompt comes back next epoch
    assert sel.select(cands(["q"])).keep == [True]
    m = sel.observe([group("q", [1, 0, 0, 0, 0, 0, 0, 0])])
    assert m["estimator/pred_mean"] == 0.5 and "estimator/false_skip_rate" not in m


def test_default_mode_with_a_bayesian_estimator_ranks_and_explores_by_thompson_draws() -> None:
    from depo.estimator import build_estimator

    estimator = build_estimator({"kind": "bayes", "encoder_weight": 0.0, "hash_bits": 10})
    sel = make_selector("depo", group_size=8, seed=0, estimator=estimator, options={"warmup_steps": 1})
    assert sel.bayesian
    easy = [f"add {i} and {i + 1}" for i in range(12)]
    hard = [f"integrate x^{i} over a torus" for i in range(12)]
    sel.select(cands(easy + hard))  # warm-up: everything kept
    sel.observe([group(t, [1.0] * 8) for t in easy] + [group(t, [0.0, 1.0] * 4) for t in hard])
    d = sel.select(cands([f"add {i} and {i + 2}" for i in range(20, 30)] + [f"integrate x^{i} over a cube" for i in range(20, 30)]))
    mean = np.asarray(d.mean_priority)
    assert mean[10:].min() > mean[:10].max()  # all-correct-looking prompts rank last
    assert not np.array_equal(np.argsort(d.priority), np.argsort(mean))  # the draw is not the mean
    assert all(k for k, e in zip(d.keep, d.explored, strict=True) if e)
    sel2 = make_selector("depo", group_size=8, seed=0, estimator=estimator, options={"warmup_steps": 1, "thompson": False})
    sel2.steps = sel.steps
    d2 = sel2.select(cands(["add 1 and 2"]))
    assert d2.mean_priority is not None and np.array_equal(d2.priority, d2.mean_priority)
