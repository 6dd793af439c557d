"""`RayDEPOTrainer`: verl's `RayPPOTrainer` with DEPO selection before the rollout (verl >= 0.8).

verl 0.8 removed the curriculum-sampler hook (docs/method.md section 6), so, like the reference
release, DEPO subclasses the trainer; unlike the release it does not copy `fit()`, so the
training step stays verl's own (GRPO, or DAPO's clip-higher, token-mean loss and overlong
shaping). A step, and what is checkpointed: docs/verl.md, "What happens in a step".

1. `_create_dataloader`: the train dataloader is replaced by `SelectedBatches` (or, with
   `algorithm.filter_groups.enable=true`, `DynamicSampledBatches`); step counts are unchanged.
2. `_update_actor`: after verl's actor update, the step's responses are grouped by `uid` and
   passed to `selector.observe`; the select/*, estimator/* and time/* metrics ride back in the
   actor output's metrics, which `fit()` logs through verl's `Tracking`.
3. `_save_checkpoint` / `_load_checkpoint`: the selector and the data stream, in
   `global_step_N/depo/` (`depo.state_io`: loading runs no code), also at epoch boundaries.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from omegaconf import OmegaConf, open_dict
from verl.trainer.ppo.ray_trainer import RayPPOTrainer, find_latest_ckpt_path

from depo.errors import DepoError
from depo.integrations.verl.dynamic_sampling import DynamicSampledBatches
from depo.integrations.verl.loader import SelectedBatches
from depo.integrations.verl.outcomes import group_outcomes
from depo.integrations.verl.prompts import PromptTable
from depo.integrations.verl.settings import DepoSettings, build_selector
from depo.state_io import load_state, save_state

STATE_DIR = "depo"
STATE_NAME = "state"
FORMAT = "depo-verl/1"


def dynamic_sampling_rounds(config: Any) -> int | None:
    """Rounds per step of DAPO's dynamic sampling (`algorithm.filter_groups`), or None when it is off."""
    filter_groups = config.algorithm.get("filter_groups", None)
    if filter_groups is None or not filter_groups.get("enable", False):
        return None
    return int(filter_groups.get("max_num_gen_batches", 0) or 0)


def check_config(config: Any) -> None:
    """Refuse settings DEPO cannot run with, with one clear line each (the `depo:` block, its
    selector, options and estimator config included); with `depo.enable=false` nothing beyond
    the block's types is checked: the run is plain verl."""
    settings = DepoSettings.from_config(config.get("depo", None))
    if not settings.enable:
        return
    settings.check()
    if int(config.actor_rollout_ref.rollout.n) < 2:
        raise DepoError("actor_rollout_ref.rollout.n must be >= 2: DEPO selects for GRPO groups")
    if config.trainer.get("use_v1", False):
        raise DepoError("RayDEPOTrainer extends verl's RayPPOTrainer: set trainer.use_v1=false")


