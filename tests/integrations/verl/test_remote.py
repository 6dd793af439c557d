"""`depo.estimator.device: ray`: the estimator behind a real local Ray actor (CPU, 1 core)."""

from __future__ import annotations

import pytest

# "verl.protocol", not "verl": in a full run tests/integrations is on sys.path, where this
# folder is a namespace package named verl.
pytest.importorskip("verl.protocol")
ray = pytest.importorskip("ray")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from depo.estimator import EstimatorConfig, OnlineEstimator  # noqa: E402
from depo.integrations.verl.settings import DepoSettings, build_selector  # noqa: E402
from depo.types import Candidate, GroupOutcome  # noqa: E402

TINY = {"width": 32, "feature_width": 16, "num_blocks": 1, "max_length": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_remote_estimator_matches_local_and_round_trips(local_ray):
    torch.set_num_threads(1)
    settings = DepoSettings.from_config(
        {"selector": "depo", "estimator": {"device": "ray", "num_gpus": 0, "num_cpus": 1, "config": TINY}}
    )
    selector = build_selector(settings, group_size=4, seed=0)
    remote = selector.estimator
    assert type(remote).__name__ == "RemoteEstimator"
    local = OnlineEstimator(EstimatorConfig(**TINY))
    texts = ["What is 1 + 1?", "Prove Fermat's last theorem."]
    # same seed, same init: the actor's estimator predicts what a local one does
    p0 = remote.predict(texts)
    np.testing.assert_allclose(p0, local.predict(texts), rtol=1e-5)

    outcomes = [GroupOutcome("a", texts[0], (1.0, 1.0, 1.0, 0.0), (-0.1,) * 4), GroupOutcome("b", texts[1], (0.0,) * 4, (-2.0,) * 4)]
    remote_metrics = remote.update(outcomes)
    assert remote_metrics and all(np.isfinite(v) for v in remote_metrics.values())
    assert not np.allclose(remote.predict(texts), p0)  # the actor's estimator learned

    state = selector.state_dict()  # through the actor, tensors on CPU
    expected = remote.predict(texts)
    ray.kill(remote.actor)  # a resumed run starts a new actor (and the 1-CPU test cluster has room for one)
    fresh = build_selector(settings, group_size=4, seed=0)
    before = fresh.estimator.predict(texts)
    fresh.load_state_dict(state)
    after = fresh.estimator.predict(texts)
    np.testing.assert_allclose(after, expected, rtol=1e-6)
    assert not np.allclose(before, after)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["trunk", "bayes"])
def test_depo_selects_through_the_remote_estimator_of_either_kind(local_ray, kind):
    """The proxy has only the wrapped estimator's methods: DEPO must not take a trunk estimator
    behind it for a Bayesian one (predict_distribution), and must use a Bayesian one's."""
    torch.set_num_threads(1)
    config = {"kind": "bayes", "max_length": 32, "device": "cpu"} if kind == "bayes" else TINY
    settings = DepoSettings.from_config({"selector": "depo", "options": {"warmup_steps": 0},
                                         "estimator": {"device": "ray", "num_gpus": 0, "num_cpus": 1, "config": config}})
    selector = build_selector(settings, group_size=4, seed=0)
    remote = selector.estimator
    try:
        assert type(remote).__name__ == "RemoteEstimator"
        batch = [Candidate("a", "What is 1 + 1?"), Candidate("b", "Prove Fermat's last theorem.")]
        decisions = selector.select(batch)  # a trunk behind the proxy crashed here (predict_distribution)
        assert len(decisions.keep) == 2 and np.all(np.isfinite(decisions.priority))
        selector.observe([GroupOutcome("a", batch[0].text, (1.0, 0.0, 1.0, 0.0), (-0.1,) * 4)])
        assert len(selector.select(batch).keep) == 2
        assert hasattr(remote, "predict_distribution") == selector.bayesian == (kind == "bayes")
        assert callable(remote.warm_cache)  # the estimator's other methods still reach the actor
        with pytest.raises(AttributeError):
            remote.no_such_method  # noqa: B018
    finally:
        ray.kill(remote.actor)  # the 1-CPU test cluster has room for one actor at a time
