"""Shared pieces of the TRL integration tests: a tiny random Qwen2 policy, a toy dataset, a
reward with mixed groups, and a small *learning* selector (weights + Adam state, decisions that
depend on what it learned) so that cross-process agreement and checkpoint restore are tested on
state that actually changes. Also runnable as the per-rank script of the 2-process test.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from depo.types import Candidate, Decisions, GroupOutcome


def build_tiny_model(path: Path) -> Path:
    """A randomly initialised 1-layer Qwen2 with the project's character tokenizer, saved to `path`."""
    from depo.policy.tiny import TinyPolicyConfig, make_model
    from depo.policy.tokenizer import build_char_tokenizer

    if (path / "config.json").is_file():
        return path
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    config = TinyPolicyConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    make_model(config, tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def toy_dataset(n: int = 48):
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [f"{i}+{i % 7}" for i in range(n)], "answer": [str(i + i % 7) for i in range(n)]})


def parity_reward(completions, **kwargs):
    """1 when the completion's first character has an odd code: a random policy gets mixed groups."""
    return [float(bool(c) and ord(c[0]) % 2 == 1) for c in completions]


class LearnedHash:
    """Logistic regression on 64 hashed character features, one Adam step per observe.

    Keeps a prompt iff its predicted pass rate is in [lo, hi]; the window starts as everything
    (untrained predictions are 0.5) and narrows as the weights move, so later decisions depend on
    the outcomes observed.
    """

    def __init__(self, lo: float = 0.47, hi: float = 0.53, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.zeros(64, requires_grad=True)
        self.b = torch.zeros((), requires_grad=True)
        with torch.no_grad():
            self.w.add_(0.01 * torch.randn(64, generator=g))
        self.opt = torch.optim.Adam([self.w, self.b], lr=0.3)
        self.lo, self.hi = lo, hi
        self.observed: list[str] = []
        self.logprob_groups = 0

    @staticmethod
    def features(texts: Sequence[str]) -> torch.Tensor:
        x = torch.zeros(len(texts), 64)
        for r, t in enumerate(texts):
            for ch in t:
                x[r, zlib.crc32(ch.encode()) % 64] += 1.0
        return x

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(self.features(texts) @ self.w + self.b).numpy()

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        p = self.predict([c.text for c in batch])
        keep = [bool(self.lo <= x <= self.hi) for x in p]
        return Decisions(keep=keep, explored=[False] * len(keep), priority=-np.abs(p - 0.5))


    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        y = torch.tensor([o.mean_reward for o in outcomes], dtype=torch.float32)
        logit = self.features([o.text for o in outcomes]) @ self.w + self.b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.observed.extend(o.prompt_id for o in outcomes)
        self.logprob_groups += sum(o.mean_logprobs is not None for o in outcomes)
        return {"estimator/loss": float(loss.detach()), "estimator/updates": float(len(self.observed))}

    def state_dict(self) -> dict:
        return {
            "w": self.w.detach().clone(),
            "b": self.b.detach().clone(),
            "opt": self.opt.state_dict(),
            "observed": list(self.observed),
            "logprob_groups": self.logprob_groups,
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])
            self.b.copy_(state["b"])
        self.opt.load_state_dict(state["opt"])
        self.observed = list(state["observed"])
        self.logprob_groups = int(state["logprob_groups"])


def grpo_args(output_dir: Path, **overrides):
    from trl import GRPOConfig

    kwargs = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=4,
        max_steps=4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        learning_rate=1e-3,
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def two_rank_main(model_dir: str, out_dir: str, dynamic: bool = False) -> None:
    """Per-rank body of the 2-process test: train a few steps, write what this rank saw.
    `dynamic`: with dynamic sampling, and prompts with even ids always rewarded 1 (zero-variance)."""
    torch.set_num_threads(1)
    from depo.integrations.trl import DEPOGRPOTrainer, state_fingerprint

    selector = LearnedHash()
    local_indices: list[int] = []

    def recording_reward(completions, depo_index, **kwargs):
        local_indices.extend(int(i) for i in depo_index)
        parity = parity_reward(completions)
        return [1.0 if dynamic and int(i) % 2 == 0 else r for i, r in zip(depo_index, parity)]

    # per device 4 completions x 2 processes = 2 prompts of 4 completions per generation batch
    args = grpo_args(Path(out_dir) / "run", per_device_train_batch_size=4, max_steps=5)
    trainer = DEPOGRPOTrainer(
        model=model_dir,
        reward_funcs=recording_reward,
        args=args,
        train_dataset=toy_dataset(),
        selector=selector,
        logprobs="always",
        dynamic_sampling=dynamic,
        max_num_gen_batches=4,
    )
    rank = trainer.accelerator.process_index
    if rank == 1:
        # A wider keep window than rank 0's: rank 1's own decisions differ, yet it must yield
        # rank 0's (broadcast). The window is not part of the state, so learned states must match.
        selector.lo, selector.hi = 0.0, 1.0
    trainer.train()
    record = {
        "rank": rank,
        "world": trainer.accelerator.num_processes,
        "history": trainer.depo_feed.history,
        "observed": selector.observed,
        "local_indices": local_indices,
        "logprob_groups": selector.logprob_groups,
        "fingerprint": state_fingerprint(selector.state_dict()),
        "stream_fingerprint": state_fingerprint(trainer.depo_feed.stream.state_dict()),
        "disagreements": trainer.depo_feed.synced.rank_disagreements,
        "frac_reward_zero_std": [h["frac_reward_zero_std"] for h in trainer.state.log_history if "frac_reward_zero_std" in h],
        "ds_rounds": [h["select/ds_rounds"] for h in trainer.state.log_history if "select/ds_rounds" in h],
        "global_step": trainer.state.global_step,
    }
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    two_rank_main(sys.argv[1], sys.argv[2], dynamic=sys.argv[3:] == ["dynamic"])
