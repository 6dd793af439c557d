"""The estimator's feature caches: an LRU with a byte budget, and frozen vectors kept on disk."""

from __future__ import annotations

import os

import torch

from depo.estimator.encoder import TextEncoder
from depo.estimator.features import FeatureCache, FrozenVectors, _encoder_tag, text_key


def vector(text: str) -> torch.Tensor:
    return torch.full((256,), float(len(text)))  # 1 KiB each


def test_the_cache_keeps_the_most_recent_within_its_budget():
    cache, computed = FeatureCache(max_mb=3 / 1024), []  # room for three vectors
    compute = lambda miss: computed.extend(miss) or [vector(t) for t in miss]  # noqa: E731
    cache.lookup(["a", "bb", "ccc", "dddd"], compute)
    cache.lookup(["bb", "dddd"], compute)  # still there: no computation
    assert computed == ["a", "bb", "ccc", "dddd"] and cache.stats()["estimator/cache_entries"] == 3
    cache.lookup(["a"], compute)  # evicted first, computed again
    assert computed[-1] == "a" and cache.hits == 2


def test_warming_a_pool_larger_than_the_budget_saves_every_vector(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path))
    texts = [f"prompt {i}" for i in range(1200)]  # three encoding chunks; the cache holds 10 vectors
    frozen = FrozenVectors(FeatureCache(max_mb=10 / 1024), "tag", lambda miss: [vector(t) for t in miss])
    assert frozen.warm(texts) == {"loaded": 0.0, "encoded": 1200.0}
    blob = torch.load(frozen.file, weights_only=True)
    assert blob["keys"] == [text_key(t) for t in texts] and torch.equal(blob["vectors"][0], vector(texts[0]))
    again = FrozenVectors(FeatureCache(max_mb=None), "tag", lambda miss: [torch.zeros(256) for _ in miss])
    assert again.warm(texts) == {"loaded": 1200.0, "encoded": 0.0}  # read back from disk, nothing recomputed


def test_an_encoder_saved_again_in_place_gets_new_vectors(tiny_bert_dir, tmp_path):
    import shutil

    path = shutil.copytree(tiny_bert_dir, tmp_path / "encoder")
    tag = _encoder_tag(TextEncoder(str(path), max_length=16), "mean")
    weights = next(path.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten: same name, other time
    assert _encoder_tag(TextEncoder(str(path), max_length=16), "mean") != tag
