"""The Bayesian estimator: an exact posterior that online updates keep equal to a batch fit."""

from __future__ import annotations

import numpy as np
import pytest

from depo.errors import DepoError
from depo.estimator import BayesEstimator, BayesEstimatorConfig, build_estimator, load_estimator
from depo.estimator.bayes import fit_tau
from depo.types import GroupOutcome

G = 8
LEXICAL = {"kind": "bayes", "encoder_weight": 0.0, "hash_bits": 12, "tau": 0.5}
"""Lexical features only (no encoder load): fast, and exact enough to compare posteriors."""


def prompts(n: int, start: int = 0) -> list[str]:
    """Easy prompts say "add", hard ones "integrate"; the pass rate follows the word."""
    return [f"{'add' if i % 2 else 'integrate'} the numbers {i} and {i + 3}" for i in range(start, start + n)]


def rate(text: str) -> float:
    return 0.85 if text.startswith("add") else 0.1


def outcomes(texts: list[str], rng: np.random.Generator) -> list[GroupOutcome]:
    return [GroupOutcome(prompt_id=t, text=t, rewards=(rng.random(G) < rate(t)).astype(float).tolist()) for t in texts]


def bayes(**options) -> BayesEstimator:
    return build_estimator({**LEXICAL, **options})


def test_incremental_updates_equal_the_batch_fit() -> None:
    rng = np.random.default_rng(0)
    online, batch = bayes(), bayes()
    seen: list[GroupOutcome] = []
    for step in range(3):
        groups = outcomes(prompts(6, 6 * step), rng)
        online.update(groups)
        seen += groups
    batch.fit([o.text for o in seen], [np.mean(o.rewards) for o in seen], samples=G)
    probe = prompts(5, 100)
    a, b = online.predict_distribution(probe), batch.predict_distribution(probe)
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a["var"], b["var"], rtol=1e-9, atol=1e-12)


def test_it_learns_the_ranking_from_few_labels_and_knows_what_it_has_seen() -> None:
    est = bayes()
    unseen = prompts(10, 500)
    prior_var = est.predict_distribution(unseen)["var"].mean()
    rng = np.random.default_rng(1)
    est.update(outcomes(prompts(24), rng))
    pred = est.predict(unseen)
    easy = np.array([t.startswith("add") for t in unseen])
    assert pred[easy].min() > pred[~easy].max()
    after = est.predict_distribution(prompts(24) + unseen)["var"][:, 0]
    assert after[:24].mean() < after[24:].mean() < prior_var  # seen < similar-but-new < nothing seen


def test_forgetting_follows_a_policy_that_moved() -> None:
    text = ["integrate the numbers 1 and 4"]
    steady, forgetful = bayes(), bayes(half_life=2.0)
    for est in (steady, forgetful):
        for _ in range(6):  # the policy failed this prompt for a long time ...
            est.update([GroupOutcome(text[0], text[0], [0.0] * G)])
        for _ in range(3):  # ... and now solves it
            est.update([GroupOutcome(text[0], text[0], [1.0] * G)])
    assert forgetful.weights()[0] == pytest.approx(0.5 ** (8 / 2.0))
    assert forgetful.predict(text)[0] > 0.5 > steady.predict(text)[0]


def test_max_observations_drops_the_oldest() -> None:
    est = bayes(max_observations=10)
    est.update(outcomes(prompts(8), np.random.default_rng(0)))
    est.update(outcomes(prompts(8, 8), np.random.default_rng(0)))
    assert len(est) == 10 and est._born.tolist() == [1.0] * 2 + [2.0] * 8


def test_save_load_gives_identical_predictions_and_draws(tmp_path) -> None:
    est = bayes(tau=None)
    rng = np.random.default_rng(2)
    for step in range(6):  # enough groups that tau is fitted online
        est.update(outcomes(prompts(8, 8 * step), rng))
    path = est.save(tmp_path / "est")
    again = load_estimator(path)
    probe = prompts(6, 900)
    np.testing.assert_array_equal(est.predict(probe), again.predict(probe))
    np.testing.assert_array_equal(est.predict_distribution(probe, sample=True)["sample"],
                                  again.predict_distribution(probe, sample=True)["sample"])
    assert again.tau[0] == est.tau[0] and est.tau[0] != 1.0 and not list((tmp_path / "est").glob("*.pt"))


def test_load_overrides_apply_and_feature_settings_are_refused(tmp_path) -> None:
    est = bayes()
    est.update(outcomes(prompts(8), np.random.default_rng(0)))
    path = est.save(tmp_path / "est")
    assert load_estimator(path, tau=0.3).tau[0] == 0.3  # a fixed tau given at load replaces the saved 0.5
    for name, value in (("hash_bits", 6), ("num_targets", 2)):
        with pytest.raises(DepoError, match=f"cannot override {name}"):
            load_estimator(path, **{name: value})


