"""verl 0.9's own `RayPPOTrainer.fit()` driven through `RayDEPOTrainer` on CPU, end to end.

Only the GPU-bound objects are replaced (`cpu_workers`: the actor worker group, the rollout
manager, the weight sync); the loop, the dataloader with DEPO's selection, uid assignment,
reward extraction, GRPO advantages, DEPO's observe, tracking and checkpoints are verl's and
depo's real code. The policy is the embedded tiny policy on arithmetic prompts it can partly
solve, so groups are mixed and the estimator has something to learn.

Runs only in the verl virtual environment (scripts/test-verl.sh); elsewhere it skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("verl.protocol")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from cpu_workers import attach, gym_parquet, tiny_policy  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from verl.trainer.ppo.ray_trainer import ResourcePoolManager  # noqa: E402
from verl.trainer.ppo.utils import Role  # noqa: E402
from verl.utils import tracking  # noqa: E402
from verl_fixtures import CONFIG_DIR  # noqa: E402

from depo.integrations.verl.trainer import RayDEPOTrainer  # noqa: E402
from depo.tasks.gym import preset_tasks  # noqa: E402

torch.set_num_threads(1)
PROMPTS, BATCH, GROUP, STEPS = 40, 4, 4, 4
ESTIMATOR = [  # the Bayesian estimator on frozen features: it learns from the first step's few labels
    "+depo.estimator.config.kind=bayes",
    "+depo.estimator.config.max_length=32",
    "+depo.estimator.config.hash_bits=12",
    "depo.estimator.torch_device=cpu",
]


@pytest.fixture(scope="module")
def policy() -> Path:
    return tiny_policy()


def make_config(tmp_path: Path, policy: Path, ckpt: Path, *overrides: str):
    train, val = gym_parquet(tmp_path / "train.parquet", "train", PROMPTS), gym_parquet(tmp_path / "val.parquet", "heldout", 4)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("depo_trainer", overrides=[
            f"data.train_files={train}", f"data.val_files={val}", f"data.train_batch_size={BATCH}",
            "data.max_prompt_length=24", "data.max_response_length=8", "data.filter_overlong_prompts=false",
            "data.dataloader_num_workers=0", f"actor_rollout_ref.model.path={policy}",
            f"actor_rollout_ref.rollout.n={GROUP}", f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH}", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
            "actor_rollout_ref.actor.optim.lr=1e-3", "actor_rollout_ref.rollout.temperature=1.0",
            f"trainer.default_local_dir={ckpt}", "trainer.total_epochs=1", f"trainer.total_training_steps={STEPS}",
            "trainer.save_freq=2", "trainer.test_freq=-1", "trainer.val_before_train=false", "trainer.logger=[console]",
            "+depo.options.warmup_steps=1", *ESTIMATOR, *overrides,
        ])  # fmt: skip


def make_trainer(config, policy: Path) -> RayDEPOTrainer:
    trainer = RayDEPOTrainer(
        config=config, tokenizer=AutoTokenizer.from_pretrained(policy), role_worker_mapping={Role.ActorRollout: object},
        resource_pool_manager=ResourcePoolManager(resource_pool_spec={"global_pool": [1]}, mapping={}),
    )  # fmt: skip
    attach(trainer, policy, config)
    return trainer


@pytest.fixture
def tracked(monkeypatch) -> list[tuple[int, dict]]:
    """What fit() hands verl's Tracking, step by step."""
    logged: list[tuple[int, dict]] = []
    monkeypatch.setattr(tracking.Tracking, "log", lambda self, data, step, **kw: logged.append((step, dict(data))))
    return logged


def _selections(trainer) -> dict[int, list[str]]:
    return {call["step"]: sorted(set(call["prompt_ids"])) for call in trainer.async_rollout_manager.calls}


def test_fit_runs_verl_loop_with_depo_selection_and_learning(tmp_path, policy, tracked):
    trainer = make_trainer(make_config(tmp_path, policy, tmp_path / "ckpt"), policy)
    probe = [t.text for t in preset_tasks("mixed", "heldout", 8, seed=1)]
    estimator_before = trainer.depo_selector.estimator.predict(probe)
    policy_before = {k: v.clone() for k, v in trainer.actor_rollout_wg.model.state_dict().items()}
    trainer.fit()

    steps = {step: data for step, data in tracked if "select/kept" in data}
    assert sorted(steps) == list(range(1, STEPS + 1))
    assert all(data["select/kept"] + data["select/forced"] == BATCH for data in steps.values())  # a full batch
    assert steps[1]["select/skipped"] == 0  # the warm-up step keeps everything
    assert sum(steps[s]["select/skipped"] for s in range(2, STEPS + 1)) > 0  # then DEPO skips prompts
    one = steps[STEPS]
    assert any(k.startswith("estimator/") for k in one) and "actor/pg_loss" in one and "critic/advantages/mean" in one
    assert one["training/global_step"] == STEPS
    # each step rolled out BATCH prompts x GROUP answers, and the rollout saw the synced weights
    assert [c["rows"] for c in trainer.async_rollout_manager.calls] == [BATCH * GROUP] * STEPS
    assert trainer.checkpoint_manager.synced_steps[-STEPS:] == list(range(1, STEPS + 1))
    rollout_weights = trainer.async_rollout_manager.model.state_dict()
    actor_weights = trainer.actor_rollout_wg.model.state_dict()
    assert all(torch.equal(rollout_weights[k], actor_weights[k]) for k in actor_weights)
    assert any(not torch.equal(policy_before[k], actor_weights[k]) for k in actor_weights)  # the policy learned
    estimator_after = trainer.depo_selector.estimator.predict(probe)
    assert np.abs(estimator_after - estimator_before).max() > 0.05  # so did the estimator, from verl's rewards
    assert (tmp_path / "ckpt" / "global_step_2" / "depo" / "state.json").exists()


