"""The embedded default policy: a tiny Qwen2 warm-started by SFT on a task preset.

Why: RL must start from a policy that solves some prompts and not others, on a
2-core CPU, with no hub downloads. A ~0.8M-parameter Qwen2 (d=128, 2 layers) with a
character-level tokenizer (`depo.policy.tokenizer`) learns the compact prompts of
`depo.tasks.gym` in a few minutes of supervised fine-tuning on reference answers.

The warm start is deliberately short (a fixed number of optimizer steps, so the result does
not depend on machine speed): medium prompts must stay partly solved, so that GRPO has
something to learn on held-out prompts.

The result is an ordinary HF directory (`load_policy` reads it), cached under
`cache_dir()/policies/<hash of the config>`; concurrent builders take a file lock and the
directory appears by an atomic rename, so no process ever sees a half-written policy.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from depo.errors import DepoError
from depo.paths import cache_dir
from depo.policy.tokenizer import build_char_tokenizer
from depo.tasks.gym import preset_components, preset_tasks

BUILD_VERSION = 1
"""Bump when the build procedure changes, so stale cached policies are not reused."""
SFT_SEED = 1000
"""Train-split seed of the SFT corpus: a stream disjoint from the RL pool (seed 0)."""


@dataclass(frozen=True)
class TinyPolicyConfig:
    """Everything that determines the built policy (its hash names the cache directory)."""

    preset: str = "mixed"
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 64
    sft_examples: int = 30000
    """Size of the SFT corpus (train split, seed SFT_SEED)."""
    sft_steps: int = 2000
    sft_batch_size: int = 64
    sft_lr: float = 2e-3
    sft_warmup_steps: int = 100
    sft_weight_decay: float = 0.01
    seed: int = 0

    def key(self) -> str:
        """Stable hash of the config, the build version and the task mixture."""
        payload = {
            "version": BUILD_VERSION,
            "config": dataclasses.asdict(self),
            "components": [dataclasses.asdict(c) for c in preset_components(self.preset)],
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def build_tiny_policy(preset: str = "mixed", *, force: bool = False, config: TinyPolicyConfig | None = None,
                      progress: bool = True, num_threads: int = 1) -> Path:
    """Path of the cached warm-started tiny policy for `preset`, building it when absent.

    `config` overrides the defaults (tests use a tiny `sft_steps`); its `preset` must match.
    `force=True` rebuilds even when a cached copy exists. One thread by default: on a CPU
    shared with other processes, two OpenMP threads spin-wait on each other and a step was
    measured 25x slower than with one.
    """
    preset_components(preset)  # validates the name
    config = config or TinyPolicyConfig(preset=preset)
    if config.preset != preset:
        raise DepoError(f"config.preset {config.preset!r} does not match preset {preset!r}")
    root = cache_dir() / "policies"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"tiny-{preset}-{config.key()}"
    if final.is_dir() and not force:
        return final
    with open(root / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if final.is_dir() and not force:
            return final  # another process built it while we waited
        tmp = root / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _build(config, tmp, progress=progress, num_threads=num_threads)
        if final.is_dir():
            shutil.rmtree(final)
        os.rename(tmp, final)
    return final


def make_model(config: TinyPolicyConfig, tokenizer):
    """A randomly initialised tiny Qwen2 (tied embeddings) for `tokenizer`: the tiny policy
    before its warm start, and the test suite's stand-in policy (with a smaller config)."""
    special = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads, tie_word_embeddings=True, bos_token_id=None,
        max_position_embeddings=config.max_position_embeddings, **special,
    ))
    model.generation_config = GenerationConfig(**special, max_new_tokens=16)
    return model


def sft_batches(tokenizer, prompts: list[str], answers: list[str]):
    """Right-padded (input_ids, labels) tensors for `prompt <sep> answer <eos>`; the loss
    covers the answer and EOS only (labels -100 on the prompt and padding)."""
    prompt_ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    answer_ids = tokenizer(answers, add_special_tokens=False)["input_ids"]
    rows = [p + a + [tokenizer.eos_token_id] for p, a in zip(prompt_ids, answer_ids)]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, rows)):
        input_ids[i, : len(r)] = torch.tensor(r)
        labels[i, len(p) : len(r)] = torch.tensor(r[len(p) :])
    return input_ids, labels


def sft_train(model, tokenizer, config: TinyPolicyConfig, *, progress: bool = True) -> list[float]:
    """Supervised warm start: `config.sft_steps` AdamW steps on random batches of the
    preset's SFT corpus. Linear warm-up then a constant learning rate, so a build with k
    steps is exactly the first k steps of a longer one (calibration picks k from one run).
    Returns the losses."""
    tasks = preset_tasks(config.preset, "train", config.sft_examples, seed=SFT_SEED)
    input_ids, labels = sft_batches(tokenizer, [t.prompt for t in tasks], [t.answer for t in tasks])
    if input_ids.shape[1] > config.max_position_embeddings:
        raise DepoError(f"SFT sequences ({input_ids.shape[1]} tokens) exceed max_position_embeddings")
    attention = input_ids != tokenizer.pad_token_id  # <pad> never occurs in real text

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.sft_lr, betas=(0.9, 0.98),
                                  weight_decay=config.sft_weight_decay)
    warmup = config.sft_warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    losses: list[float] = []
    bar = tqdm(range(config.sft_steps), desc=f"warm start ({config.preset})", disable=not progress)
    for step in bar:
        idx = torch.randint(0, input_ids.shape[0], (config.sft_batch_size,), generator=gen)
        batch_ids, batch_labels, batch_mask = input_ids[idx], labels[idx], attention[idx]
        width = int(batch_mask.sum(1).max())
        result = model(input_ids=batch_ids[:, :width], attention_mask=batch_mask[:, :width].long(),
                       labels=batch_labels[:, :width])
        optimizer.zero_grad(set_to_none=True)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(result.loss.detach()))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return losses


def _build(config: TinyPolicyConfig, out: Path, *, progress: bool, num_threads: int) -> None:
    start = time.time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        tokenizer = build_char_tokenizer()
        torch.manual_seed(config.seed)
        model = make_model(config, tokenizer)
        losses = sft_train(model, tokenizer, config, progress=progress)
        out.mkdir(parents=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        info = {
            "config": dataclasses.asdict(config),
            "key": config.key(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
            "build_seconds": round(time.time() - start, 1),
        }
        (out / "depo_tiny.json").write_text(json.dumps(info, indent=2) + "\n")
    finally:
        torch.set_num_threads(old_threads)
