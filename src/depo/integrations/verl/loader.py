"""A drop-in for verl's train dataloader whose batches are chosen by a selector before the rollout.

`RayPPOTrainer.fit` only iterates `self.train_dataloader`, asks its `len()` (steps per epoch)
and saves/loads its `state_dict()`. `SelectedBatches` offers exactly that, drawing each batch
from the stream `depo.selection` the settings ask for (refill by default, or keep-by-rank) when
verl asks for it, i.e. after the previous step's `observe`: the
selector's update takes effect on the very next batch (docs/method.md section 2.1, step 4 then step 1).

A verl "epoch" keeps its length, len(dataset) // train_batch_size steps, while the stream may
scan more than one pass of prompts in it (docs/verl.md, "What happens in a step").
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from depo.integrations.verl.prompts import ID_KEY, PromptTable
from depo.integrations.verl.settings import DepoSettings
from depo.selection.base import Selector
from depo.selection.order import DataOrder


class EpochBatches:
    """What `fit()` iterates: `len()` batches per verl epoch, each from `next_batch()`, counted in
    `_yielded` so a checkpoint taken mid-epoch resumes at the next batch."""

    _yielded: int = 0
    last_stats: dict[str, float]

    def next_batch(self) -> dict:
        raise NotImplementedError

    def pop_stats(self) -> dict[str, float]:
        """The select/* stats of the step's batch, once (they go with the step's observe)."""
        stats, self.last_stats = self.last_stats, {}
        return stats

    def __iter__(self) -> Iterator[dict]:
        if self._yielded >= len(self):
            self._yielded = 0
        while self._yielded < len(self):
            batch = self.next_batch()
            self._yielded += 1  # counted before the yield: a checkpoint saved during this step includes it
            yield batch


class SelectedBatches(EpochBatches):
    """Iterable of collated verl batches of `batch_size` selected prompts; `len()` steps per epoch."""

    def __init__(
        self,
        dataset: Any,
        collate_fn: Callable[[list[dict]], dict],
        selector: Selector,
        table: PromptTable,
        *,
        batch_size: int,
        seed: int,
        settings: DepoSettings,
    ) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.selector = selector
        self.table = table
        self.batch_size = int(batch_size)
        self.stream = settings.stream(DataOrder(len(table), seed=seed), selector, table.candidate, self.batch_size)
        self.last_stats: dict[str, float] = {}
        self.last_explored: dict[str, bool] = {}
        self.last_indices: list[int] = []

    def __len__(self) -> int:
        return len(self.table) // self.batch_size

    def _row(self, index: int) -> dict:
        row = dict(self.dataset[index])
        info = row.get("extra_info")
        row["extra_info"] = dict(copy.deepcopy(info)) if isinstance(info, dict) else {}
        row["extra_info"][ID_KEY] = self.table.ids[index]
        return row

    def next_batch(self) -> dict:
        """Draw, score and collate the next step's prompts; stats wait in `last_stats` for observe."""
        indices, stats = self.stream.next_batch()
        self.last_indices = indices
        self.last_stats = stats
        self.last_explored = {self.table.ids[i]: bool(e) for i, e in zip(indices, self.stream.last_explored)}
        return self.collate_fn([self._row(i) for i in indices])

    def state_dict(self) -> dict:
        return {"stream": self.stream.state_dict(), "yielded": self._yielded}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])
        self._yielded = int(state["yielded"])
