"""RayDEPOTrainer against verl 0.9.x's real RayPPOTrainer, DataProto and Hydra config (CPU, no training).

Runs only in the verl virtual environment (scripts/test-verl.sh); elsewhere it skips.
"""

from __future__ import annotations

import os

import pytest

# "verl.protocol", not "verl": in a full run tests/integrations is on sys.path, where this
# folder is a namespace package named verl.
pytest.importorskip("verl.protocol")


import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, ResourcePoolManager  # noqa: E402
from verl.trainer.ppo.utils import Role  # noqa: E402
from verl_fixtures import CONFIG_DIR, Scripted, assert_same_state, fake_step, write_parquet  # noqa: E402

from depo.errors import DepoError  # noqa: E402
from depo.integrations.verl.prompts import ID_KEY, text_hash  # noqa: E402
from depo.integrations.verl.trainer import RayDEPOTrainer  # noqa: E402
from depo.selection.order import DataOrder  # noqa: E402
from depo.types import Decisions  # noqa: E402

torch.set_num_threads(1)
N_PROMPTS, BATCH, GROUP = 12, 4, 4
TINY_ESTIMATOR = [
    "+depo.estimator.config.width=32",
    "+depo.estimator.config.feature_width=16",
    "+depo.estimator.config.num_blocks=1",
    "+depo.estimator.config.max_length=32",
    "depo.estimator.torch_device=cpu",
]


def make_config(tmp_path, *overrides: str, with_index: bool = True):
    train = write_parquet(tmp_path / "train.parquet", N_PROMPTS, with_index=with_index)
    val = write_parquet(tmp_path / "val.parquet", 4)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(
            "depo_trainer",
            overrides=[
                f"data.train_files={train}",
                f"data.val_files={val}",
                f"data.train_batch_size={BATCH}",
                "data.filter_overlong_prompts=false",
                "data.dataloader_num_workers=0",
                f"actor_rollout_ref.rollout.n={GROUP}",
                f"trainer.default_local_dir={tmp_path / 'ckpt'}",
                "trainer.total_epochs=2",
                *overrides,
            ],
        )


class FakeWorkerGroup:
    """Stands in for the actor worker group where verl's checkpoint code calls it."""

    world_size = 1

    def save_checkpoint(self, local_path, *args, **kwargs):
        os.makedirs(local_path, exist_ok=True)

    def load_checkpoint(self, *args, **kwargs):
        return None


def make_trainer(config, selector=None):
    trainer = RayDEPOTrainer(
        config=config,
        tokenizer=None,
        role_worker_mapping={Role.ActorRollout: object},
        resource_pool_manager=ResourcePoolManager(resource_pool_spec={"global_pool": [1]}, mapping={}),
        selector=selector,
    )
    trainer.actor_rollout_wg = FakeWorkerGroup()
    return trainer


@pytest.fixture
def no_actor_update(monkeypatch):
    """verl's actor update needs GPU workers: replace the parent's with a stub that returns metrics."""

    def fake(self, batch):
        return DataProto.from_single_dict(data={}, meta_info={"metrics": {"actor/pg_loss": 0.5}})

    monkeypatch.setattr(RayPPOTrainer, "_update_actor", fake)


def test_hydra_config_extends_ppo_trainer(tmp_path):
    config = make_config(tmp_path)
    assert config.depo.selector == "depo" and config.depo.estimator.device == "driver"
    assert config.trainer.use_v1 is False
    assert config.algorithm.filter_groups.enable is False
    # verl's own defaults came along (the DAPO knobs the launch script sets exist)
    assert config.actor_rollout_ref.actor.clip_ratio_high is not None
    assert config.actor_rollout_ref.actor.loss_agg_mode == "token-mean"