def test_a_run_killed_after_step_2_resumes_with_the_same_selections(tmp_path, policy, tracked):
    whole = make_trainer(make_config(tmp_path, policy, tmp_path / "whole"), policy)
    whole.fit()

    killed = make_trainer(make_config(tmp_path, policy, tmp_path / "killed"), policy)
    killed.async_rollout_manager.kill_at_step = 3
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert (tmp_path / "killed" / "latest_checkpointed_iteration.txt").read_text() == "2"

    resumed = make_trainer(make_config(tmp_path, policy, tmp_path / "killed"), policy)
    resumed.fit()  # verl's resume_mode=auto finds global_step_2
    assert [c["step"] for c in resumed.async_rollout_manager.calls] == [3, 4]
    expected = _selections(whole)
    assert {s: expected[s] for s in (1, 2)} == _selections(killed)
    assert {s: expected[s] for s in (3, 4)} == _selections(resumed)


def test_dynamic_sampling_behind_depo_fills_batches_with_informative_groups_and_never_fails(tmp_path, policy, tracked):
    config = make_config(tmp_path, policy, tmp_path / "ckpt", "algorithm.filter_groups.enable=true",
                         "algorithm.filter_groups.max_num_gen_batches=3")  # fmt: skip
    trainer = make_trainer(config, policy)
    rollout = trainer.async_rollout_manager
    trainer.fit()

    steps = {step: data for step, data in tracked if "select/ds_rounds" in data}
    assert sorted(steps) == list(range(1, STEPS + 1))
    for data in steps.values():
        assert 1 <= data["select/ds_rounds"] <= 3
        assert data["select/ds_rollouts"] == data["select/ds_rounds"] * BATCH * GROUP  # every round is counted
        # the trained batch: its informative groups, topped up with zero-variance ones when short
        assert data["select/effective_rate"] == pytest.approx(data["select/ds_informative"] / BATCH)
        assert data["select/ds_unfilled"] == BATCH - data["select/ds_informative"]
    # the policy solves few prompts: some steps could not fill the batch and still trained
    assert any(d["select/ds_unfilled"] > 0 for d in steps.values()) and "actor/pg_loss" in steps[STEPS]
    assert any(d["select/ds_informative"] > 0 for d in steps.values())
    # generation happened only in the rounds (fit()'s own request was answered from them)
    assert len(rollout.calls) == sum(d["select/ds_rounds"] for d in steps.values())
    # the estimator observed every rolled-out group, not only the trained ones
    assert len(trainer.depo_selector.memory) == len({p for call in rollout.calls for p in call["prompt_ids"]})


def test_a_run_with_dynamic_sampling_killed_after_step_2_resumes_with_the_same_rounds(tmp_path, policy, tracked):
    """The dataloader of DEPO + dynamic sampling checkpoints its own position and the stream's."""
    rounds = ("algorithm.filter_groups.enable=true", "algorithm.filter_groups.max_num_gen_batches=3")
    whole = make_trainer(make_config(tmp_path, policy, tmp_path / "whole", *rounds), policy)
    whole.fit()
    killed = make_trainer(make_config(tmp_path, policy, tmp_path / "killed", *rounds), policy)
    killed.async_rollout_manager.kill_at_step = 3
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = make_trainer(make_config(tmp_path, policy, tmp_path / "killed", *rounds), policy)
    resumed.fit()

    def rounds_of(trainer) -> list[tuple[int, list[str]]]:
        return [(call["step"], sorted(call["prompt_ids"])) for call in trainer.async_rollout_manager.calls]

    assert {step for step, _ in rounds_of(resumed)} == {3, 4}
    assert rounds_of(killed) + rounds_of(resumed) == rounds_of(whole)
    assert len(rounds_of(whole)) > STEPS  # some steps needed more than one round
