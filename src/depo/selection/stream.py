"""The refill stream: draw candidates until the step's batch is full, never stalling.

DEPO's loop (docs/method.md section 2.1, step 2) keeps drawing and scoring candidates until the batch is
full and logs the survival rate = kept / scanned. Post-rollout dynamic sampling (DAPO) crashes
or loops when the data is too hard or too easy (docs/method.md section 5); this stream instead bounds the candidates scanned per step (`max_scan`) and, when the
bound is hit, fills the rest of the batch with the best-ranked rejected prompts (by the
selector's `priority`), logged as `select/forced`.

Candidates are scored in chunks (one estimator forward per chunk, sized from the last step's
survival rate). Decided-but-unused candidates of the last chunk are kept, with their decisions,
for the next step, and are part of `state_dict`: a resumed run reproduces the same sequence.
Each candidate is counted once, when it is consumed, in the epoch it was drawn from.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from depo.errors import DepoError
from depo.selection.base import Selector, checked_select
from depo.selection.order import DataOrder
from depo.types import Candidate


@dataclass
class EpochCounts:
    """Per-epoch accounting. Invariants: kept + skipped == scanned; explored <= kept."""

    scanned: int = 0
    kept: int = 0
    skipped: int = 0
    explored: int = 0
    forced: int = 0

    @property
    def survival_rate(self) -> float:
        return self.kept / self.scanned if self.scanned else float("nan")


@dataclass
class _Entry:
    index: int
    epoch: int
    keep: bool
    explored: bool
    priority: float


class RefillStream:
    """Yields, step after step, the dataset indices to roll out.

    `candidate(i)` turns dataset index i into a `Candidate` (stable id + estimator text).
    `max_scan` bounds the candidates scanned per step (>= batch_size). `max_chunk` bounds one
    scoring call (default: max_scan).

    After `next_batch()`, `last_explored[j]` / `last_forced[j]` tell whether returned index j
    was kept only by exploration / forced in by the scan bound; a trainer copies the first into
    `GroupOutcome.explored`. Counted prompts: `scanned` = consumed decisions, `kept` = accepted
    by the selector (explored included), `skipped` = rejected (forced ones included), `forced`
    = rejected but rolled out because the bound was hit. So a batch is kept + forced prompts.
    """

    def __init__(
        self,
        order: DataOrder,
        selector: Selector,
        candidate: Callable[[int], Candidate],
        batch_size: int,
        max_scan: int,
        *,
        max_chunk: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise DepoError(f"batch size must be >= 1, got {batch_size}")
        if max_scan < batch_size:
            raise DepoError(f"max_scan ({max_scan}) must be >= the batch size ({batch_size})")
        if order.n < batch_size:
            raise DepoError(
                f"the training set has {order.n} prompts, fewer than one batch ({batch_size}); "
                "use more prompts or a smaller batch"
            )
        self.order = order
        self.selector = selector
        self.candidate = candidate
        self.batch_size = int(batch_size)
        self.max_scan = int(max_scan)
        self.max_chunk = int(max_chunk) if max_chunk else self.max_scan
        if self.max_chunk < 1:
            raise DepoError(f"max_chunk must be >= 1, got {max_chunk}")
        self._pending: deque[_Entry] = deque()
        self._rate = 1.0  # survival rate of the last step, sizes the next chunk
        self.epochs: dict[int, EpochCounts] = {}
        self.total = EpochCounts()
        self.steps = 0
        self.last_explored: list[bool] = []
        self.last_forced: list[bool] = []

    # -- drawing ---------------------------------------------------------------------------
    def _chunk_size(self, need: int, budget: int) -> int:
        """Enough candidates to fill `need` at the last survival rate, within the scan budget."""
        want = math.ceil(need / max(self._rate, 0.05))
        return max(1, min(budget, self.max_chunk, max(need, want)))

    def _draw(self, k: int) -> float:
        indices, epochs = [], []
        for _ in range(k):
            indices.append(self.order.next())
            epochs.append(self.order.epoch)
        batch = [self.candidate(i) for i in indices]
        t0 = time.perf_counter()
        d = checked_select(self.selector, batch)
        elapsed = time.perf_counter() - t0
        for i, e, keep, explored, prio in zip(indices, epochs, d.keep, d.explored, np.asarray(d.priority, float)):
            self._pending.append(_Entry(int(i), int(e), bool(keep), bool(explored), float(prio)))
        return elapsed

    # -- one step --------------------------------------------------------------------------
    def next_batch(self) -> tuple[list[int], dict[str, float]]:
        """The indices to roll out this step (exactly batch_size) and the step's select/* stats."""
        kept: list[_Entry] = []
        rejected: list[_Entry] = []
        step = EpochCounts()
        select_s = 0.0
        last_epoch = self.order.epoch
        while len(kept) < self.batch_size and step.scanned < self.max_scan:
            if not self._pending:
                need = self.batch_size - len(kept)
                select_s += self._draw(self._chunk_size(need, self.max_scan - step.scanned))
            entry = self._pending.popleft()
            last_epoch = entry.epoch
            counts = self.epochs.setdefault(entry.epoch, EpochCounts())
            for c in (step, counts, self.total):
                c.scanned += 1
                if entry.keep:
                    c.kept += 1
                    c.explored += int(entry.explored)
                else:
                    c.skipped += 1
            (kept if entry.keep else rejected).append(entry)

        forced: list[_Entry] = []
        if len(kept) < self.batch_size:
            # Scan bound hit: best-ranked rejected first (stable sort keeps scan order on ties).
            ranked = sorted(rejected, key=lambda e: -e.priority)
            forced = ranked[: self.batch_size - len(kept)]
            for e in forced:
                for c in (step, self.epochs[e.epoch], self.total):
                    c.forced += 1
        if step.scanned:
            self._rate = min(1.0, max(step.kept / step.scanned, 0.05))
        self.steps += 1

        chosen = kept + forced
        self.last_explored = [e.explored for e in kept] + [False] * len(forced)
        self.last_forced = [False] * len(kept) + [True] * len(forced)
        epoch_counts = self.epochs.get(last_epoch, EpochCounts())
        stats = {
            "select/scanned": float(step.scanned),
            "select/kept": float(step.kept),
            "select/skipped": float(step.skipped),
            "select/explored": float(step.explored),
            "select/forced": float(step.forced),
            "select/survival_rate": step.survival_rate,
            "select/pending": float(len(self._pending)),
            "select/epoch": float(last_epoch),
            "select/epoch_scanned": float(epoch_counts.scanned),
            "select/epoch_kept": float(epoch_counts.kept),
            "select/epoch_skipped": float(epoch_counts.skipped),
            "select/epoch_explored": float(epoch_counts.explored),
            "select/epoch_forced": float(epoch_counts.forced),
            "select/epoch_survival_rate": epoch_counts.survival_rate,
            "select/total_scanned": float(self.total.scanned),
            "select/total_skipped": float(self.total.skipped),
            "time/select_s": select_s,
        }
        return [e.index for e in chosen], stats

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Data position, decided-but-unused candidates and accounting (not the selector's state:
        the trainer saves the selector beside it)."""
        return {
            "order": self.order.state_dict(),
            "pending": [asdict(e) for e in self._pending],
            "rate": self._rate,
            "epochs": {int(k): asdict(v) for k, v in self.epochs.items()},
            "total": asdict(self.total),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.order.load_state_dict(state["order"])
        self._pending = deque(_Entry(**e) for e in state["pending"])
        self._rate = float(state["rate"])
        self.epochs = {int(k): EpochCounts(**v) for k, v in state["epochs"].items()}
        self.total = EpochCounts(**state["total"])
        self.steps = int(state["steps"])
