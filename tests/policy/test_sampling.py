"""Rollout sampling on a randomly initialised tiny Qwen2: shapes, EOS, log-probs, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from depo.errors import DepoError
from depo.policy import encode_prompts, sample
from depo.policy.sampling import _top_p_filter
from depo.policy.tokenizer import build_char_tokenizer

torch.set_num_threads(1)

PROMPTS = ["gcd 14, 7", "add 3 + 4 + 5", "rev cat", "x"]


@pytest.fixture(scope="module")
def policy():
    from depo.policy.tiny import TinyPolicyConfig, make_model

    tok = build_char_tokenizer()
    torch.manual_seed(0)
    config = TinyPolicyConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=128)
    model = make_model(config, tok).eval()
    return model, tok


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_and_eos_invariants(policy):
    model, tok = policy
    ro = sample(model, tok, PROMPTS, 16, max_new_tokens=40, temperature=5.0, generator=_gen(1), batch_size=24)
    n = len(PROMPTS) * 16
    assert ro.prompt_index == [i for i in range(len(PROMPTS)) for _ in range(16)]
    assert len(ro.response_ids) == len(ro.logprobs) == len(ro.truncated) == len(ro.response_text) == n
    assert ro.prompt_ids == encode_prompts(tok, PROMPTS)
    eos = tok.eos_token_id
    n_eos = 0
    for ids, lps, trunc in zip(ro.response_ids, ro.logprobs, ro.truncated):
        assert len(ids) == len(lps) >= 1
        assert all(lp <= 0.0 for lp in lps)
        assert eos not in ids[:-1]  # generation stops at the first EOS
        if trunc:
            assert len(ids) == 40 and ids[-1] != eos
        else:
            assert ids[-1] == eos
            n_eos += 1
    # At T=5 the random model is close to uniform over ~99 tokens: both outcomes occur.
    assert 0 < n_eos < n
    for ids, text in zip(ro.response_ids, ro.response_text):
        assert text == tok.decode(ids, skip_special_tokens=True).strip()
        assert "<eos>" not in text


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_match_full_forward(policy, temperature):
    model, tok = policy
    ro = sample(model, tok, PROMPTS, 3, max_new_tokens=12, temperature=temperature, generator=_gen(2), batch_size=5)
    for r, (ids, lps) in enumerate(zip(ro.response_ids, ro.logprobs)):
        prompt = ro.prompt_ids[ro.prompt_index[r]]
        full = torch.tensor([prompt + ids])
        with torch.no_grad():
            logits = model(full).logits[0].float() / temperature
        logp = torch.log_softmax(logits, -1)
        expect = [logp[len(prompt) - 1 + t, tok_id].item() for t, tok_id in enumerate(ids)]
        assert lps == pytest.approx(expect, abs=1e-4)


def test_deterministic_given_generator(policy):
    model, tok = policy
    a = sample(model, tok, PROMPTS, 4, max_new_tokens=10, generator=_gen(3))
    b = sample(model, tok, PROMPTS, 4, max_new_tokens=10, generator=_gen(3))
    c = sample(model, tok, PROMPTS, 4, max_new_tokens=10, generator=_gen(4))
    assert a.response_ids == b.response_ids and a.logprobs == b.logprobs
    assert a.response_ids != c.response_ids


def test_greedy_matches_hf_generate_with_left_padding(policy):
    model, tok = policy
    ro = sample(model, tok, PROMPTS, 1, max_new_tokens=8, temperature=0.0, batch_size=len(PROMPTS))
    for i, ids in enumerate(encode_prompts(tok, PROMPTS)):
        ref = model.generate(
            torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )[0, len(ids):].tolist()
        assert ro.response_ids[i] == ref
    # Greedy log-probs are those of the untempered distribution: the argmax token's log-prob.
    assert all(math.isfinite(lp) for lps in ro.logprobs for lp in lps)


def test_top_p_filter_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_top_p_filter(logits, 0.6))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(_top_p_filter(logits, 0.01)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(_top_p_filter(logits, 1.0 - 1e-9)).all()


def test_tiny_top_p_is_greedy(policy):
    model, tok = policy
    greedy = sample(model, tok, PROMPTS, 1, max_new_tokens=6, temperature=0.0)
    nucleus = sample(model, tok, PROMPTS, 1, max_new_tokens=6, temperature=1.0, top_p=1e-6, generator=_gen(5))
    assert nucleus.response_ids == greedy.response_ids


def test_bad_arguments_raise_depo_error(policy):
    model, tok = policy
    with pytest.raises(DepoError):
        sample(model, tok, PROMPTS, 0, max_new_tokens=4)
    with pytest.raises(DepoError):
        sample(model, tok, PROMPTS, 2, max_new_tokens=4, top_p=0.0)
