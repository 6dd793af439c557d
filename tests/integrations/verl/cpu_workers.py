"""CPU stand-ins for the GPU-bound parts of verl 0.9's `RayPPOTrainer.fit()`.

verl cannot train on a CPU as shipped: its platform layer knows GPU/NPU devices only, its FSDP
engine is registered for cuda/npu, and every rollout backend is vLLM, SGLang or TensorRT-LLM.
So a CPU run replaces exactly three objects that `init_workers()` would build, and keeps the
rest of `fit()` verl's own (dataloader, uid and repeat, reward extraction, GRPO advantages,
metrics, tracking, checkpoints):

- `ActorWorkers` for `trainer.actor_rollout_wg`: `compute_log_prob` and `update_actor` on a
  Hugging Face causal LM, taking and returning verl's no-padding TensorDicts; the update uses
  verl's own policy loss (`get_policy_loss_fn`, the config's loss mode, clip ratios and
  aggregation); `save_checkpoint`/`load_checkpoint` write the weights and optimizer state.
- `HFRollout` for `trainer.async_rollout_manager`: `generate_sequences` by `generate()` on the
  rollout's own copy of the policy, filling what the agent loop's output holds (prompts,
  responses, masks, position ids, `rm_scores` on the last response token, timing).
- `WeightSync` for `trainer.checkpoint_manager`: `update_weights` copies the actor's weights
  into the rollout's copy, as verl's checkpoint engine does between the two worker groups.

Generation and the update draw from generators seeded by the global step, so a run resumed
from a checkpoint samples what the uninterrupted run sampled.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_model, save_model
from verl import DataProto
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.py_functional import rename_dict

from depo.policy.loading import encode_prompts
from depo.policy.tiny import TinyPolicyConfig, build_tiny_policy
from depo.tasks.gym import exact_match, preset_tasks


def _sequences(data) -> list[torch.Tensor]:
    """The token ids of each row (prompt and response, no padding): from the nested input ids of
    a no-padding TensorDict, or from a padded batch and its attention mask."""
    ids = data["input_ids"]
    if ids.is_nested:
        return list(ids.unbind())
    return [row[mask.bool()] for row, mask in zip(ids, data["attention_mask"], strict=True)]


def _token_logprobs(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position t: log p(ids[t+1] | ids[:t+1]) and the entropy there (0 at the last position):
    the flat layout verl's `no_padding_2_padding` slices responses from."""
    logits = model(input_ids=ids.unsqueeze(0)).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp[:-1].gather(-1, ids[1:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)[:-1]
    zero = torch.zeros(1)
    return torch.cat([chosen, zero]), torch.cat([entropy, zero])


def _response_values(model, data, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(rows), R) log-probs and entropies of the response tokens of `rows` (default all),
    zero past each response."""
    prompts, mask = data["prompts"], data["attention_mask"]
    width = data["responses"].shape[1]
    sequences = _sequences(data)
    logps, entropies = [], []
    for i in range(len(sequences)) if rows is None else [int(r) for r in rows]:
        ids = sequences[i]
        prompt_len = int(mask[i, : prompts.shape[1]].sum())
        flat, entropy = _token_logprobs(model, ids)
        for values, out in ((flat, logps), (entropy, entropies)):
            resp = values[prompt_len - 1 : len(ids) - 1]
            out.append(torch.nn.functional.pad(resp, (0, width - len(resp))))
    return torch.stack(logps), torch.stack(entropies)


class ActorWorkers:
    """The actor worker group on one CPU process (verl's `actor_rollout_wg` interface).

    Both of verl's worker APIs: the engine workers' no-padding TensorDicts (verl 0.9, and 0.7 with
    `use_legacy_worker_impl=disable`) and the legacy workers' padded DataProto (verl 0.7's default).
    """

    world_size = 1

    def __init__(self, model, actor_config, group_size: int = 1):
        self._dispatch_info = {"actor": [0]}  # one data-parallel rank (verl's balance_batch reads it)
        self.model = model
        self.group_size = group_size
        self.config = omega_conf_to_dataclass(actor_config)
        self.config.global_batch_info.update(dp_size=1, batch_num_tokens=None, global_batch_size=None, loss_scale_factor=None)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=float(actor_config.optim.lr), weight_decay=0.0)
        self.loss_fn = get_policy_loss_fn(self.config.policy_loss.get("loss_mode", "vanilla"))
        self.updates = 0

    def compute_log_prob(self, data):
        if isinstance(data, DataProto):  # legacy workers: padded (B, R) old log-probs and entropies
            with torch.no_grad():
                logp, entropy = _response_values(self.model, data.batch)
            return DataProto.from_dict(tensors={"old_log_probs": logp, "entropys": entropy})
        with torch.no_grad():
            pairs = [_token_logprobs(self.model, ids) for ids in _sequences(data)]
        out = {"log_probs": torch.cat([p[0] for p in pairs]), "entropy": torch.cat([p[1] for p in pairs])}
        return tu.get_tensordict(out, non_tensor_dict={"metrics": {"mfu": 0.0}})

    def update_actor(self, data):
        """verl's PPO update: mini-batches of rows, verl's policy loss on each."""
        if isinstance(data, DataProto):  # legacy workers: sizes from the config, metrics already prefixed
            size, seed = self.config.ppo_mini_batch_size * self.group_size, self.config.data_loader_seed
            metrics = self._update(data.batch, size, seed)
            return DataProto(meta_info={"metrics": rename_dict(metrics, "actor/")})
        metrics = self._update(data, int(tu.get(data, "mini_batch_size")), int(tu.get(data, "seed")))
        return tu.get_tensordict({}, non_tensor_dict={"metrics": {**metrics, "mfu": 0.0}})

    def _update(self, data, mini_batch_size: int, seed: int) -> dict[str, float]:
        rows = data["responses"].shape[0]
        size = min(mini_batch_size, rows)
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(int(seed or 0) + self.updates))
        metrics: dict[str, list[float]] = {}
        for start in range(0, rows, size):
            index = order[start : start + size]
            log_prob = _response_values(self.model, data, index)[0]
            loss, pg_metrics = self.loss_fn(
                old_log_prob=data["old_log_probs"][index], log_prob=log_prob, advantages=data["advantages"][index],
                response_mask=data["response_mask"][index].bool(), loss_agg_mode=self.config.loss_agg_mode,
                config=self.config, rollout_is_weights=None,
            )  # fmt: skip
            self.optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            for key, value in {"pg_loss": loss.item(), "grad_norm": float(grad_norm), **pg_metrics}.items():
                metrics.setdefault(key, []).append(float(value.item() if torch.is_tensor(value) else value))
        self.updates += 1
        return {k: float(np.mean(v)) for k, v in metrics.items()}

    def save_checkpoint(self, local_path, remote_path=None, global_step=0, max_ckpt_to_keep=None):
        os.makedirs(local_path, exist_ok=True)
        save_model(self.model, os.path.join(local_path, "model.safetensors"))  # tied embeddings stored once
        torch.save({"optimizer": self.optimizer.state_dict(), "updates": self.updates}, os.path.join(local_path, "optim.pt"))

    def load_checkpoint(self, local_path, del_local_after_load=False):
        load_model(self.model, os.path.join(local_path, "model.safetensors"))
        state = torch.load(os.path.join(local_path, "optim.pt"), weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]


class HFRollout:
    """The async rollout manager: `generate_sequences` by Hugging Face `generate` on the rollout's
    copy of the policy, scored by `reward(ground_truth, response_text)`; prompts left-padded and
    responses right-padded to fixed widths, as the agent loop returns them."""

    def __init__(self, model, tokenizer, reward: Callable[[str, str], float], *, prompt_length: int, response_length: int,
                 temperature: float):
        self.model = model
        self.prompt_length = prompt_length
        self.tokenizer = tokenizer
        self.reward = reward
        self.response_length = response_length
        self.temperature = temperature
        self.calls: list[dict] = []
        self.kill_at_step: int | None = None

    def generate_sequences(self, batch: DataProto) -> DataProto:
        step = int(batch.meta_info.get("global_steps", 0))
        if self.kill_at_step is not None and step >= self.kill_at_step:
            raise KeyboardInterrupt(f"killed at step {step}")
        start = time.perf_counter()
        torch.manual_seed(1000 + step)  # the step's sampling (and what follows it) is the same on resume
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        texts = [messages[-1]["content"] for messages in batch.non_tensor_batch["raw_prompt"]]
        encoded = encode_prompts(self.tokenizer, texts)  # as depo's engine encodes them
        width = self.prompt_length  # the agent loop pads every prompt to rollout.prompt_length
        prompts = torch.full((len(texts), width), pad)
        prompt_mask = torch.zeros(len(texts), width, dtype=torch.long)
        for i, e in enumerate(encoded):  # left padding, as the agent loop returns prompts
            prompts[i, width - len(e) :] = torch.tensor(e)
            prompt_mask[i, width - len(e) :] = 1
        with torch.no_grad():
            out = self.model.generate(
                input_ids=prompts, attention_mask=prompt_mask, do_sample=True, temperature=self.temperature,
                max_new_tokens=self.response_length, pad_token_id=pad, eos_token_id=eos, top_k=0,
            )  # fmt: skip
        responses = torch.full((len(texts), self.response_length), pad)
        response_mask = torch.zeros(len(texts), self.response_length, dtype=torch.long)
        scores = torch.zeros(len(texts), self.response_length)
        truths = [rm["ground_truth"] for rm in batch.non_tensor_batch["reward_model"]]
        for i, row in enumerate(out[:, width:]):
            ends = (row == eos).nonzero()
            length = int(ends[0]) + 1 if len(ends) else len(row)  # up to and including the first eos
            responses[i, :length] = row[:length]
            response_mask[i, :length] = 1
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            scores[i, length - 1] = self.reward(truths[i], text)
        attention = torch.cat([prompt_mask, response_mask], dim=1)
        position = (attention.cumsum(dim=1) - 1).clamp(min=0)
        tensors = {
            "prompts": prompts, "responses": responses, "response_mask": response_mask,
            "input_ids": torch.cat([prompts, responses], dim=1), "attention_mask": attention,
            "position_ids": position, "rm_scores": scores,
        }  # fmt: skip
        non_tensors = dict(batch.non_tensor_batch)
        non_tensors["__num_turns__"] = np.full(len(texts), 2, dtype=np.int32)
        non_tensors["multi_modal_inputs"] = np.array([{} for _ in texts], dtype=object)
        seconds = time.perf_counter() - start
        ids = [e.get("depo_prompt_id", f"i:{e.get('index')}") for e in batch.non_tensor_batch["extra_info"]]  # 0.9 / 0.7
        self.calls.append({"step": step, "rows": len(texts), "prompt_ids": ids})
        timing = {"agent_loop/generate_sequences/mean": seconds, "agent_loop/generate_sequences/max": seconds}
        return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors, meta_info={"timing": timing, "reward_extra_keys": []})


class WeightSync:
    """The checkpoint engine between trainer and rollout: `update_weights` copies the actor's
    weights into the rollout model; sleeping and waking replicas is a no-op on one CPU."""

    def __init__(self, actor: ActorWorkers, rollout: HFRollout):
        self.actor, self.rollout = actor, rollout
        self.synced_steps: list[int] = []

    def update_weights(self, global_steps: int) -> None:
        self.rollout.model.load_state_dict(self.actor.model.state_dict())
        self.synced_steps.append(int(global_steps))

    def sleep_replicas(self) -> None:
        return None


def tiny_policy() -> Path:
    """The embedded tiny policy with a short warm start (seconds to build, then cached): it solves
    a few of the arithmetic prompts, so some groups are mixed."""
    return build_tiny_policy("mixed", config=TinyPolicyConfig(preset="mixed", sft_steps=60, sft_warmup_steps=10), progress=False)


def gym_parquet(path: Path, split: str, n: int) -> Path:
    """`n` of the tiny policy's arithmetic prompts in verl's RL parquet layout."""
    rows = [
        {"data_source": "depo_gym", "prompt": [{"role": "user", "content": t.prompt}], "ability": "arithmetic",
         "reward_model": {"style": "rule", "ground_truth": t.answer}, "extra_info": {"index": i}}
        for i, t in enumerate(preset_tasks("mixed", split, n, seed=0))
    ]  # fmt: skip
    pd.DataFrame(rows).to_parquet(path)
    return path


def attach(trainer, policy: Path, config) -> None:
    """Put the CPU stand-ins where `init_workers()` would put verl's GPU workers."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(policy)
    rollout = config.actor_rollout_ref.rollout
    trainer.actor_rollout_wg = ActorWorkers(model, config.actor_rollout_ref.actor, group_size=int(rollout.n))
    trainer.async_rollout_manager = HFRollout(
        copy.deepcopy(model), trainer.tokenizer, lambda truth, text: exact_match(text, truth),
        prompt_length=int(config.data.max_prompt_length), response_length=int(config.data.max_response_length),
        temperature=float(rollout.temperature),
    )  # fmt: skip
    trainer.checkpoint_manager = WeightSync(trainer.actor_rollout_wg, trainer.async_rollout_manager)
    trainer.async_rollout_mode = True  # verl 0.7: generate through the rollout manager
