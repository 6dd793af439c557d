"""Per-prompt feature cache for the frozen part of the encoder, keyed by a hash of the prompt text.

In RL the same prompts come back every epoch and every prompt is predicted before it is trained
on, so when (part of) the encoder is frozen its output for a text never changes and can be
computed once. Entries live on the CPU; the least recently used are dropped beyond a byte budget.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch


def text_key(text: str) -> str:
    """Cache key of a prompt: a 128-bit hash of its text (stable across processes, unlike hash())."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class FeatureCache:
    """LRU map text -> tensor with a byte budget and hit/miss counters."""

    def __init__(self, max_bytes: int | None):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, texts: Sequence[str], compute: Callable[[list[str]], list[torch.Tensor]]) -> list[torch.Tensor]:
        """The cached tensor of every text; `compute` is called once on the distinct missing texts."""
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key in self._entries:
                self.hits += 1
                self._entries.move_to_end(key)
            elif key in missing:
                self.hits += 1
            else:
                self.misses += 1
                missing[key] = text
        fresh: dict[str, torch.Tensor] = {}
        if missing:
            values = compute(list(missing.values()))
            fresh = {key: value.detach().cpu() for key, value in zip(missing, values)}
        out = [fresh[k] if k in fresh else self._entries[k] for k in keys]
        for key, value in fresh.items():
            self._entries[key] = value
            self.bytes += value.numel() * value.element_size()
        while self.max_bytes is not None and self.bytes > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
        return out

    def reset_counts(self) -> None:
        """Zero the hit/miss counters (e.g. after filling the cache up front, so the hit rate
        describes the steps that follow)."""
        self.hits = self.misses = 0

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def stats(self) -> dict[str, float]:
        total = self.hits + self.misses
        return {
            "estimator/cache_entries": float(len(self._entries)),
            "estimator/cache_mb": self.bytes / 2**20,
            "estimator/cache_hit_rate": self.hits / total if total else 0.0,
        }