def test_constructs_with_real_depo_selector_and_estimator(tmp_path, no_actor_update):
    trainer = make_trainer(make_config(tmp_path, *TINY_ESTIMATOR))
    from depo.selection.depo import DEPO

    assert isinstance(trainer, RayPPOTrainer)
    assert isinstance(trainer.depo_selector, DEPO)
    assert len(trainer.train_dataloader) == N_PROMPTS // BATCH
    assert trainer.total_training_steps == 2 * (N_PROMPTS // BATCH)
    batch_dict = next(iter(trainer.train_dataloader))
    assert len(batch_dict["extra_info"]) == BATCH
    batch = fake_step(batch_dict, GROUP, lambda pid, j: float(j % 2), lambda pid, j: -0.5)
    metrics = trainer._update_actor(batch).meta_info["metrics"]
    assert metrics["actor/pg_loss"] == 0.5
    assert metrics["select/kept"] == BATCH  # warm-up keeps everything
    assert metrics["select/effective_rate"] == 1.0
    assert "estimator/target_mean" in metrics and np.isfinite(metrics["estimator/target_mean"])
    assert trainer.depo_selector.steps == 1


def test_selection_and_observe_group_by_uid(tmp_path, no_actor_update):
    reject = {"i:1", "i:4", "i:5"}
    selector = Scripted(reject)
    trainer = make_trainer(make_config(tmp_path), selector=selector)
    loader = iter(trainer.train_dataloader)
    seen: list[str] = []
    for step in range(2):
        batch_dict = next(loader)
        pids = [e[ID_KEY] for e in batch_dict["extra_info"]]
        assert not set(pids) & reject and len(pids) == BATCH
        seen += pids

        def reward(pid, j):  # prompt k: all-correct if k % 3 == 0, else alternating (informative)
            k = int(pid[2:])
            return 1.0 if k % 3 == 0 else float(j % 2)

        batch = fake_step(batch_dict, GROUP, reward, lambda pid, j: -0.1 * int(pid[2:]), seed=step)
        metrics = trainer._update_actor(batch).meta_info["metrics"]

        outcomes = selector.observed[-1]
        assert sorted(o.prompt_id for o in outcomes) == sorted(pids)
        for o in outcomes:
            k = int(o.prompt_id[2:])
            expected = (1.0,) * GROUP if k % 3 == 0 else tuple(float(j % 2) for j in range(GROUP))
            assert sorted(o.rewards) == sorted(expected)
            assert o.text == f"What is {k} + {k}?"
            assert o.mean_logprobs == pytest.approx((-0.1 * k,) * GROUP)  # padding masked out
        zero_var = sum(int(p[2:]) % 3 == 0 for p in pids)
        assert metrics["select/effective_rate"] == pytest.approx((BATCH - zero_var) / BATCH)
        assert metrics["select/groups"] == BATCH
        assert metrics["select/scripted_groups"] == BATCH
        # survival accounting: kept / scanned, with kept == BATCH and the rejected ones skipped
        assert metrics["select/kept"] == BATCH
        assert metrics["select/scanned"] == BATCH + metrics["select/skipped"]
        assert metrics["select/survival_rate"] == pytest.approx(BATCH / metrics["select/scanned"])
    # the stream consumed a prefix of the seeded order: every rejected prompt in it was skipped
    total = trainer.train_dataloader.stream.total
    fresh = DataOrder(N_PROMPTS, seed=0)
    consumed = [f"i:{fresh.next()}" for _ in range(total.scanned)]
    assert seen == [p for p in consumed if p not in reject]
    assert total.skipped == sum(p in reject for p in consumed) and total.kept == 2 * BATCH


class ByIndex(Scripted):
    """Priority = the prompt's index: keep-by-rank must keep the highest indices of each pool."""

    def select(self, batch):
        d = super().select(batch)
        return Decisions(keep=d.keep, explored=d.explored, priority=np.array([float(c.prompt_id[2:]) for c in batch]))


def test_keep_by_rank_in_verl(tmp_path, no_actor_update):
    trainer = make_trainer(make_config(tmp_path, "depo.selection=rank", "depo.oversample=2.0"), selector=ByIndex())
    loader = iter(trainer.train_dataloader)
    order = DataOrder(N_PROMPTS, seed=0)
    for _ in range(2):
        pids = [e[ID_KEY] for e in next(loader)["extra_info"]]
        pool = [order.next() for _ in range(2 * BATCH)]  # the stream scans 2 x the batch of the seeded order
        assert sorted(int(p[2:]) for p in pids) == sorted(pool)[BATCH:]  # and keeps the best half
        stats = trainer.train_dataloader.last_stats
        assert stats["select/scanned"] == 2 * BATCH and stats["select/kept"] == BATCH


def test_dapo_reward_uses_acc_not_signed_score(tmp_path, no_actor_update):
    selector = Scripted()
    trainer = make_trainer(make_config(tmp_path), selector=selector)
    batch_dict = next(iter(trainer.train_dataloader))
    # DAPO's math reward: score +1 / -1 (plus overlong penalty), correctness in extra info "acc"
    batch = fake_step(
        batch_dict, GROUP, lambda pid, j: 1.0 if j == 0 else -1.0, lambda pid, j: -1.0, acc_of=lambda pid, j: j == 0
    )
    trainer._update_actor(batch)
    for o in selector.observed[-1]:
        assert sorted(o.rewards) == [0.0] * (GROUP - 1) + [1.0]

    trainer.depo_settings.reward_key = "score"
    with pytest.raises(DepoError, match="reward_key"):
        trainer._update_actor(batch)
    trainer.depo_settings.reward_key = "correct"  # a key the reward function does not return
    with pytest.raises(DepoError, match=r"depo.reward_key='correct' is not in the batch's reward extra info \(have: .*acc"):
        trainer._update_actor(batch)


def test_prompt_hash_ids_without_extra_info_index(tmp_path, no_actor_update):
    selector = Scripted()
    trainer = make_trainer(make_config(tmp_path, with_index=False), selector=selector)
    batch_dict = next(iter(trainer.train_dataloader))
    pids = [e[ID_KEY] for e in batch_dict["extra_info"]]
    texts = {f"What is {k} + {k}?" for k in range(N_PROMPTS)}
    assert all(p in {text_hash(t) for t in texts} for p in pids)
    trainer._update_actor(fake_step(batch_dict, GROUP, lambda pid, j: 0.0, lambda pid, j: -1.0))
    assert sorted(o.prompt_id for o in selector.observed[-1]) == sorted(pids)


def test_dynamic_sampling_runs_behind_the_selection(tmp_path):
    from depo.integrations.verl.dynamic_sampling import DEFAULT_ROUNDS, DynamicSampledBatches

    trainer = make_trainer(make_config(tmp_path, "algorithm.filter_groups.enable=true"), selector=Scripted())
    loader = trainer.train_dataloader
    assert isinstance(loader, DynamicSampledBatches) and loader.max_rounds == DEFAULT_ROUNDS  # 0 = bounded, not unlimited
    assert len(loader) == N_PROMPTS // BATCH  # verl's step count is unchanged
    with pytest.raises(DepoError, match="not attached"):
        next(iter(loader))


def test_checkpoint_round_trips_selector_and_stream(tmp_path, no_actor_update):
    config = make_config(tmp_path, *TINY_ESTIMATOR, "+depo.options.warmup_steps=1")
    first = make_trainer(config)
    loader = iter(first.train_dataloader)
    for _step in range(2):  # one warm-up step, one filtered step: the estimator has trained
        batch = fake_step(next(loader), GROUP, lambda pid, j: float(j < int(pid[2:]) % 5), lambda pid, j: -0.3)
        first._update_actor(batch)
    first.global_steps = 2
    first._save_checkpoint()  # verl's real save (actor stubbed) + ours
    assert os.path.exists(tmp_path / "ckpt" / "global_step_2" / "depo" / "state.json")  # no pickle
    assert os.path.exists(tmp_path / "ckpt" / "global_step_2" / "data.pt")

    second = make_trainer(make_config(tmp_path, *TINY_ESTIMATOR, "+depo.options.warmup_steps=1"))
    second.global_steps = 0
    second._load_checkpoint()  # verl's real resume logic finds global_step_2
    assert second.global_steps == 2
    assert_same_state(first.depo_selector.state_dict(), second.depo_selector.state_dict())
    assert_same_state(first.train_dataloader.state_dict(), second.train_dataloader.state_dict())
    # both continue with the same prompts, and the estimators predict the same
    a, b = next(iter(first.train_dataloader)), next(iter(second.train_dataloader))
    assert [e[ID_KEY] for e in a["extra_info"]] == [e[ID_KEY] for e in b["extra_info"]]
    texts = [f"What is {k} + {k}?" for k in range(3)]
    np.testing.assert_allclose(
        first.depo_selector.estimator.predict(texts), second.depo_selector.estimator.predict(texts), rtol=1e-6
    )


def test_a_pickled_selector_state_is_refused_and_runs_nothing(tmp_path, no_actor_update):
    trainer = make_trainer(make_config(tmp_path, *TINY_ESTIMATOR))
    folder = tmp_path / "ckpt" / "global_step_1" / "depo"
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "depo-verl/1", "x": Payload()}, folder / "state.pt")
    with pytest.raises(DepoError, match=r"state\.pt is a pickle, which depo does not load"):
        trainer.depo_load(str(folder))
    assert not marker.exists()



