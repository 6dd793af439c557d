"""Streams of prompts to roll out, step after step: keep by rank, or threshold and refill.

Both read the data in a seeded reshuffled order (`DataOrder`), ask the `Selector` about
candidates before any rollout, and return exactly `batch_size` dataset indices per step with the
step's `select/*` statistics:

- `RankStream` (keep by rank, docs/method.md section 4.9): the batch_size candidates of highest
  priority out of ceil(oversample * batch_size) scanned; during the selector's warm-up only
  batch_size are scanned, all kept.
- `RefillStream` (the paper's loop, section 2.1): keep what the selector keeps and draw more until
  the batch is full, scanning at most `max_scan` candidates a step (unbounded, DAPO's dynamic
  sampling crashes or loops: section 5); at the bound the best-ranked rejected prompts fill the
  batch (`select/forced`). Chunks are sized from the last step's survival rate; decided-but-unused
  candidates wait, with their decisions, for the next step (and are part of `state_dict`).

Counting, per step, per epoch and in total: scanned = kept + skipped; explored <= kept; a batch is
kept + forced prompts. Each candidate is counted once, in the epoch it was drawn from. After
`next_batch()`, `last_explored[j]` / `last_forced[j]` say whether returned index j was kept only by
exploration / forced in; a trainer copies the first into `GroupOutcome.explored`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from depo.errors import DepoError
from depo.selection.base import Selector, checked_select, explored_by_rank, top_mask
from depo.selection.order import DataOrder
from depo.types import Candidate, Decisions


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

    def add(self, kept: bool, explored: bool) -> None:
        self.scanned += 1
        self.kept += int(kept)
        self.skipped += int(not kept)
        self.explored += int(explored)


class _Stream:
    """What both streams share: the data order, the selector, the accounting and its state."""

    def __init__(self, order: DataOrder, selector: Selector, candidate: Callable[[int], Candidate], batch_size: int) -> None:
        if batch_size < 1:
            raise DepoError(f"batch size must be >= 1, got {batch_size}")
        if order.n < batch_size:
            raise DepoError(
                f"the training set has {order.n} prompts, fewer than one batch ({batch_size}); "
                "use more prompts or a smaller batch"
            )
        self.order = order
        self.selector = selector
        self.candidate = candidate
        self.batch_size = int(batch_size)
        self.epochs: dict[int, EpochCounts] = {}
        self.total = EpochCounts()
        self.steps = 0
        self.last_explored: list[bool] = []
        self.last_forced: list[bool] = []

    def _select(self, k: int) -> tuple[list[int], list[int], Decisions, float]:
        """Draw `k` candidates and ask the selector about them: indices, epochs, decisions, seconds."""
        indices, epochs = [], []
        for _ in range(k):
            indices.append(self.order.next())
            epochs.append(self.order.epoch)
        start = time.perf_counter()
        d = checked_select(self.selector, [self.candidate(i) for i in indices])
        return indices, epochs, d, time.perf_counter() - start

    def _count(self, step: EpochCounts, epoch: int, kept: bool, explored: bool) -> None:
        for counts in (step, self.epochs.setdefault(epoch, EpochCounts()), self.total):
            counts.add(kept, explored)

    def _stats(self, step: EpochCounts, last_epoch: int, select_s: float, pending: int) -> dict[str, float]:
        epoch = self.epochs.get(last_epoch, EpochCounts())
        return {
            **{f"select/{key}": float(value) for key, value in asdict(step).items()},  # scanned ... forced
            "select/survival_rate": step.survival_rate,
            "select/pending": float(pending),
            "select/epoch": float(last_epoch),
            **{f"select/epoch_{key}": float(value) for key, value in asdict(epoch).items()},
            "select/epoch_survival_rate": epoch.survival_rate,
            "select/total_scanned": float(self.total.scanned),
            "select/total_skipped": float(self.total.skipped),
            "time/select_s": select_s,
        }

    def state_dict(self) -> dict:
        """Data position and accounting (not the selector's state: the trainer saves it beside)."""
        return {
            "order": self.order.state_dict(),
            "epochs": {int(k): asdict(v) for k, v in self.epochs.items()},
            "total": asdict(self.total),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.order.load_state_dict(state["order"])
        self.epochs = {int(k): EpochCounts(**v) for k, v in state["epochs"].items()}
        self.total = EpochCounts(**state["total"])
        self.steps = int(state["steps"])


class RankStream(_Stream):
    """Keep by rank: the batch_size best of ceil(oversample * batch_size) scanned candidates."""

    def __init__(self, order: DataOrder, selector: Selector, candidate: Callable[[int], Candidate], batch_size: int,
                 oversample: float) -> None:
        super().__init__(order, selector, candidate, batch_size)
        if not oversample >= 1.0:
            raise DepoError(f"oversample must be >= 1 (the pool is oversample x batch_size), got {oversample}")
        self.oversample = float(oversample)
        self.last_scanned: list[tuple[int, float, bool]] = []
        """(dataset index, priority, kept) of every candidate of the last step (for probes)."""

    def next_batch(self) -> tuple[list[int], dict[str, float]]:
        warm = bool(getattr(self.selector, "keeps_all", False))
        n = self.batch_size if warm else max(self.batch_size, math.ceil(self.oversample * self.batch_size))
        indices, epochs, d, select_s = self._select(n)
        prio = np.asarray(d.priority, dtype=float)
        kept = np.ones(n, dtype=bool) if warm else top_mask(prio, self.batch_size)
        explored = np.zeros(n, dtype=bool)
        if d.mean_priority is not None and not warm:
            explored = explored_by_rank(kept, d.mean_priority, self.batch_size)
        step = EpochCounts()
        for i in range(n):
            self._count(step, epochs[i], bool(kept[i]), bool(explored[i]))
        chosen = np.flatnonzero(kept)  # in scan order
        self.last_explored = [bool(explored[i]) for i in chosen]
        self.last_forced = [False] * len(chosen)
        self.last_scanned = [(int(indices[i]), float(prio[i]), bool(kept[i])) for i in range(n)]
        self.steps += 1
        return [int(indices[i]) for i in chosen], self._stats(step, epochs[-1], select_s, pending=0)


@dataclass
class _Entry:
    index: int
    epoch: int
    keep: bool
    explored: bool
    priority: float


class RefillStream(_Stream):
    """Threshold and refill: keep what the selector keeps, draw until the batch is full (module doc).

    `max_scan` bounds the candidates scanned per step (>= batch_size); `max_chunk` bounds one
    scoring call (default: max_scan).
    """

    def __init__(self, order: DataOrder, selector: Selector, candidate: Callable[[int], Candidate], batch_size: int,
                 max_scan: int, *, max_chunk: int | None = None) -> None:
        super().__init__(order, selector, candidate, batch_size)
        if max_scan < batch_size:
            raise DepoError(f"max_scan ({max_scan}) must be >= the batch size ({batch_size})")
        self.max_scan = int(max_scan)
        self.max_chunk = int(max_chunk) if max_chunk else self.max_scan
        if self.max_chunk < 1:
            raise DepoError(f"max_chunk must be >= 1, got {max_chunk}")
        self._pending: deque[_Entry] = deque()
        self._rate = 1.0  # survival rate of the last step, sizes the next chunk

    def _chunk_size(self, need: int, budget: int) -> int:
        """Enough candidates to fill `need` at the last survival rate, within the scan budget."""
        want = math.ceil(need / max(self._rate, 0.05))
        return max(1, min(budget, self.max_chunk, max(need, want)))

    def _decide(self, k: int) -> float:
        indices, epochs, d, elapsed = self._select(k)
        for i, e, keep, explored, prio in zip(indices, epochs, d.keep, d.explored, np.asarray(d.priority, float)):
            self._pending.append(_Entry(int(i), int(e), bool(keep), bool(explored), float(prio)))
        return elapsed

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
                select_s += self._decide(self._chunk_size(need, self.max_scan - step.scanned))
            entry = self._pending.popleft()
            last_epoch = entry.epoch
            self._count(step, entry.epoch, entry.keep, entry.keep and entry.explored)
            (kept if entry.keep else rejected).append(entry)
        # Scan bound hit (batch not full): best-ranked rejected first (stable sort: scan order on ties).
        forced = sorted(rejected, key=lambda e: -e.priority)[: self.batch_size - len(kept)]
        for e in forced:
            for counts in (step, self.epochs[e.epoch], self.total):
                counts.forced += 1
        if step.scanned:
            self._rate = min(1.0, max(step.kept / step.scanned, 0.05))
        self.steps += 1
        chosen = kept + forced
        self.last_explored = [e.explored for e in kept] + [False] * len(forced)
        self.last_forced = [False] * len(kept) + [True] * len(forced)
        return [e.index for e in chosen], self._stats(step, last_epoch, select_s, pending=len(self._pending))

    def state_dict(self) -> dict:
        """Data position, decided-but-unused candidates and accounting."""
        return {**super().state_dict(), "pending": [asdict(e) for e in self._pending], "rate": self._rate}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._pending = deque(_Entry(**e) for e in state["pending"])
        self._rate = float(state["rate"])


def make_stream(kind: str, order: DataOrder, selector: Selector, candidate: Callable[[int], Candidate], batch_size: int,
                *, oversample: float = 2.0, max_scan: int | None = None, max_chunk: int | None = None) -> RankStream | RefillStream:
    """The stream a trainer asked for: "rank" (keep by rank) or "refill" (threshold and refill)."""
    if kind == "rank":
        return RankStream(order, selector, candidate, batch_size, oversample)
    if kind == "refill":
        return RefillStream(order, selector, candidate, batch_size, max_scan or 8 * batch_size, max_chunk=max_chunk)
    raise DepoError(f"selection stream must be 'rank' or 'refill', got {kind!r}")
