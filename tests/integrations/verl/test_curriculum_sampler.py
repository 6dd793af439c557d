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
        assert "3 passed" in proc.stdout, proc.stdout[-2000:]

else:
    import copy

    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl import DataProto
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler
    from verl.trainer.main_ppo import create_rl_sampler
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl_fixtures import Scripted, assert_same_state, write_parquet

    from depo.integrations.verl.curriculum_sampler import DEPOCurriculumSampler

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