def test_a_bad_reward_is_refused_before_anything_changes() -> None:
    est = bayes()
    est.update(outcomes(prompts(8), np.random.default_rng(0)))
    before = est.predict(prompts(4, 100))
    for rewards in ((1.0, float("nan")), (), (2.0, 2.0)):
        with pytest.raises(DepoError, match="pass rates in"):
            est.update([GroupOutcome(prompt_id="x", text="x", rewards=rewards)])
    assert len(est) == 8 and np.array_equal(est.predict(prompts(4, 100)), before)


def test_several_targets_share_one_factorisation_and_equal_one_head_each() -> None:
    texts = prompts(30)
    y = np.stack([[rate(t) for t in texts], [1 - 0.5 * rate(t) for t in texts]], axis=1)
    both = bayes(num_targets=2)
    both.fit(texts, y, samples=16)
    probe = prompts(7, 300)
    joint = both.predict(probe)
    assert joint.shape == (7, 2)
    for j in range(2):
        alone = bayes()
        alone.fit(texts, y[:, j], samples=16)
        np.testing.assert_allclose(joint[:, j], alone.predict(probe), rtol=1e-9)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_with_the_encoder_features(kernel) -> None:
    est = build_estimator({"kind": "bayes", "max_length": 16, "hash_bits": 10, "encoder_layers": [1, 6],
                           "encoder_kernel": kernel, "lexical": False})
    est.update(outcomes(prompts(16), np.random.default_rng(3)))
    unseen = prompts(6, 40)
    d = est.predict_distribution(prompts(2) + unseen)
    assert d["mean"].shape == (8, 1) and np.all(d["var"] > 0)
    assert d["var"][:2].max() < d["var"][2:].min()  # seen prompts are known better than new ones
    easy = np.array([t.startswith("add") for t in unseen])
    assert d["mean"][2:][easy].mean() > d["mean"][2:][~easy].mean()  # from the encoder's vectors alone
    with pytest.raises(DepoError, match="encoder_layers: layer 9"):
        build_estimator({"kind": "bayes", "encoder_layers": [9]})


def test_the_encoder_runs_on_the_configured_device(monkeypatch) -> None:
    """`device` moves the encoder and its forwards there (no GPU here: "cpu:0" names the CPU apart from the default)."""
    from depo.estimator.encoder import TextEncoder

    seen: list[str] = []
    real = TextEncoder.layer_means

    def spy(self, texts, layers, device="cpu"):
        seen.append(str(device))
        return real(self, texts, layers, device=device)

    monkeypatch.setattr(TextEncoder, "layer_means", spy)
    est = build_estimator({"kind": "bayes", "max_length": 16, "lexical": False, "device": "cpu:0"})
    est.update(outcomes(prompts(4), np.random.default_rng(0)))
    assert seen and set(seen) == {"cpu:0"}
    assert est.predict_distribution(prompts(2))["mean"].shape == (2, 1)


def test_fit_tau_recovers_the_spread_the_text_cannot_tell() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(0, 1.5, 3000)
    z = m + rng.normal(0, 1.2, m.size)
    k = rng.binomial(16, 1 / (1 + np.exp(-z)))
    assert fit_tau(m, np.zeros_like(m), k, np.full(m.size, 16.0)) == pytest.approx(1.2, rel=0.15)


def test_calibration_on_held_out_rows_widens_tau_where_the_text_tells_less() -> None:
    train = prompts(40)
    rng = np.random.default_rng(5)
    val = prompts(400, 1000)
    spread = [float(np.clip(rate(t) + rng.normal(0, 0.25), 0, 1)) for t in val]  # rates the words do not tell
    tight, loose = bayes(tau=None), bayes(tau=None)
    for est in (tight, loose):
        est.fit(train, [rate(t) for t in train], samples=16)
    tau_tight = tight.calibrate(val, [rate(t) for t in val], samples=16)[0]
    tau_loose = loose.calibrate(val, spread, samples=16)[0]
    assert tau_loose > tau_tight + 0.5
    in_one = bayes(tau=None)
    in_one.fit(train, [rate(t) for t in train], samples=16, val=(val, spread))  # fit, then calibrate
    assert in_one.tau[0] == tau_loose


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(DepoError, match="pass rates in"):
        bayes().fit(["a", "b"], [0.5, 1.5])
    with pytest.raises(DepoError, match="num_targets=1"):
        bayes().fit(["a"], [[0.5, 0.5]])
    with pytest.raises(DepoError, match="one target"):
        bayes(num_targets=2).update(outcomes(["a"], np.random.default_rng(0)))
    with pytest.raises(DepoError, match="needs features"):
        BayesEstimator(BayesEstimatorConfig(lexical=False, encoder_weight=0.0))
    with pytest.raises(DepoError, match="did you mean 'half_life'"):
        bayes(half_lfe=3)
