"""DAPO's dynamic sampling fed by DEPO's selection, inside verl's own `fit()` (docs/method.md section 6).

How it works and what it logs: docs/verl.md, "DEPO with DAPO's dynamic sampling".
verl 0.9's `fit()` rolls out exactly the batch its dataloader yields, so the loop runs in the
dataloader, without copying `fit()`: `DynamicSampledBatches` rolls out rounds of DEPO-selected
prompts through the trainer's rollout manager (built as `fit()` builds them) until the batch
holds informative groups or `max_rounds` are spent, then tops it up with zero-variance groups
instead of failing; `ReplayRollout` answers `fit()`'s rollout request for those prompts from
what was generated; the groups left out reach the step's observe (`pop_discarded`).
Rewards come from the rollout (`rm_scores`); a colocated reward model scores too late and is refused.
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
        self.table = inner.table
        self.last_stats: dict[str, float] = {}
        self.last_explored: dict[str, bool] = {}
        self._discarded: list[GroupOutcome] = []

    # what fit() and RayDEPOTrainer use of a train dataloader
    def __len__(self) -> int:
        return len(self.inner)

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
        groups: list[tuple[int, DataProto, GroupOutcome]] = []
        stats: dict[str, float] = {}
        self.last_explored = explored = {}  # prompt id -> explored, over the step's rounds
        rounds = rollouts = informative = 0
        start = time.perf_counter()
        while informative < batch_size and rounds < self.max_rounds:
            batch_dict = self.inner.next_batch()
            indices = list(self.inner.last_indices)
            explored.update(self.inner.last_explored)
            for key, value in self.inner.pop_stats().items():
                stats[key] = stats.get(key, 0.0) + value if key in ADDITIVE else value
            out = self._generate(batch_dict)
            rounds += 1
            rollouts += len(out)
            self.rollout.reward_extra_keys = list(out.meta_info.get("reward_extra_keys", []))
            out.batch["token_level_scores"] = out.batch["rm_scores"]
            outcomes, _ = group_outcomes(out, self.table.text_of, explored, reward_key=self.reward_key)
            out.pop(batch_keys=["token_level_scores"])
            for k, (index, outcome) in enumerate(zip(indices, outcomes, strict=True)):
                rows = out.slice(k * n, (k + 1) * n)
                rows.meta_info = {}
                groups.append((index, rows, outcome))
                informative += not outcome.is_zero_variance
        # Informative groups first, then zero-variance ones (never fail: they top up a short batch);
        # the rest, informative ones past a full batch too (DAPO drops these), only reach observe.
        groups.sort(key=lambda group: group[2].is_zero_variance)
        chosen, self._discarded = groups[:batch_size], [outcome for *_, outcome in groups[batch_size:]]
        informative = min(informative, batch_size)
        self.rollout.pending = [(outcome.prompt_id, rows) for _, rows, outcome in chosen]
        self.rollout.timing = {"depo/dynamic_sampling_gen_s": time.perf_counter() - start}
        if stats.get("select/scanned"):
            stats["select/survival_rate"] = stats["select/kept"] / stats["select/scanned"]
        stats.update({
            "select/ds_rounds": float(rounds), "select/ds_rollouts": float(rollouts),
            "select/ds_informative": float(informative), "select/ds_unfilled": float(batch_size - informative),
            "select/ds_discarded": float(len(self._discarded)),
        })  # fmt: skip
        self.last_stats = stats
        return self.inner.collate_fn([self.inner._row(index) for index, *_ in chosen])
