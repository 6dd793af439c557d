"""Load any Hugging Face causal LM directory and turn prompts into the ids it expects.

Chat models (tokenizer has a chat template) read the prompt as one user message followed by
the assistant generation prompt; the tiny policy (no chat template) reads the raw prompt,
to which its tokenizer's post-processor appends the separator token it was trained with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from depo.errors import DepoError, describe_exception

PLAIN_FAST_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")
"""tokenizer_class values of a tokenizer saved as a bare `tokenizers` object (the tiny policy's
char tokenizer): AutoTokenizer would ignore them and rebuild the model type's tokenizer
(Qwen2Tokenizer for the tiny Qwen2 policy), whose pre-tokenizer splits spaces differently."""


def _is_plain_fast_tokenizer(path: Path) -> bool:
    """True for the tiny policy (its marker file) and for any directory whose tokenizer was saved
    as a plain fast tokenizer, e.g. a training checkpoint of the tiny policy, which has no marker."""
    if (path / "depo_tiny.json").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("tokenizer_class") in PLAIN_FAST_TOKENIZERS


def load_policy(path: str | Path, device: str = "cpu"):
    """(model, tokenizer) from a local HF directory; no hub access (local_files_only)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise DepoError(f"not a Hugging Face model directory (no config.json): {path}")
    try:
        tokenizer_class = PreTrainedTokenizerFast if _is_plain_fast_tokenizer(path) else AutoTokenizer
        tokenizer = tokenizer_class.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers/safetensors raise OSError, ValueError, TypeError, SafetensorError...
        raise DepoError(f"cannot load policy from {path}: {describe_exception(exc)}") from exc
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids per prompt: chat template for chat models, raw (+ special tokens) otherwise."""
    if getattr(tokenizer, "chat_template", None):
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True) for p in prompts]
        return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    ids = [list(x) for x in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    if any(len(x) == 0 for x in ids):
        raise DepoError("a prompt encodes to zero tokens; the policy needs at least one")
    return ids


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a response: the tokenizer's EOS and the model's generation config EOS."""
    ids: set[int] = set()
    candidates = [tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)]
    for c in candidates:
        if c is not None:
            ids.update(c if isinstance(c, list | tuple) else [c])
    if not ids:
        raise DepoError("the tokenizer defines no EOS token; responses could never stop")
    return ids
