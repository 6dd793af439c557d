"""The embedded tiny policy: builds, caches by config hash, reloads, samples, is reproducible."""

from __future__ import annotations

import json

import pytest
import torch

from depo.errors import DepoError
from depo.policy import build_tiny_policy, load_policy, sample
from depo.policy.tiny import TinyPolicyConfig, sft_batches
from depo.policy.tokenizer import build_char_tokenizer

torch.set_num_threads(1)

SMALL = dict(sft_steps=4, sft_examples=200, sft_batch_size=8, sft_warmup_steps=2, hidden_size=32, intermediate_size=64)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path))
    return tmp_path


def test_builds_loads_and_samples(cache):
    cfg = TinyPolicyConfig(preset="mixed", **SMALL)
    path = build_tiny_policy("mixed", config=cfg, progress=False)
    assert path.parent == cache / "policies" and cfg.key() in path.name
    info = json.loads((path / "depo_tiny.json").read_text())
    assert info["config"]["sft_steps"] == 4 and info["parameters"] > 0
    model, tok = load_policy(path)
    assert model.config.model_type == "qwen2"
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    # The reloaded tokenizer must be the char tokenizer it was trained with (not a Qwen2 BPE).
    assert tok("sum 3 + 4")["input_ids"] == build_char_tokenizer()("sum 3 + 4")["input_ids"]
    ro = sample(model, tok, ["gcd 14, 7", "rev cat"], 2, max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    assert len(ro.response_ids) == 4
    assert not list((cache / "policies").glob(".*tmp*"))  # no half-written directory left


def test_cached_by_config_and_reproducible(cache):
    cfg = TinyPolicyConfig(preset="mixed", **SMALL)
    first = build_tiny_policy("mixed", config=cfg, progress=False)
    stamp = (first / "depo_tiny.json").stat().st_mtime_ns
    assert build_tiny_policy("mixed", config=cfg, progress=False) == first
    assert (first / "depo_tiny.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    weights = {k: v.clone() for k, v in load_policy(first)[0].state_dict().items()}
    again = build_tiny_policy("mixed", config=cfg, progress=False, force=True)
    assert again == first
    rebuilt = load_policy(again)[0].state_dict()
    assert all(torch.allclose(weights[k], rebuilt[k], atol=1e-5) for k in weights)  # fixed step count
    other = build_tiny_policy("mixed", config=TinyPolicyConfig(preset="mixed", **{**SMALL, "sft_steps": 5}), progress=False)
    assert other != first


def test_sft_labels_cover_answer_and_eos_only():
    tok = build_char_tokenizer()
    ids, labels = sft_batches(tok, ["gcd 4, 6", "rev ab"], ["2", "ba"])
    first = ids[0].tolist()
    sep = first.index(tok.sep_token_id)
    assert tok.decode(first[:sep]) == "gcd 4, 6"
    assert labels[0].tolist()[: sep + 1] == [-100] * (sep + 1)
    supervised = [x for x in labels[1].tolist() if x != -100]
    assert tok.decode(supervised[:-1]) == "ba" and supervised[-1] == tok.eos_token_id


def test_bad_preset_and_mismatched_config(cache):
    with pytest.raises(DepoError, match="unknown task preset"):
        build_tiny_policy("nope")
    with pytest.raises(DepoError, match="does not match"):
        build_tiny_policy("easy", config=TinyPolicyConfig(preset="mixed", **SMALL))


def test_load_policy_rejects_non_model_dir(tmp_path):
    with pytest.raises(DepoError, match="config.json"):
        load_policy(tmp_path)