def test_a_missing_selector_state_starts_fresh_and_a_foreign_one_is_refused(tmp_path, no_actor_update):
    from depo.state_io import save_state

    trainer = make_trainer(make_config(tmp_path, *TINY_ESTIMATOR))
    assert trainer.depo_load(str(tmp_path / "ckpt" / "global_step_1" / "depo")) is False  # e.g. saved by plain verl
    folder = tmp_path / "other"
    save_state({"format": "someone-else/3", "selector": {}}, folder, "state")
    with pytest.raises(DepoError, match=r"is not a DEPO verl state \('someone-else/3', expected"):
        trainer.depo_load(str(folder))


def test_main_task_runner_wraps_verl_runner():
    from verl.trainer import main_ppo_v0

    from depo.integrations.verl.main import _task_runner_class

    runner = _task_runner_class()
    cls = runner.__ray_actor_class__
    assert issubclass(cls, main_ppo_v0.TaskRunner.__ray_actor_class__)
    assert "run" in cls.__dict__


@pytest.fixture
def driver(monkeypatch):
    """The verl driver (`main.run`) with verl's own validation and `run_ppo` (Ray) stubbed: the
    list records the configs that reached Ray."""
    import verl.trainer.main_ppo
    import verl.utils.config

    from depo.integrations.verl.main import run

    reached = []
    monkeypatch.setattr(verl.utils.config, "validate_config", lambda **kwargs: None)
    monkeypatch.setattr(verl.trainer.main_ppo, "run_ppo", lambda config, task_runner_class=None: reached.append(config))
    return run, reached


