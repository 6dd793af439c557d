"""Batched rollouts with a hand-written KV-cache loop.

Why hand-written rather than `model.generate`: the RL engine needs the per-token
log-probability of every sampled token under the exact distribution it was drawn from
(GRPO's importance ratio and the estimator's distill target t_q, docs/method.md section 2.1), a
deterministic stream given a `torch.Generator`, and no hidden defaults from a model's
`generation_config`. The loop is short: prefill the left-padded prompts once, then feed one
token per row per step, reusing the model's `past_key_values`.

Log-probabilities are those of the temperature-scaled distribution,
log softmax(logits / T)[token], *before* top-p truncation: this is what a trainer recomputes
from a forward pass at the same temperature (verl/TRL convention), so the ratio
pi_theta / pi_old is exactly 1 at the first optimisation step. With `top_p = 1` (the default)
it is exactly the sampling distribution. `temperature = 0` means greedy decoding; its
log-probs are then those of the untempered distribution (T = 1).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from depo.errors import DepoError
from depo.policy.loading import encode_prompts, eos_token_ids


@dataclass
class Rollouts:
    """G responses for each of N prompts, flattened prompt-major (r // G is the prompt)."""

    prompt_index: list[int]
    """len N*G; response r answers prompts[prompt_index[r]]."""
    prompt_ids: list[list[int]]
    """Token ids of each prompt as fed to the model (len N)."""
    response_ids: list[list[int]]
    """Generated ids, EOS included when generated, no padding."""
    response_text: list[str]
    """Decoded responses, EOS and other special tokens stripped."""
    logprobs: list[list[float]]
    """Per generated token: log pi_T(token), one per entry of response_ids."""
    truncated: list[bool]
    """True when the response hit max_new_tokens without EOS."""

    def __len__(self) -> int:
        return len(self.prompt_index)


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): keep the smallest set of tokens whose
    probability mass reaches top_p; the most likely token is always kept."""
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    remove_sorted = mass_before >= top_p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, sorted_idx, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def _forward_kwargs(model) -> tuple[str, dict]:
    """The KV-cache argument's name (`cache` in transformers >= 5.x, `past_key_values`
    before) and, where supported, `logits_to_keep=1` so the prefill computes only the last
    position's logits."""
    params = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    return cache_kw, extra


@torch.inference_mode()
def _sample_batch(
    model, rows: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float,
    generator: torch.Generator | None, eos_ids: set[int], pad_id: int,
) -> tuple[list[list[int]], list[list[float]], list[bool]]:
    """Sample one continuation per row (rows may differ in length; left-padded here)."""
    device = next(model.parameters()).device
    batch = len(rows)
    input_ids = pad_sequence([torch.tensor(r, dtype=torch.long) for r in rows], batch_first=True,
                             padding_value=pad_id, padding_side="left").to(device)
    attention = pad_sequence([torch.ones(len(r), dtype=torch.long) for r in rows], batch_first=True,
                             padding_side="left").to(device)
    # Positions count real tokens only, so a left-padded row sees the same positions as unpadded.
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)

    out_tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_logprobs = torch.zeros((batch, max_new_tokens), dtype=torch.float32, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)  # hit EOS

    cache_kw, extra = _forward_kwargs(model)
    past = None
    step_ids, step_pos = input_ids, positions
    for t in range(max_new_tokens):
        out = model(input_ids=step_ids, attention_mask=attention, position_ids=step_pos, use_cache=True,
                    **{cache_kw: past}, **extra)
        past = getattr(out, cache_kw)
        logits = out.logits[:, -1, :].float()
        if temperature > 0:
            logits = logits / temperature
        logp = torch.log_softmax(logits, dim=-1)
        if temperature == 0:
            token = logits.argmax(-1)
        else:
            filtered = _top_p_filter(logits, top_p) if top_p < 1.0 else logits
            probs = torch.softmax(filtered, dim=-1)
            # Sample on CPU when a CPU generator is given, so results don't depend on the device.
            if generator is not None and generator.device != probs.device:
                token = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(device)
            else:
                token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        token = token.masked_fill(done, pad_id)
        active = ~done
        out_tokens[:, t] = token
        out_logprobs[:, t] = torch.where(active, logp.gather(-1, token.unsqueeze(-1)).squeeze(-1), 0.0)
        lengths += active.long()
        done |= torch.isin(token, eos) & active
        if bool(done.all()):
            break
        step_ids = token.unsqueeze(-1)
        step_pos = step_pos[:, -1:] + 1
        attention = torch.cat([attention, torch.ones((batch, 1), dtype=attention.dtype, device=device)], dim=-1)

    lens = lengths.cpu().tolist()
    responses = [row[:n] for row, n in zip(out_tokens.cpu().tolist(), lens)]
    logprobs = [row[:n] for row, n in zip(out_logprobs.cpu().tolist(), lens)]
    return responses, logprobs, (~done).cpu().tolist()


def sample(
    model, tokenizer, prompts: Sequence[str], num_samples: int, *, max_new_tokens: int,
    temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> Rollouts:
    """Sample `num_samples` responses for each prompt (prompt-major order).

    Deterministic given `generator` (and the same batch_size and device). Rows are processed
    in chunks of `batch_size` sequences; every chunk runs until all its rows hit EOS or
    `max_new_tokens`.
    """
    if num_samples < 1:
        raise DepoError(f"num_samples must be >= 1, got {num_samples}")
    if max_new_tokens < 1:
        raise DepoError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise DepoError(f"temperature must be >= 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise DepoError(f"top_p must be in (0, 1], got {top_p}")
    if batch_size < 1:
        raise DepoError(f"batch_size must be >= 1, got {batch_size}")
    prompt_ids = encode_prompts(tokenizer, list(prompts))
    eos_ids = eos_token_ids(model, tokenizer)
    # left padding of the prompts (never attended to): EOS when the tokenizer has no pad token
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)

    prompt_index = [i for i in range(len(prompt_ids)) for _ in range(num_samples)]
    response_ids: list[list[int]] = []
    logprobs: list[list[float]] = []
    truncated: list[bool] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompt_index), batch_size):
            rows = [prompt_ids[i] for i in prompt_index[start : start + batch_size]]
            r, lp, tr = _sample_batch(model, rows, max_new_tokens=max_new_tokens, temperature=temperature,
                                      top_p=top_p, generator=generator, eos_ids=eos_ids, pad_id=pad_id)
            response_ids += r
            logprobs += lp
            truncated += tr
    finally:
        model.train(was_training)
    texts = [t.strip() for t in tokenizer.batch_decode(response_ids, skip_special_tokens=True)]
    return Rollouts(prompt_index=prompt_index, prompt_ids=prompt_ids, response_ids=response_ids,
                    response_text=texts, logprobs=logprobs, truncated=truncated)
