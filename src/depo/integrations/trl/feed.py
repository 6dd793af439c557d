"""The selection feed behind DEPO's TRL sampler: draw, decide, remember, learn. No TRL import.

`SelectionFeed` draws one generation batch ("chunk") at a time from a selection stream
(depo.selection.stream) before any reward is known (docs/method.md section 6), keeps the chunks
drawn but not yet rolled out ("in flight"), and turns the gathered rewards of a scored chunk into
`GroupOutcome`s for `selector.observe`.

The one-batch lag (docs/trl.md): chunk k+1 is drawn before chunk k is observed. So outcomes are
attributed by dataset index, never by arrival order; `select/in_flight` makes the lag visible;
and a checkpoint stores the data position from *before* the first chunk not yet rolled out, so a
resumed run redraws that prefetched chunk instead of losing its prompts.

Every process must yield the same indices: the feed runs identically on every rank, and
`broadcast` (when given) replaces each decision by the main process's, so ranks agree even if
their estimators drift apart numerically; `rank_disagreements` counts local disagreements.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from depo.errors import DepoError
from depo.selection.base import Selector, checked_select
from depo.selection.order import DataOrder
from depo.selection.stream import make_stream
from depo.types import Candidate, Decisions, GroupOutcome

logger = logging.getLogger(__name__)

STATE_VERSION = 1
HISTORY = 1024
"""Chunks `SelectionFeed.history` keeps."""


class SyncedSelector:
    """The selector as the selection stream sees it: every process takes the main process's decisions.

    Only `select` and `keeps_all` (the feed observes, saves and loads the selector itself).
    `broadcast(obj)` must return the main process's `obj` on every process (a collective: every
    rank calls it at the same point, which holds because every rank iterates the same sampler).
    """

    def __init__(self, inner: Selector, broadcast: Callable[[object], object] | None = None) -> None:
        self.inner = inner
        self.broadcast = broadcast
        self.rank_disagreements = 0

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        local = checked_select(self.inner, batch)
        if self.broadcast is None:
            return local
        mean = None if local.mean_priority is None else np.asarray(local.mean_priority, dtype=float).tolist()
        payload = (list(local.keep), list(local.explored), np.asarray(local.priority, dtype=float).tolist(), mean)
        keep, explored, priority, mean = self.broadcast(payload)  # type: ignore[misc]
        if list(keep) != list(local.keep):
            self.rank_disagreements += 1
        return Decisions(keep=list(keep), explored=list(explored), priority=np.asarray(priority, dtype=float),
                         mean_priority=None if mean is None else np.asarray(mean, dtype=float))

    @property
    def keeps_all(self) -> bool:  # the rank stream scans only a batch while the selector keeps everything
        return bool(getattr(self.inner, "keeps_all", False))


@dataclass
class _Chunk:
    """One drawn generation batch: its unique prompts, in the order the sampler yields them."""

    indices: list[int]
    explored: list[bool]
    stats: dict[str, float]
    stream_state_before: dict = field(repr=False)


class SelectionFeed:
    """Chunks of dataset indices for TRL's sampler, and the selector's learning from their rewards.

    `texts[i]` is what the estimator reads for dataset row i; `prompt_ids[i]` its stable id.
    `batch_size` is the number of distinct prompts per generation batch
    (`generation_batch_size // num_generations`); `selection` is "refill" (`max_scan` bounds the
    candidates scanned per chunk) or "rank" (`oversample` x batch_size scanned per chunk).
    """

    def __init__(
        self,
        selector: Selector,
        texts: Sequence[str],
        prompt_ids: Sequence[str],
        *,
        batch_size: int,
        group_size: int,
        seed: int,
        max_scan: int,
        broadcast: Callable[[object], object] | None = None,
        selection: str = "refill",
        oversample: float = 2.0,
    ) -> None:
        if len(texts) != len(prompt_ids):
            raise DepoError(f"{len(texts)} texts but {len(prompt_ids)} prompt ids")
        self.selector = selector
        self.texts = list(texts)
        self.prompt_ids = [str(p) for p in prompt_ids]
        self.batch_size = int(batch_size)
        self.group_size = int(group_size)
        self.synced = SyncedSelector(selector, broadcast)
        self.stream = make_stream(selection, DataOrder(len(self.texts), seed=seed), self.synced, self._candidate,
                                  self.batch_size, oversample=oversample, max_scan=max_scan)
        self._in_flight: deque[_Chunk] = deque()
        self._extra: _Chunk | None = None
        self._drawn = 0
        self.history: list[list[int]] = []
        """The indices of the last HISTORY chunks drawn by this process, in order (for checks and tests)."""
        self.rollouts = self.groups_observed = self.groups_informative = 0

    def _candidate(self, i: int) -> Candidate:
        return Candidate(prompt_id=self.prompt_ids[i], text=self.texts[i])

    # -- drawing (called by the sampler) --------------------------------------------------
    def next_chunk(self, *, in_flight: bool = True) -> list[int]:
        """Decide the next generation batch: `batch_size` dataset indices, in yield order.

        `in_flight=False`: a batch generated at once, inside the current step (dynamic sampling's
        extra rounds), so it never waits behind the dataloader's prefetched chunk."""
        before = self.stream.state_dict()
        indices, stats = self.stream.next_batch()
        chunk = _Chunk(list(indices), list(self.stream.last_explored), dict(stats), before)
        self._drawn += 1
        if in_flight:
            self._in_flight.append(chunk)
        else:
            self._extra = chunk
        self.history.append(list(indices))
        del self.history[:-HISTORY]  # bounded: a long run draws a chunk every step
        return list(indices)

    # -- learning (called after TRL scored a generation batch) ---------------------------
    def complete(
        self,
        indices: Sequence[int],
        rewards: Sequence[float],
        mean_logprobs: Sequence[float] | None = None,
    ) -> dict[str, float]:
        """Feed the selector one rolled-out generation batch; return the metrics to log.

        `indices[r]`, `rewards[r]` and `mean_logprobs[r]` describe completion r of the batch,
        gathered across processes in TRL's order: `group_size` consecutive completions per prompt.
        """
        g = self.group_size
        n = len(indices)
        if n != len(rewards) or n % g:
            raise DepoError(f"expected a multiple of {g} completions with one reward each, got {n} / {len(rewards)}")
        if mean_logprobs is not None and len(mean_logprobs) != n:
            raise DepoError(f"{len(mean_logprobs)} mean log-probs for {n} completions")
        groups = [int(indices[s]) for s in range(0, n, g)]
        if any(int(i) != groups[r // g] for r, i in enumerate(indices)):
            raise DepoError(
                "completions of one group come from different prompts; the DEPO sampler's order was changed"
            )
        chunk = self._pop_chunk(groups)
        explored = dict(zip(chunk.indices, chunk.explored)) if chunk is not None else {}
        outcomes = []
        for k, idx in enumerate(groups):
            r = slice(k * g, (k + 1) * g)
            logps = None if mean_logprobs is None else tuple(map(float, mean_logprobs[r]))
            outcomes.append(GroupOutcome(self.prompt_ids[idx], self.texts[idx], tuple(map(float, rewards[r])),
                                         logps, explored=bool(explored.get(idx, False))))
        metrics = {k: float(v) for k, v in (self.selector.observe(outcomes) or {}).items()}
        informative = sum(not o.is_zero_variance for o in outcomes)
        self.rollouts += n
        self.groups_observed += len(outcomes)
        self.groups_informative += informative
        metrics.setdefault("select/effective_rate", informative / len(outcomes))
        metrics["select/rollouts_total"] = float(self.rollouts)
        metrics["select/effective_rate_total"] = self.groups_informative / max(self.groups_observed, 1)
        metrics["select/in_flight"] = float(len(self._in_flight))
        metrics["select/rank_disagreements"] = float(self.synced.rank_disagreements)
        if chunk is not None:
            metrics.update(chunk.stats)
        return metrics

    def _pop_chunk(self, groups: list[int]) -> _Chunk | None:
        """The in-flight chunk these groups came from (the oldest, in normal operation), or the
        extra chunk drawn for this step."""
        want = sorted(groups)
        if self._extra is not None and sorted(self._extra.indices) == want:
            chunk, self._extra = self._extra, None
            return chunk
        for pos, chunk in enumerate(self._in_flight):
            if sorted(chunk.indices) == want:
                for _ in range(pos + 1):  # older chunks were never generated (e.g. skipped)
                    dropped = self._in_flight.popleft()
                if pos:
                    logger.warning("DEPO: %d drawn chunk(s) were never rolled out", pos)
                return dropped
        logger.warning("DEPO: rolled-out prompts match no drawn chunk; outcomes observed without select stats")
        return None

    # -- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Selector state now, and the data position before the first chunk not yet rolled out."""
        stream_state = self._in_flight[0].stream_state_before if self._in_flight else self.stream.state_dict()
        return {
            "version": STATE_VERSION,
            "selector": self.selector.state_dict(),
            "stream": stream_state,
            "rollouts": self.rollouts,
            "groups_observed": self.groups_observed,
            "groups_informative": self.groups_informative,
            "chunks_rolled_out": self._drawn - len(self._in_flight),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise DepoError(f"DEPO state version {state.get('version')} is not supported (expected {STATE_VERSION})")
        self.selector.load_state_dict(state["selector"])
        self.stream.load_state_dict(state["stream"])
        self.rollouts = int(state["rollouts"])
        self.groups_observed = int(state["groups_observed"])
        self.groups_informative = int(state["groups_informative"])
        self._in_flight.clear()
        self._drawn = int(state["chunks_rolled_out"])


def state_fingerprint(state: object) -> str:
    """A sha256 of a nested state (dicts, lists, numbers, strings, numpy arrays, torch tensors).

    Two processes whose selectors hold the same weights, optimizer moments and counters get the
    same fingerprint; used to check that every rank learned the same thing.
    """
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h, obj: object) -> None:  # noqa: ANN001 - hashlib object
    if isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(str(key).encode())
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for x in obj:
            _feed(h, x)
        h.update(b"]")
    elif isinstance(obj, np.ndarray):
        h.update(str(obj.dtype).encode() + str(obj.shape).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, torch.Tensor):
        arr = obj.detach().cpu().contiguous()
        h.update(str(arr.dtype).encode() + str(tuple(arr.shape)).encode())
        h.update(arr.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(obj).encode())
