"""`DEPOCurriculumSampler`: DEPO for verl 0.7.x through its curriculum-sampler hook.

verl 0.7 builds the train sampler from `data.sampler.class_path` / `class_name` (which requires
`data.dataloader_num_workers=0`) and calls `sampler.update(batch)` after every step
(docs/method.md section 6). This sampler yields, batch by batch, the indices a selection stream
picks; with no worker processes the dataloader asks for the next batch's indices only after
`update`, so each estimator update acts on the next batch. Config: docs/verl.md, "verl 0.7.x"
(verl 0.7 passes only `config.data` to a sampler, so DEPO's block lives under `data.depo`).

Rows are matched to prompts by `extra_info.index` when the dataset has distinct ones (verl's
preprocessing scripts write it); otherwise by a fingerprint of the row's `extra_info` and
`reward_model`, which verl keeps in the batch. Select/* and estimator/* metrics are kept in
`last_metrics` and printed; verl 0.7 offers the sampler no way into its tracker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
from verl.experimental.dataset.sampler import AbstractCurriculumSampler

from depo.errors import DepoError
from depo.integrations.verl.outcomes import group_outcome, mean_logprobs, pass_rate_rewards, rows_by_uid
from depo.integrations.verl.prompts import PromptTable
from depo.integrations.verl.settings import DepoSettings, as_mapping, build_selector
from depo.selection.order import DataOrder

log = logging.getLogger(__name__)
DEFAULT_GROUP_SIZE = 8


def row_fingerprint(extra_info: Any, reward_model: Any) -> str:
    """What identifies a row in a verl batch when the dataset has no distinct extra_info.index."""
    return json.dumps([extra_info, reward_model], sort_keys=True, default=str)


class DEPOCurriculumSampler(AbstractCurriculumSampler):
    """verl 0.7 curriculum sampler driven by a DEPO `Selector` (see module doc)."""

    def __init__(self, data_source: Sized, data_config: Any, *, selector: Any = None) -> None:
        block = as_mapping(data_config.get("depo", None))
        group_size = block.pop("group_size", None)
        if group_size is None:  # verl 0.7 hands the sampler no rollout.n of its own
            log.warning("data.depo.group_size is not set: DEPO assumes %d responses per prompt; set it to "
                        "actor_rollout_ref.rollout.n (+data.depo.group_size=${actor_rollout_ref.rollout.n})",
                        DEFAULT_GROUP_SIZE)
            group_size = DEFAULT_GROUP_SIZE
        self.group_size = int(group_size)
        self.settings = DepoSettings.from_config(block)
        self.batch_size = int(data_config.get("gen_batch_size", None) or data_config.train_batch_size)
        seed = self.settings.data_seed(data_config)
        self.dataset = data_source
        self.table = PromptTable.from_dataset(data_source, prompt_key=data_config.get("prompt_key", "prompt"))
        self.selector = selector or build_selector(self.settings, group_size=self.group_size, seed=seed)
        self.stream = self.settings.stream(DataOrder(len(self.table), seed=seed), self.selector,
                                           self.table.candidate, self.batch_size)
        self._keys = self._row_keys()
        self._yielded = 0
        self._pending: list[int] = []  # indices of the batch being yielded
        self._last: list[int] = []  # indices of the last complete batch, awaiting update()
        self._last_explored: list[bool] = []
        self.last_metrics: dict[str, float] = {}

    def _row_keys(self) -> list[str]:
        if all(pid.startswith("i:") for pid in self.table.ids):
            return list(self.table.ids)
        frame = getattr(self.dataset, "dataframe", None)
        rows = frame if frame is not None else [self.dataset[i] for i in range(len(self.table))]
        return [row_fingerprint(r.get("extra_info"), r.get("reward_model")) for r in rows]

    def _batch_key(self, extra_info: Any, reward_model: Any) -> str:
        if isinstance(extra_info, dict) and self._keys and self._keys[0].startswith("i:") and "index" in extra_info:
            return f"i:{extra_info['index']}"
        return row_fingerprint(extra_info, reward_model)

    def __len__(self) -> int:
        return (len(self.table) // self.batch_size) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        if self._yielded >= len(self):
            self._yielded = 0
        while self._yielded < len(self):
            if not self._pending:
                indices, stats = self.stream.next_batch()
                self._last, self._last_explored = list(indices), list(self.stream.last_explored)
                self._pending = list(indices)
                self.last_metrics = dict(stats)
            self._yielded += 1
            yield self._pending.pop(0)

    def update(self, batch: Any) -> None:
        """Group the step's responses by uid, match them to the last batch's prompts, observe."""
        extra = batch.non_tensor_batch.get("extra_info")
        rm = batch.non_tensor_batch.get("reward_model")
        rewards = pass_rate_rewards(batch, self.settings.reward_key)
        logps = mean_logprobs(batch)
        slots: dict[str, list[int]] = {}
        for j, i in enumerate(self._last):
            slots.setdefault(self._keys[i], []).append(j)
        outcomes = []
        for rows in rows_by_uid(np.asarray(batch.non_tensor_batch["uid"])).values():
            r0 = rows[0]
            key = self._batch_key(extra[r0] if extra is not None else None, rm[r0] if rm is not None else None)
            if not slots.get(key):
                raise DepoError("a response group matches no prompt of the last selected batch (was it drawn by DEPO?)")
            j = slots[key].pop(0)
            i = self._last[j]
            outcomes.append(group_outcome(self.table.ids[i], self.table.texts[i], rows, rewards, logps,
                                          self._last_explored[j]))
        learned = {k: float(v) for k, v in (self.selector.observe(outcomes) or {}).items()}
        self.last_metrics = {**self.last_metrics, **learned}
        print("[depo] " + " ".join(f"{k}={v:.4g}" for k, v in sorted(self.last_metrics.items())))

    def state_dict(self) -> dict:
        """Selector (estimator included) and stream: saved by verl's StatefulDataLoader in data.pt."""
        return {
            "selector": self.selector.state_dict(),
            "stream": self.stream.state_dict(),
            "yielded": self._yielded,
            "pending": list(self._pending),
            "last": list(self._last),
            "last_explored": list(self._last_explored),
        }

    def load_state_dict(self, state: dict) -> None:
        self.selector.load_state_dict(state["selector"])
        self.stream.load_state_dict(state["stream"])
        self._yielded = int(state["yielded"])
        self._pending = list(state["pending"])
        self._last = list(state["last"])
        self._last_explored = list(state["last_explored"])
