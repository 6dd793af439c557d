"""OnlineEstimator on the embedded all-MiniLM-L6-v2: predict, update, checkpoints, speed options, fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depo.errors import DepoError
from depo.estimator import EstimatorConfig, OnlineEstimator
from depo.estimator.encoder import encoder_layers
from depo.types import GroupOutcome

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:estimator encoder.*truncated:UserWarning")

TEXTS = [
    "What is the greatest common divisor of 14 and 21?",
    "Sort the following words alphabetically: pear, apple, fig.",
    "How many times does the letter r appear in strawberry?",
    "Compute 17 * 23.",
    "",
    "Solve for x: 3x + 5 = 20. " * 3,
    "Ein Zug fährt 120 km in 1,5 Stunden. Wie schnell fährt er?",
    "Is 97 a prime number? Answer yes or no.",
]


def make(**kw) -> OnlineEstimator:
    kw.setdefault("max_length", 24)
    return OnlineEstimator(EstimatorConfig(**kw))


def outcomes(with_logprobs: bool = True) -> list[GroupOutcome]:
    out = []
    for i, text in enumerate(TEXTS):
        k = i % 5  # 0..4 correct out of 4 -> pass rates 0, .25, .5, .75, 1
        rewards = tuple(float(j < k) for j in range(4))
        lp = tuple(-0.2 * (1 + i % 3) for _ in range(4)) if with_logprobs else None
        out.append(GroupOutcome(f"p{i}", text, rewards, lp))
    return out


def test_initial_predictions_are_half_and_batching_does_not_change_them():
    est = make(predict_batch_size=3)
    p = est.predict(TEXTS)
    assert p.shape == (len(TEXTS),)
    assert np.all(np.abs(p - 0.5) < 0.01)
    one_by_one = np.array([est.predict([t])[0] for t in TEXTS])
    np.testing.assert_allclose(p, one_by_one, atol=1e-6)
    assert est.predict([]).shape == (0,)


def test_update_reduces_loss_on_a_repeated_batch_and_uses_paper_optimizer():
    est = make(predict_batch_size=3)  # the update encodes in chunks, one backward over all of them
    lrs = [g["lr"] for g in est.optimizer.param_groups]
    assert lrs == pytest.approx([2e-4, 0.2 * 2e-4])
    batch = outcomes()
    losses = [est.update(batch)["estimator/loss"] for _ in range(6)]
    assert losses[-1] < losses[0]
    metrics = est.update(batch)
    assert metrics["estimator/batch_size"] == len(TEXTS)
    assert metrics["estimator/target_mean"] == pytest.approx(np.mean([o.mean_reward for o in batch]))
    assert metrics["estimator/grad_norm"] > 0


def test_distill_term_is_skipped_without_logprobs():
    est = make(freeze_encoder=True)
    before = est.head.distill.weight.detach().clone()
    metrics = est.update(outcomes(with_logprobs=False))
    assert "estimator/loss_distill" not in metrics
    assert metrics["estimator/distill_n"] == 0
    assert torch.equal(est.head.distill.weight, before)  # no gradient, no decay: untouched
    metrics = est.update(outcomes(with_logprobs=True))
    assert metrics["estimator/loss_distill"] > 0
    assert not torch.equal(est.head.distill.weight, before)


def test_save_load_restores_predictions_and_optimizer(tmp_path):
    est = make(replay_size=4, train_top_layers=1)  # encoder weights change, so they must round-trip
    est.update(outcomes())
    est.update(outcomes()[:3])
    est.save(tmp_path / "est")
    again = OnlineEstimator.load(tmp_path / "est")
    np.testing.assert_array_equal(again.predict(TEXTS), est.predict(TEXTS))
    a, b = est.optimizer.state_dict(), again.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        for name, value in a["state"][key].items():
            assert torch.equal(value, b["state"][key][name]), (key, name)
    assert again.steps == est.steps == 2
    assert list(again.replay) == list(est.replay)


def test_load_overrides_reach_the_optimizer(tmp_path):
    """lr and weight decay given to `load` replace the saved optimizer's (its moments are kept)."""
    est = make(train_top_layers=1, lr=2e-4, weight_decay=0.01)
    est.update(outcomes())
    est.save(tmp_path / "est")
    again = OnlineEstimator.load(tmp_path / "est", lr=1e-3, weight_decay=0.5, replay_size=3)
    assert [(g["lr"], g["weight_decay"]) for g in again.optimizer.param_groups] == [(1e-3, 0.5), (1e-3 * 0.2, 0.5)]
    assert again.config.replay_size == 3 and again.optimizer.state_dict()["state"].keys() == est.optimizer.state_dict()["state"].keys()
    with pytest.raises(DepoError, match="cannot override"):
        OnlineEstimator.load(tmp_path / "est", width=8)


def test_state_dict_resume_gives_the_same_next_update():
    est = make(freeze_encoder=True)
    est.update(outcomes())
    other = make(freeze_encoder=True, seed=123)  # different init: everything must come from the state
    other.load_state_dict(est.state_dict())
    assert "encoder" not in est.state_dict()  # frozen encoder: its weights are not checkpointed
    for e in (est, other):
        torch.manual_seed(5)
        e.update(outcomes())
    np.testing.assert_array_equal(other.predict(TEXTS), est.predict(TEXTS))
    with pytest.raises(DepoError, match="freeze_encoder"):
        make().load_state_dict(est.state_dict())


