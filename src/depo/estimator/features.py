"""What the estimator's trunk reads: pooled encoder vectors, and the caches that make them cheap.

Three feature modes, from the config (docs/method.md section 2.2):
- "pooled": the encoder is frozen, so a prompt's pooled vector never changes: computed once, kept
  in an in-memory LRU cache keyed by a hash of the text, and optionally on disk (`FrozenVectors`);
- "lower": only the top n encoder layers train, so the frozen lower layers' hidden states are
  cached and each forward runs only the top n layers;
- "none": the whole encoder trains (the paper), nothing is cacheable.
In RL the same prompts come back every epoch and every prompt is predicted before it is trained
on, which is why caching pays.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from depo.estimator.config import EstimatorConfig
from depo.estimator.encoder import TextEncoder
from depo.paths import cache_dir


def text_key(text: str) -> str:
    """Cache key of a prompt: a 128-bit hash of its text (stable across processes, unlike hash())."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class FeatureCache:
    """LRU map text -> tensor with a byte budget and hit/miss counters."""

    def __init__(self, max_mb: float | None):
        self.max_bytes = None if max_mb is None else int(max_mb * 2**20)
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.bytes = self.hits = self.misses = 0

    def lookup(self, texts: Sequence[str], compute: Callable[[list[str]], list[torch.Tensor]]) -> list[torch.Tensor]:
        """The cached tensor of every text; `compute` is called once on the distinct missing texts."""
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key in self._entries:
                self._entries.move_to_end(key)
            else:
                missing.setdefault(key, text)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)  # a repeat of a missing text is computed once: a hit
        values = compute(list(missing.values())) if missing else []
        fresh = {key: value.detach().cpu() for key, value in zip(missing, values)}
        out = [fresh[k] if k in fresh else self._entries[k] for k in keys]
        for key, value in fresh.items():
            self._entries[key] = value
            self.bytes += value.nbytes
        while self.max_bytes is not None and self.bytes > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.nbytes
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


class EncoderFeatures:
    """Pooled encoder vectors for the trunk, computed in the cheapest way the training mode allows."""

    def __init__(self, encoder: TextEncoder, config: EstimatorConfig, device: torch.device) -> None:
        self.encoder = encoder
        self.config = config
        self.device = device
        self.cache = FeatureCache(config.cache_max_mb)
        self.frozen = FrozenVectors(
            self.cache, _encoder_tag(encoder, encoder.pooling), lambda miss: list(self._batched(miss, self._encode_full))
        )

    def warm_cache(self, texts: Sequence[str], *, use_disk: bool = True, progress: bool = False) -> dict[str, float]:
        """Fill the vector cache for `texts` from disk or by encoding (a no-op unless the encoder is frozen)."""
        if self.mode != "pooled":
            return {"loaded": 0.0, "encoded": 0.0}
        return self.frozen.warm(texts, use_disk=use_disk, progress=progress)

    def cached(self, texts: Sequence[str]) -> torch.Tensor:
        """The pooled vectors of `texts` from the in-memory cache (warm it first)."""
        return self.frozen.cached(texts)

    @property
    def mode(self) -> str:
        """What the cache holds: "pooled", "lower" or "none" (see the module doc)."""
        cfg = self.config
        if cfg.freeze_encoder or cfg.train_top_layers == 0:
            return "pooled"
        if cfg.train_top_layers is not None and cfg.cache_lower_layers:
            return "lower"
        return "none"

    def pooled(self, texts: Sequence[str], *, train: bool) -> torch.Tensor:
        """(n, hidden) pooled vectors; with `train` (and a trainable encoder) they carry gradients."""
        texts = list(texts)
        if self.mode == "pooled":
            return self.frozen.get(texts).to(self.device)
        fn = self._encode_from_lower if self.mode == "lower" else self._encode_full
        return self._batched(texts, fn, train=train)

    def _batched(self, texts: Sequence[str], fn: Callable[[list[str]], torch.Tensor], *, train: bool = False) -> torch.Tensor:
        """fn over length-sorted chunks (far less padding than one batch), results in input order.

        Eval mode without gradients for prediction; with `train` the chunks keep their graphs
        (one backward later covers them all, so the ranking loss still sees every pair).
        """
        was_training = self.encoder.training
        self.encoder.train(train)
        try:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            bs = self.config.predict_batch_size
            with torch.set_grad_enabled(train and torch.is_grad_enabled()):
                parts = [fn([texts[i] for i in order[s : s + bs]]).float() for s in range(0, len(order), bs)]
        finally:
            self.encoder.train(was_training)
        inverse = torch.argsort(torch.tensor(order))  # each text's place in the sorted order
        return torch.cat(parts)[inverse.to(self.device)]

    def _encode_full(self, texts: list[str]) -> torch.Tensor:
        return self.encoder.encode(texts, self.device)

    def _compute_lower(self, texts: list[str]) -> list[torch.Tensor]:
        """Per text, the frozen lower layers' hidden states at its real (non-padding) tokens."""
        out: list[torch.Tensor] = []
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                bs = self.config.predict_batch_size
                for start in range(0, len(texts), bs):
                    batch = self.encoder.tokenize(texts[start : start + bs])
                    mask = batch["attention_mask"].to(self.device)
                    states = self.encoder.lower_states(batch["input_ids"].to(self.device), mask)
                    out.extend(states[b][mask[b].bool()] for b in range(states.shape[0]))
        finally:
            self.encoder.train(was_training)
        return out

    def _encode_from_lower(self, texts: list[str]) -> torch.Tensor:
        """Pooled vectors running only the top n layers on cached lower-layer states."""
        cached = self.cache.lookup(texts, self._compute_lower)
        batch = self.encoder.tokenize(texts)
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        states = torch.zeros(*ids.shape, self.encoder.hidden_size, device=self.device, dtype=cached[0].dtype)
        for b, value in enumerate(cached):
            states[b, mask[b].bool()] = value.to(self.device)
        return self.encoder.forward_from_lower(ids, mask, states)