@pytest.mark.parametrize(("override", "message"), [
    ("depo.selector=bogus", "depo.selector: unknown selector 'bogus'; choose one of: "),
    ("+depo.options.warmup_step=3", "depo.options: unknown key 'warmup_step' (did you mean 'warmup_steps'?)"),
    ("+depo.estimator.config.lrr=1", "depo.estimator.config: unknown key 'lrr' (did you mean 'lr'?)"),
])
def test_the_driver_refuses_a_bad_selector_options_or_estimator_config_before_ray(tmp_path, driver, override, message):
    run, reached = driver
    with pytest.raises(DepoError) as err:
        run(make_config(tmp_path, override))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not reached


def test_the_driver_runs_plain_verl_with_depo_disabled(tmp_path, driver):
    """depo.enable=false is plain verl: DEPO's own requirements (rollout.n >= 2, a valid
    selector) are not checked."""
    run, reached = driver
    run(make_config(tmp_path, "depo.enable=false", "actor_rollout_ref.rollout.n=1", "depo.selector=bogus"))
    assert len(reached) == 1
    with pytest.raises(DepoError, match=r"rollout.n must be >= 2"):
        run(make_config(tmp_path, "actor_rollout_ref.rollout.n=1"))


def test_disabled_is_plain_verl(tmp_path, no_actor_update):
    trainer = make_trainer(make_config(tmp_path, "depo.enable=false"))
    assert trainer.depo_selector is None
    assert type(trainer.train_dataloader).__name__ == "StatefulDataLoader"  # verl's own loader, untouched
    out = trainer._update_actor(DataProto.from_single_dict(data={"x": torch.zeros(2, 1)}))
    assert out.meta_info["metrics"] == {"actor/pg_loss": 0.5}


def test_the_driver_estimator_learns_the_same_way_in_every_run(tmp_path, no_actor_update):
    """verl never seeds the driver's torch generator, from which the trunk's dropout draws in the
    online update; RayDEPOTrainer seeds it with the data seed, so a rerun repeats the estimator."""
    probe = [f"What is {i} + {i}?" for i in range(6)]
    predictions = []
    for run in range(2):
        torch.rand(5 + run)  # whatever the process drew before
        (tmp_path / f"run{run}").mkdir()
        trainer = make_trainer(make_config(tmp_path / f"run{run}", *TINY_ESTIMATOR))
        batch = fake_step(next(iter(trainer.train_dataloader)), GROUP, lambda pid, j: float(j % 2), lambda pid, j: -0.5)
        trainer._update_actor(batch)
        predictions.append(trainer.depo_selector.estimator.predict(probe))
    np.testing.assert_array_equal(predictions[0], predictions[1])