class RayDEPOTrainer(RayPPOTrainer):
    """RayPPOTrainer that rolls out only the prompts a DEPO `Selector` keeps (see module doc).

    Extra keyword `selector`: a ready `Selector` (tests, custom selectors); by default it is built
    from the config's `depo:` block (`DepoSettings`).
    """

    def __init__(self, *args: Any, selector: Any = None, **kwargs: Any) -> None:
        self._depo_selector_override = selector
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- selection (before rollout)
    def _create_dataloader(self, train_dataset, val_dataset, collate_fn, train_sampler) -> None:
        super()._create_dataloader(train_dataset, val_dataset, collate_fn, train_sampler)
        self.depo_settings = DepoSettings.from_config(self.config.get("depo", None))
        if not self.depo_settings.enable:
            self.depo_selector = None
            return
        check_config(self.config)
        data = self.config.data
        seed = self.depo_settings.data_seed(data)
        # verl never seeds the driver's torch generator, from which an in-process estimator's
        # dropout draws (its online update): seeded here, a run repeats its selections
        torch.manual_seed(seed)
        self.depo_selector = self._depo_selector_override or build_selector(
            self.depo_settings, group_size=int(self.config.actor_rollout_ref.rollout.n), seed=seed
        )
        table = PromptTable.from_dataset(self.train_dataset, prompt_key=data.get("prompt_key", "prompt"))
        steps_before = len(self.train_dataloader)
        self.train_dataloader = SelectedBatches(
            self.train_dataset, self.train_dataloader.collate_fn, self.depo_selector, table,
            batch_size=int(data.train_batch_size), seed=seed, settings=self.depo_settings,
        )
        rounds = dynamic_sampling_rounds(self.config)
        if rounds is not None:
            self.train_dataloader = DynamicSampledBatches(
                self.train_dataloader, self, max_rounds=rounds, reward_key=self.depo_settings.reward_key
            )
        if len(self.train_dataloader) != steps_before and self.config.trainer.total_training_steps is None:
            # verl counted steps with data.gen_batch_size (dynamic sampling's knob, unused here).
            self._set_total_training_steps(len(self.train_dataloader) * self.config.trainer.total_epochs)

    def _set_total_training_steps(self, steps: int) -> None:
        self.total_training_steps = steps
        with open_dict(self.config):
            if OmegaConf.select(self.config, "actor_rollout_ref.actor.optim"):
                self.config.actor_rollout_ref.actor.optim.total_training_steps = steps
            if OmegaConf.select(self.config, "critic.optim"):
                self.config.critic.optim.total_training_steps = steps

    def fit(self):
        """verl's own loop; with dynamic sampling the rollout manager first learns to replay the
        responses the dataloader generated ahead (depo.integrations.verl.dynamic_sampling)."""
        if isinstance(self.train_dataloader, DynamicSampledBatches):
            self.async_rollout_manager = self.train_dataloader.attach(self.async_rollout_manager)
        return super().fit()

    # ---------------------------------------------------------------- learning (after the step)
    def _update_actor(self, batch):
        output = super()._update_actor(batch)
        if self.depo_selector is not None:
            output.meta_info.setdefault("metrics", {}).update(self.depo_observe(batch))
        return output

    def depo_observe(self, batch: Any) -> dict[str, float]:
        """Group the step's responses by uid, feed the selector; return select/* and estimator/* metrics."""
        loader: SelectedBatches | DynamicSampledBatches = self.train_dataloader
        metrics = dict(loader.pop_stats())
        outcomes, group_metrics = group_outcomes(
            batch, loader.table.text_of, loader.last_explored, reward_key=self.depo_settings.reward_key
        )
        if isinstance(loader, DynamicSampledBatches):  # the groups dynamic sampling left out teach the estimator too
            outcomes = [*outcomes, *loader.pop_discarded()]
        t0 = time.perf_counter()
        for key, value in (self.depo_selector.observe(outcomes) or {}).items():
            metrics[key if "/" in key else f"select/{key}"] = float(value)
        metrics["time/depo_observe_s"] = time.perf_counter() - t0
        metrics.update(group_metrics)  # select/groups and select/effective_rate: the batch verl trained on
        return metrics

    # ---------------------------------------------------------------- checkpoints
    def _save_checkpoint(self) -> None:
        super()._save_checkpoint()
        if self.depo_selector is not None:
            step = f"global_step_{self.global_steps}"
            self.depo_save(os.path.join(self.config.trainer.default_local_dir, step, STATE_DIR))

    def depo_save(self, folder: str) -> None:
        """Write the selector and data-stream state to `folder` (each file atomically)."""
        selector, batches = self.depo_selector.state_dict(), self.train_dataloader.state_dict()
        save_state({"format": FORMAT, "selector": selector, "batches": batches}, folder, STATE_NAME)

    def _load_checkpoint(self):
        result = super()._load_checkpoint()
        folder = self._resume_folder() if self.depo_selector is not None else None
        if folder is not None:
            self.depo_load(os.path.join(folder, STATE_DIR))
        return result

    def _resume_folder(self) -> str | None:
        """The global_step_N folder verl just resumed from (same rules as RayPPOTrainer), or None."""
        trainer = self.config.trainer
        if trainer.resume_mode == "disable" or not getattr(self, "global_steps", 0):
            return None
        folder = (trainer.resume_from_path if trainer.resume_mode == "resume_path"
                  else find_latest_ckpt_path(os.path.abspath(trainer.default_local_dir)))
        return None if folder is None else os.path.abspath(folder)

    def depo_load(self, folder: str) -> bool:
        """Restore what `depo_save` wrote; a folder without it leaves the selector fresh, and a
        pickled or malformed file is refused with one line (nothing in it runs)."""
        if not os.path.isdir(folder) or not os.listdir(folder):
            print(f"[depo] no selector state in {folder}: the selector starts fresh")
            return False
        state = load_state(folder, STATE_NAME)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise DepoError(f"{folder} is not a DEPO verl state ({found!r}, expected {FORMAT!r})")
        self.depo_selector.load_state_dict(state["selector"])
        self.train_dataloader.load_state_dict(state["batches"])
        print(f"[depo] restored selector and data stream from {folder}")
        return True
