"""Fixtures shared by the tests: a tiny *random* Qwen2 policy and toy tasks (no warm start), a tiny
random BERT encoder (any local encoder).

The toy verifier rewards a response whose first character has an even code point, so a random
policy gets about half its responses right and most groups are informative.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from depo.tasks.base import Task

TINY_ARGS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_policy_dir(tmp_path_factory) -> str:
    from depo.policy.tiny import TinyPolicyConfig, make_model
    from depo.policy.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    model = make_model(TinyPolicyConfig(**TINY_ARGS), tokenizer)
    path = tmp_path_factory.mktemp("random_policy")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def even_first_char(response: str, answer: str) -> float:
    return float(bool(response) and ord(response[0]) % 2 == 0)


def make_toy_tasks(n: int, prefix: str = "t", verifier: Callable[[str, str], float] = even_first_char) -> list[Task]:
    return [
        Task(prompt_id=f"{prefix}{i}", prompt=f"q {i}", answer=str(i), verifier=verifier, meta={"task": "toy"})
        for i in range(n)
    ]


@pytest.fixture
def toy_tasks() -> Callable[..., list[Task]]:
    return make_toy_tasks


@pytest.fixture
def tiny_overrides(random_policy_dir, tmp_path) -> Callable[..., list[str]]:
    """`--set` overrides for a fast run of the random policy into tmp_path/name."""

    def make(name: str = "run", **extra) -> list[str]:
        values = {
            "model": random_policy_dir,
            "batch_size": 4,
            "num_generations": 4,
            "max_steps": 3,
            "max_completion_length": 4,
            "eval_steps": 0,
            "eval_k": 2,
            "learning_rate": 1e-3,
            "save_steps": 0,
            "progress": False,
            "output_dir": str(tmp_path / name),
        }
        values.update(extra)
        return [f"{k}={v}" for k, v in values.items()]

    return make


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random 2-layer BertModel (hidden 32) saved with the MiniLM tokenizer: 'any local encoder'."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from depo.estimator.encoder import default_encoder_path

    path = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(default_encoder_path())
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
