"""DAPO's dynamic sampling fed by DEPO's selection, inside verl's own `fit()` (docs/method.md section 6).

DAPO rolls out batch after batch, drops the groups whose rewards are all equal and trains once
`train_batch_size` informative groups are collected; its recipe raises "Generated too many"
after `max_num_gen_batches` rounds. With DEPO in front every round rolls out DEPO-selected
prompts, so fewer rounds are needed (the paper's "plug-and-play with DAPO").

verl 0.9's `fit()` rolls out exactly the batch its dataloader yields, so the loop runs in the
dataloader, without copying `fit()`:
1. `DynamicSampledBatches` draws a DEPO-selected batch, builds the generation batch as `fit()`
   does (uid, `_get_gen_batch`, repeat by n) and rolls it out through the trainer's rollout
   manager; informative groups are kept, until the batch is full or `max_rounds` rounds are
   spent. Then it tops the batch up with zero-variance groups instead of failing (they carry no
   GRPO gradient; counted as `select/ds_unfilled`) and yields the chosen prompts.
2. `ReplayRollout` wraps the rollout manager: when `fit()` asks it for those prompts it returns
   the responses already generated (with `fit()`'s new uids), so nothing is generated twice.
3. The groups left out still reach the selector in the step's observe (`pop_discarded`): the
   estimator learns from every rollout, not only from the informative ones.
Rewards come from the rollout (`rm_scores`, verl's reward loop); a colocated reward model,
which scores after the rollout, cannot drive the filter and is refused.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
from verl import DataProto

from depo.errors import DepoError
from depo.integrations.verl.loader import EpochBatches, SelectedBatches
from depo.integrations.verl.outcomes import group_outcomes
from depo.integrations.verl.prompts import ID_KEY
from depo.types import GroupOutcome

DEFAULT_ROUNDS = 10
"""Rounds per step when `max_num_gen_batches` is 0 (DAPO's "unlimited"): the loop stays bounded."""
ADDITIVE = tuple(f"select/{k}" for k in ("scanned", "kept", "skipped", "explored", "forced"))
"""Per-round selection stats that add up over a step's rounds."""
REWARD_KEYS = ("data_source", "reward_model", "extra_info", "uid")


class ReplayRollout:
    """The trainer's rollout manager, which hands back responses generated ahead for a batch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pending: list[tuple[str, DataProto]] = []
        """(prompt id, its n response rows) in the order of the batch the dataloader yielded."""
        self.timing: dict[str, float] = {}
        self.reward_extra_keys: list[str] = []

    def generate_sequences(self, gen_batch: DataProto) -> DataProto:
        if not self.pending or gen_batch.meta_info.get("validate", False):
            return self.inner.generate_sequences(gen_batch)
        n = len(gen_batch) // len(self.pending)
        asked = [info[ID_KEY] for info in gen_batch.non_tensor_batch["extra_info"][::n]]
        if asked != [pid for pid, _ in self.pending]:
            raise DepoError("dynamic sampling: fit() asked for other prompts than the dataloader generated ahead")
        out = DataProto.concat([rows for _, rows in self.pending])
        for key in REWARD_KEYS:  # fit()'s fresh uids (and the same prompt fields) for its union
            if key in gen_batch.non_tensor_batch:
                out.non_tensor_batch[key] = gen_batch.non_tensor_batch[key]
        out.meta_info = {"timing": dict(self.timing), "reward_extra_keys": list(self.reward_extra_keys)}
        self.pending.clear()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class DynamicSampledBatches(EpochBatches):
    """verl's train dataloader for DEPO + dynamic sampling: batches of informative groups (see module doc)."""

    def __init__(self, inner: SelectedBatches, trainer: Any, *, max_rounds: int, reward_key: str = "auto") -> None:
        self.inner = inner
        self.trainer = trainer
        self.max_rounds = int(max_rounds) if max_rounds and max_rounds > 0 else DEFAULT_ROUNDS
        self.reward_key = reward_key
        self.rollout: ReplayRollout | None = None
        self._yielded = 0
        self._stats: dict[str, float] = {}
        self._explored: dict[str, bool] = {}
        self._discarded: list[GroupOutcome] = []

    # what fit() and RayDEPOTrainer use of a train dataloader
    def __len__(self) -> int:
        return len(self.inner)

    @property
    def table(self):
        return self.inner.table

    @property
    def last_explored(self) -> dict[str, bool]:
        return self._explored

    def pop_stats(self) -> dict[str, float]:
        stats, self._stats = self._stats, {}
        return stats

    def pop_discarded(self) -> list[GroupOutcome]:
        """Outcomes of the step's rolled-out groups that were left out of its batch."""
        out, self._discarded = self._discarded, []
        return out

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "yielded": self._yielded}

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state["inner"])
        self._yielded = int(state["yielded"])

    def attach(self, rollout_manager: Any) -> ReplayRollout:
        """Wrap the trainer's rollout manager (once); the wrapper replays what this loader generated."""
        if not isinstance(rollout_manager, ReplayRollout):
            rollout_manager = ReplayRollout(rollout_manager)
        self.rollout = rollout_manager
        return rollout_manager

    # the loop
    def _generate(self, batch_dict: dict) -> DataProto:
        """Roll out a collated batch the way fit() does: uid, generation batch, n responses each."""
        config = self.trainer.config
        batch = DataProto.from_single_dict(batch_dict)
        batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
        gen_batch = self.trainer._get_gen_batch(batch)
        gen_batch.meta_info["temperature"] = config.actor_rollout_ref.rollout.temperature
        gen_batch.meta_info["global_steps"] = self.trainer.global_steps
        gen_batch = gen_batch.repeat(repeat_times=int(config.actor_rollout_ref.rollout.n), interleave=True)
        out = self.rollout.inner.generate_sequences(gen_batch)
        if "rm_scores" not in out.batch:
            raise DepoError(
                "dynamic sampling with DEPO needs rewards from the rollout (rm_scores from verl's reward loop); "
                "a colocated reward model scores too late: set algorithm.filter_groups.enable=false"
            )
        for key in REWARD_KEYS:
            if key not in out.non_tensor_batch:
                out.non_tensor_batch[key] = gen_batch.non_tensor_batch[key]
        return out

    def next_batch(self) -> dict:
        if self.rollout is None:
            raise DepoError("dynamic sampling: the rollout manager was not attached (RayDEPOTrainer.fit does it)")
        batch_size, n = self.inner.batch_size, int(self.trainer.config.actor_rollout_ref.rollout.n)
        chosen: list[tuple[int, str, DataProto]] = []
        spare: list[tuple[int, str, DataProto, GroupOutcome]] = []
        discarded: list[GroupOutcome] = []
        stats: dict[str, float] = {}
        self._explored = {}
        rounds = rollouts = 0
        start = time.perf_counter()
        while len(chosen) < batch_size and rounds < self.max_rounds:
            batch_dict = self.inner.next_batch()
            indices = list(self.inner.last_indices)
            self._explored.update(self.inner.last_explored)
            round_stats = self.inner.pop_stats()
            for key, value in round_stats.items():
                stats[key] = stats.get(key, 0.0) + value if key in ADDITIVE else value
            out = self._generate(batch_dict)
            rounds += 1
            rollouts += len(out)
            self.rollout.reward_extra_keys = list(out.meta_info.get("reward_extra_keys", []))
            out.batch["token_level_scores"] = out.batch["rm_scores"]
            outcomes, _ = group_outcomes(out, self.table.text_of, self._explored, reward_key=self.reward_key)
            out.pop(batch_keys=["token_level_scores"])
            for k, (index, outcome) in enumerate(zip(indices, outcomes, strict=True)):
                rows = out.slice(k * n, (k + 1) * n)
                rows.meta_info = {}
                if not outcome.is_zero_variance and len(chosen) < batch_size:
                    chosen.append((index, outcome.prompt_id, rows))
                elif outcome.is_zero_variance:
                    spare.append((index, outcome.prompt_id, rows, outcome))
                else:
                    discarded.append(outcome)  # informative, but the batch is full (DAPO drops these too)
        informative = len(chosen)
        while len(chosen) < batch_size and spare:  # never fail: top up with zero-variance groups
            index, pid, rows, _ = spare.pop(0)
            chosen.append((index, pid, rows))
        discarded += [outcome for *_, outcome in spare]
        self._discarded = discarded
        self.rollout.pending = [(pid, rows) for _, pid, rows in chosen]
        self.rollout.timing = {"depo/dynamic_sampling_gen_s": time.perf_counter() - start}
        if stats.get("select/scanned"):
            stats["select/survival_rate"] = stats["select/kept"] / stats["select/scanned"]
        stats.update({
            "select/ds_rounds": float(rounds), "select/ds_rollouts": float(rollouts),
            "select/ds_informative": float(informative), "select/ds_unfilled": float(batch_size - informative),
            "select/ds_discarded": float(len(discarded)),
        })  # fmt: skip
        self._stats = stats
        return self.inner.collate_fn([self.inner._row(index) for index, _, _ in chosen])