def _encoder_tag(encoder: TextEncoder, what: str) -> str:
    """Names a frozen encoder's vectors: its weight files (name, size, modification time, so an
    encoder saved again in place gets new vectors), what is computed from them, and max_length."""
    path = Path(encoder.path)
    files = sorted(path.glob("*.safetensors")) or sorted(p for p in path.iterdir() if p.is_file())
    weights = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    ident = f"{path.resolve()}|{weights}|{what}|{encoder.max_length}"
    digest = hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()
    return f"{path.name}-{what}-{encoder.max_length}-{digest}"


class FrozenVectors:
    """One vector per text from a frozen encoder: computed once, kept in a FeatureCache, and
    optionally on disk under `cache_dir()/embeddings/TAG.pt`, so each prompt is encoded once per
    machine (like tokenising a dataset: work done per dataset, not per step)."""

    def __init__(self, cache: FeatureCache, tag: str, compute: Callable[[list[str]], list[torch.Tensor]]) -> None:
        self.cache = cache
        self.tag = tag
        self.compute = compute

    @property
    def file(self) -> Path:
        return cache_dir() / "embeddings" / f"{self.tag}.pt"

    def get(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, d) vectors of `texts`, computing the missing ones."""
        return torch.stack(self.cache.lookup(list(texts), self.compute))

    def warm(self, texts: Sequence[str], *, use_disk: bool = True, progress: bool = False) -> dict[str, float]:
        """Fill the cache for `texts`: from disk where known, else compute (and save). Counts loaded / encoded."""
        texts = list(dict.fromkeys(texts))
        stored: dict[str, torch.Tensor] = {}
        if use_disk and self.file.is_file():
            blob = torch.load(self.file, weights_only=True)
            stored = dict(zip(blob["keys"], blob["vectors"]))
        known = [t for t in texts if text_key(t) in stored]
        # through the cache's own lookup: `compute` hands back the stored vectors
        self.cache.lookup(known, lambda miss: [stored[text_key(t)] for t in miss])
        missing = [t for t in texts if text_key(t) not in stored]
        chunk = 512
        for start in tqdm(range(0, len(missing), chunk), desc="estimator: encoding prompts", unit="chunk",
                          disable=not progress or not missing, leave=False):
            part = missing[start : start + chunk]
            vectors = self.get(part)  # kept here: a pool larger than the cache's budget evicts early chunks
            if use_disk:
                stored.update(zip(map(text_key, part), vectors))
        if use_disk and missing:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(f".{os.getpid()}.tmp")  # concurrent runs never share a half-written file
            torch.save({"keys": list(stored), "vectors": torch.stack(list(stored.values()))}, tmp)
            tmp.replace(self.file)
        return {"loaded": float(len(known)), "encoded": float(len(missing))}

    def cached(self, texts: Sequence[str]) -> torch.Tensor:
        """The vectors of `texts` from the in-memory cache only (warm it first)."""

        def unexpected(miss: list[str]) -> list[torch.Tensor]:
            raise RuntimeError(f"{len(miss)} texts are not in the estimator cache: call warm_cache first (or raise cache_max_mb)")

        return torch.stack(self.cache.lookup(list(texts), unexpected))
