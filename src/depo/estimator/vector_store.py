"""A disk cache of frozen-encoder vectors, so each prompt is encoded once per machine.

With `freeze_encoder=True` the estimator keeps each prompt's pooled encoder vector in memory,
keyed by a hash of the text (`depo.estimator.online.text_key`). Encoding is the whole cost of a
frozen-encoder benchmark (7,500 MATH problems take minutes on a shared 2-core CPU; the trunk
trains in seconds), so the benchmarks, and training runs with `estimator_precompute: true`,
persist that in-memory cache under `cache_dir()/embeddings/`, one file per (encoder, pooling,
max_length). Like tokenising a dataset, it is work done once per dataset, not per step.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from depo.paths import cache_dir


def cache_file(estimator) -> Path:
    """The cache file of this estimator's encoder, pooling and max length."""
    enc = estimator.encoder
    weights = sorted(p.name for p in Path(enc.path).glob("*.safetensors")) or sorted(
        p.name for p in Path(enc.path).iterdir()
    )
    ident = f"{Path(enc.path).resolve()}|{weights}|{enc.pooling}|{enc.max_length}"
    digest = hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()
    return cache_dir() / "embeddings" / f"{Path(enc.path).name}-{enc.pooling}-{enc.max_length}-{digest}.pt"


def warm_estimator_cache(
    estimator, texts: Sequence[str], *, use_disk: bool = True, progress: bool = False
) -> dict[str, float]:
    """Fill a frozen estimator's vector cache for `texts`: from disk where known, else encode and save.

    Returns counts (`loaded`, `encoded`). A no-op for an estimator whose encoder trains.
    """
    from depo.estimator.cache import text_key

    if estimator.feature_mode != "pooled":
        return {"loaded": 0.0, "encoded": 0.0}
    texts = list(dict.fromkeys(texts))
    path = cache_file(estimator)
    stored: dict[str, torch.Tensor] = {}
    if use_disk and path.is_file():
        blob = torch.load(path, weights_only=True)
        stored = dict(zip(blob["keys"], blob["vectors"]))
    known = [t for t in texts if text_key(t) in stored]
    if known:  # through the cache's own lookup: `compute` hands back the stored vectors
        estimator.cache.lookup(known, lambda miss: [stored[text_key(t)] for t in miss])
    missing = [t for t in texts if text_key(t) not in stored]
    if missing:  # encodes and caches the pooled vectors, in chunks so a bar can show progress
        from tqdm.auto import tqdm

        chunk = 512
        for start in tqdm(range(0, len(missing), chunk), desc="estimator: encoding prompts", unit="chunk",
                          disable=not progress, leave=False):
            estimator.predict(missing[start : start + chunk])
    if use_disk and missing:
        def unexpected(miss: list[str]) -> list[torch.Tensor]:
            raise RuntimeError(f"{len(miss)} vectors fell out of the estimator cache (raise cache_max_mb)")

        vectors = estimator.cache.lookup(missing, unexpected)
        stored.update({text_key(t): v for t, v in zip(missing, vectors)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent runs never share a half-written file
        torch.save({"keys": list(stored), "vectors": torch.stack(list(stored.values()))}, tmp)
        tmp.replace(path)
    return {"loaded": float(len(known)), "encoded": float(len(missing))}


def cached_vectors(estimator, texts: Sequence[str]) -> torch.Tensor:
    """The pooled vectors of `texts` from a frozen estimator's cache (warm it first)."""

    def unexpected(miss: list[str]) -> list[torch.Tensor]:
        raise RuntimeError(f"{len(miss)} texts are not in the estimator cache: call warm_estimator_cache first")

    return torch.stack(estimator.cache.lookup(list(texts), unexpected))