def test_frozen_encoder_caches_embeddings_and_trains_only_the_head():
    est = make(freeze_encoder=True)
    enc_before = [p.detach().clone() for p in est.encoder.parameters()]
    head_before = est.head.stem[0].weight.detach().clone()
    est.predict(TEXTS)
    assert est.features.cache.misses == len(TEXTS) and est.features.cache.hits == 0
    est.predict(TEXTS[:3])
    assert est.features.cache.hits == 3
    metrics = est.update(outcomes())
    assert est.features.cache.misses == len(TEXTS)  # every update text was already cached
    assert metrics["estimator/cache_hit_rate"] == pytest.approx((3 + len(TEXTS)) / (3 + 2 * len(TEXTS)))
    assert all(torch.equal(a, b) for a, b in zip(enc_before, est.encoder.parameters()))
    assert not torch.equal(head_before, est.head.stem[0].weight)
    assert len(est.optimizer.param_groups) == 1


def test_top_layers_option_updates_only_those_layers():
    est = make(train_top_layers=2)
    layers = encoder_layers(est.encoder.model)
    low = [p.detach().clone() for p in layers[0].parameters()]
    top = [p.detach().clone() for p in layers[-1].parameters()]
    est.update(outcomes())
    assert all(torch.equal(a, b) for a, b in zip(low, layers[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(top, layers[-1].parameters()))


def test_top_layers_cache_of_lower_layers_matches_running_the_whole_encoder():
    cached, plain = make(train_top_layers=2), make(train_top_layers=2, cache_lower_layers=False)
    assert cached.features.mode == "lower" and plain.features.mode == "none"
    plain.head.load_state_dict(cached.head.state_dict())
    batch = outcomes()
    np.testing.assert_allclose(cached.predict(TEXTS), plain.predict(TEXTS), atol=1e-5)
    assert cached.features.cache.misses == len(TEXTS)
    losses = []
    for est in (cached, plain):
        torch.manual_seed(3)  # same dropout masks in the trainable top layers and the head
        losses.append(est.update(batch)["estimator/loss"])
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert cached.features.cache.hits == len(TEXTS)  # the update reused the states computed by predict
    np.testing.assert_allclose(cached.predict(TEXTS), plain.predict(TEXTS), atol=1e-4)


def test_replay_and_k_updates_per_step():
    est = make(freeze_encoder=True, replay_size=3, updates_per_step=2)
    first = est.update(outcomes()[:4])
    assert first["estimator/batch_size"] == 4
    second = est.update(outcomes()[4:6])
    assert second["estimator/batch_size"] == 2 + 3  # this step's groups + the 3 most recent earlier ones
    assert [o.prompt_id for o in est.replay] == ["p3", "p4", "p5"]
    adam_steps = {int(s["step"]) for s in est.optimizer.state_dict()["state"].values()}
    assert adam_steps == {4}  # 2 RL steps x 2 optimizer steps


def test_update_batch_size_samples_the_replay_but_keeps_every_fresh_group():
    est = make(freeze_encoder=True, replay_size=6, update_batch_size=5, updates_per_step=3)
    est.update(outcomes()[:6])  # 6 fresh groups, empty replay: the whole batch, larger than 5
    for k in range(3):
        idx = est._update_sample(2, 2 + 6, k)
        assert idx[:2] == [0, 1] and len(idx) == 5 == len(set(idx)) and all(2 <= i < 8 for i in idx[2:])
    draws = {tuple(est._update_sample(2, 8, k)) for k in range(3)}
    assert len(draws) > 1  # each optimizer step draws its own sample
    again = make(freeze_encoder=True, replay_size=6, update_batch_size=5, updates_per_step=3)
    again.update(outcomes()[:6])
    assert [again._update_sample(2, 8, k) for k in range(3)] == [est._update_sample(2, 8, k) for k in range(3)]
    metrics = est.update(outcomes()[6:])
    assert metrics["estimator/batch_size"] == 8 and metrics["estimator/update_batch_size"] == 5
    with pytest.raises(DepoError, match="update_batch_size"):
        EstimatorConfig.build({"update_batch_size": -1})


def test_fit_is_deterministic_given_seed_and_learns():
    texts = [f"Compute {a} + {b}." for a in range(6) for b in range(4)]
    targets = [1.0 if a < 3 else 0.0 for a in range(6) for _ in range(4)]
    runs = []
    for _ in range(2):
        est = make(freeze_encoder=True)
        history = est.fit(texts, targets, epochs=4, batch_size=8, val=(texts, targets), progress=False, seed=7)
        runs.append((est.predict(texts), history))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    history = runs[0][1]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_mae"] < history[0]["val_mae"]
    assert "train_loss_distill" not in history[0]


def test_bad_labels_are_user_errors():
    est = make(freeze_encoder=True)
    with pytest.raises(DepoError, match=r"\[0, 1\]"):
        est.update([GroupOutcome("a", "x", (2.0, 1.0))])
    with pytest.raises(DepoError, match="targets"):
        est.fit(["a", "b"], [0.5], epochs=1)
