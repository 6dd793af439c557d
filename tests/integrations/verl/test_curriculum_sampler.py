"""DEPOCurriculumSampler through verl 0.7.x's own create_rl_sampler (CPU, no training).

verl 0.7.1 cannot share an environment's pins with 0.9.1 (numpy<2 vs >=2), but its code imports
and runs on 0.9.1's dependencies; scripts/test-verl.sh installs it with --no-deps into
.venv-verl/verl07. Under verl 0.9 this file re-runs itself in a subprocess with that directory
first on PYTHONPATH (DEPO_VERL07=1) so the assertions below run against verl 0.7's real code.
Skips when verl is missing, or when verl 0.7 is not installed beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# "verl.protocol", not "verl": in a full run tests/integrations is on sys.path, where this
# folder is a namespace package named verl.
pytest.importorskip("verl.protocol")
import verl  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
VERL07 = Path(os.environ.get("DEPO_VERL07_PATH", ROOT / ".venv-verl" / "verl07"))
IS_07 = verl.__version__.startswith("0.7.")

if not IS_07:

    def test_sampler_against_verl07_in_subprocess():
        if not (VERL07 / "verl" / "__init__.py").exists():
            pytest.skip(f"verl 0.7 not installed at {VERL07} (scripts/test-verl.sh installs it)")
        env = dict(os.environ, PYTHONPATH=f"{VERL07}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", DEPO_VERL07="1")
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:warnings", __file__],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "6 passed" in proc.stdout, proc.stdout[-2000:]

else:
    import copy
    import logging

    import numpy as np
    import torch
    from cpu_workers import attach, gym_parquet, tiny_policy
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from torchdata.stateful_dataloader import StatefulDataLoader
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler
    from verl.trainer.main_ppo import create_rl_dataset, create_rl_sampler
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer, ResourcePoolManager
    from verl.trainer.ppo.utils import Role
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl_fixtures import Scripted, assert_same_state, write_parquet

    from depo.errors import DepoError
    from depo.integrations.verl.curriculum_sampler import DEPOCurriculumSampler
    from depo.tasks.gym import preset_tasks

    torch.set_num_threads(1)
    N, BATCH, GROUP = 10, 3, 4

    def data_config(tmp_path, **depo):
        path = write_parquet(tmp_path / "train.parquet", N)
        return path, OmegaConf.create(
            {
                "train_batch_size": BATCH,
                "gen_batch_size": None,
                "prompt_key": "prompt",
                "filter_overlong_prompts": False,
                "dataloader_num_workers": 0,
                "shuffle": True,
                "seed": 0,
                "sampler": {"class_path": "pkg://depo.integrations.verl.curriculum_sampler", "class_name": "DEPOCurriculumSampler"},
                "depo": {"group_size": GROUP, "selector": "uniform", **depo},
            }
        )

    def make_sampler(tmp_path, **depo):
        path, cfg = data_config(tmp_path, **depo)
        dataset = RLHFDataset(data_files=[str(path)], tokenizer=None, config=cfg)
        return create_rl_sampler(cfg, dataset), dataset

    def step_batch(indices, sampler, reward_of):
        """The batch verl 0.7 hands to sampler.update: responses of the step, shuffled, keyed by uid."""
        rows = [sampler.dataset.dataframe[i] for i in indices]
        uids, extra, rm, scores = [], [], [], []
        for k, row in enumerate(rows):
            for j in range(GROUP):
                uids.append(f"u{k}")
                extra.append(row["extra_info"])
                rm.append(row["reward_model"])
                scores.append(reward_of(row["extra_info"]["index"], j))
        perm = np.random.default_rng(1).permutation(len(uids))
        tls = torch.zeros(len(uids), 3)
        tls[:, -1] = torch.tensor(scores, dtype=torch.float32)
        return DataProto.from_dict(
            tensors={"token_level_scores": tls[perm]},
            non_tensors={
                "uid": np.array(uids, dtype=object)[perm],
                "extra_info": np.array(extra, dtype=object)[perm],
                "reward_model": np.array(rm, dtype=object)[perm],
            },
        )

    def test_loads_through_create_rl_sampler(tmp_path):
        sampler, dataset = make_sampler(tmp_path)
        assert verl.__version__.startswith("0.7.")
        assert isinstance(sampler, DEPOCurriculumSampler) and isinstance(sampler, AbstractCurriculumSampler)
        assert len(sampler) == (N // BATCH) * BATCH
        indices = list(iter(sampler))
        assert len(indices) == len(sampler) and len(set(indices)) == len(indices)

    def test_update_groups_by_uid_and_feeds_selector(tmp_path):
        _, cfg = data_config(tmp_path)
        dataset = RLHFDataset(data_files=[str(write_parquet(tmp_path / "t.parquet", N))], tokenizer=None, config=cfg)
        selector = Scripted(reject={"i:2", "i:7"})
        sampler = DEPOCurriculumSampler(dataset, cfg, selector=selector)
        loader = StatefulDataLoader(list(range(N)), batch_size=BATCH, sampler=sampler, num_workers=0, collate_fn=list)
        it = iter(loader)
        for _ in range(2):
            indices = next(it)
            assert not {2, 7} & set(indices)
            sampler.update(step_batch(indices, sampler, lambda k, j: float(j < k % GROUP)))
            outcomes = selector.observed[-1]
            assert sorted(o.prompt_id for o in outcomes) == sorted(f"i:{i}" for i in indices)
            for o in outcomes:
                k = int(o.prompt_id[2:])
                assert sorted(o.rewards) == sorted(float(j < k % GROUP) for j in range(GROUP))
                assert o.text == f"What is {k} + {k}?"
            m = sampler.last_metrics
            assert m["select/kept"] == BATCH and m["select/scanned"] == BATCH + m["select/skipped"]

    def test_update_refuses_rewards_outside_unit_interval(tmp_path):
        """DAPO's +-1 scores are no pass rates: refused as in the verl 0.9 path (outcomes.group_outcomes)."""
        sampler, _ = make_sampler(tmp_path, selector="history")
        it = iter(sampler)
        indices = [next(it) for _ in range(BATCH)]
        observed = copy.deepcopy(sampler.selector.state_dict())
        with pytest.raises(DepoError, match=r"rewards from 'score' are outside \[0, 1\] \(min -1, max 1\).*depo.reward_key"):
            sampler.update(step_batch(indices, sampler, lambda k, j: 1.0 if j % 2 else -1.0))
        assert_same_state(sampler.selector.state_dict(), observed)  # nothing was learned from them

    def test_a_missing_group_size_is_defaulted_with_a_warning(tmp_path, caplog):
        path, cfg = data_config(tmp_path)
        del cfg.depo["group_size"]
        dataset = RLHFDataset(data_files=[str(path)], tokenizer=None, config=cfg)
        with caplog.at_level(logging.WARNING, logger="depo.integrations.verl.curriculum_sampler"):
            sampler = DEPOCurriculumSampler(dataset, cfg)
        assert sampler.group_size == 8
        assert any("data.depo.group_size" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

    def test_state_rides_in_verl_dataloader_state(tmp_path):
        sampler, dataset = make_sampler(tmp_path, selector="history")
        loader = StatefulDataLoader(list(range(N)), batch_size=BATCH, sampler=sampler, num_workers=0, collate_fn=list)
        it = iter(loader)
        first = next(it)
        sampler.update(step_batch(first, sampler, lambda k, j: 1.0))  # all solved: history learns
        state = loader.state_dict()
        snapshot = copy.deepcopy(sampler.state_dict())
        expected_next = next(it)

        sampler2, _ = make_sampler(tmp_path, selector="history")
        fresh = copy.deepcopy(sampler2.selector.state_dict())
        loader2 = StatefulDataLoader(list(range(N)), batch_size=BATCH, sampler=sampler2, num_workers=0, collate_fn=list)
        loader2.load_state_dict(state)
        it2 = iter(loader2)  # StatefulDataLoader applies a loaded state when the next iterator starts
        assert_same_state(sampler2.state_dict(), snapshot)  # selector memory + stream position restored
        with pytest.raises(AssertionError):
            assert_same_state(fresh, snapshot["selector"])  # ... and the memory had learned something
        assert next(it2) == expected_next

    def test_verl07_fit_loop_trains_through_the_sampler(tmp_path):
        """verl 0.7.1's own RayPPOTrainer.fit() with DEPOCurriculumSampler, 4 steps on CPU stand-ins
        of its GPU workers (legacy DataProto worker API, verl 0.7's default)."""
        policy = tiny_policy()
        train, val = gym_parquet(tmp_path / "train.parquet", "train", 40), gym_parquet(tmp_path / "val.parquet", "heldout", 4)
        with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
            config = compose("ppo_trainer", overrides=[
                f"data.train_files={train}", f"data.val_files={val}", "data.train_batch_size=4",
                "data.max_prompt_length=24", "data.max_response_length=8", "data.filter_overlong_prompts=false",
                "data.dataloader_num_workers=0", f"actor_rollout_ref.model.path={policy}", "actor_rollout_ref.rollout.n=4",
                "actor_rollout_ref.actor.ppo_mini_batch_size=4", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
                "actor_rollout_ref.actor.optim.lr=1e-3", "algorithm.adv_estimator=grpo",
                f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.total_epochs=1", "trainer.total_training_steps=4",
                "trainer.save_freq=2", "trainer.test_freq=-1", "trainer.val_before_train=false", "trainer.logger=[console]",
                "data.sampler.class_path=pkg://depo.integrations.verl.curriculum_sampler",
                "data.sampler.class_name=DEPOCurriculumSampler", "+data.depo.group_size=4", "+data.depo.selector=depo",
                "+data.depo.options.warmup_steps=1", "+data.depo.estimator.torch_device=cpu",
                "+data.depo.estimator.config.kind=bayes", "+data.depo.estimator.config.max_length=32",
                "+data.depo.estimator.config.hash_bits=12",
            ])  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(policy)
        train_set = create_rl_dataset(config.data.train_files, config.data, tokenizer, None, is_train=True)
        val_set = create_rl_dataset(config.data.val_files, config.data, tokenizer, None, is_train=False)
        sampler = create_rl_sampler(config.data, train_set)
        trainer = RayPPOTrainer(
            config=config, tokenizer=tokenizer, role_worker_mapping={Role.ActorRollout: object},
            resource_pool_manager=ResourcePoolManager(resource_pool_spec={"global_pool": [1]}, mapping={}),
            train_dataset=train_set, val_dataset=val_set, train_sampler=sampler,
        )  # fmt: skip
        attach(trainer, policy, config)
        probe = [t.text for t in preset_tasks("mixed", "heldout", 8, seed=1)]
        before_estimate = sampler.selector.estimator.predict(probe)
        before_policy = {k: v.clone() for k, v in trainer.actor_rollout_wg.model.state_dict().items()}
        trainer.fit()

        calls = trainer.async_rollout_manager.calls
        assert [c["step"] for c in calls] == [1, 2, 3, 4] and all(c["rows"] == 16 for c in calls)
        assert sampler.selector.steps == 4  # verl 0.7 called the sampler's update after every step
        assert sampler.last_metrics["select/total_skipped"] > 0  # DEPO skipped prompts after the warm-up
        assert np.abs(sampler.selector.estimator.predict(probe) - before_estimate).max() > 0.05
        after = trainer.actor_rollout_wg.model.state_dict()
        assert any(not torch.equal(before_policy[k], after[k]) for k in after)
        assert (tmp_path / "ckpt" / "global_step_4" / "data.pt").exists()  # the sampler state rides in verl's checkpoint
