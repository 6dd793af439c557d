"""The built-in GRPO / DAPO engine. One training step reads like docs/method.md section 2.1:

    1. select     the stream (refill or rank) draws candidates and asks the Selector which to roll out
    2. rollout    G responses per kept prompt (KV-cache sampling, per-token log-probs)
    3. reward     verifier rewards (+ DAPO overlong shaping); failed reward calls drop the group
       (DAPO dynamic sampling repeats 1-3 until the batch holds batch_size informative groups)
    4. advantage  GRPO group-normalised advantages
    5. update     clipped surrogate (clip-higher), token- or sequence-mean, optional KL; epochs
                  and mini-batches as TRL's num_iterations / steps_per_generation
    6. observe    the Selector (and its estimator) learns from the rolled-out groups' rewards

Every rollout is counted and every phase is timed. The run directory (`run_dir.py`), the
metrics log (`metrics_log.py`), checkpoints (`checkpoint.py`, `state.py`) and Ctrl-C
(`signals.py`) live beside this file; this one holds the step and the loop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from transformers.utils import logging as hf_logging

from depo.config import write_yaml
from depo.errors import DepoError
from depo.estimator import build_estimator
from depo.policy import build_tiny_policy, load_policy, sample
from depo.rl import checkpoint as ckpt
from depo.rl.config import RESUME_OVERRIDABLE, TrainConfig, load_config
from depo.rl.dynamic_sampling import collect_informative
from depo.rl.evaluation import evaluate
from depo.rl.groups import Group
from depo.rl.losses import aggregate, clipped_surrogate, group_advantages, kl_k3, overlong_penalty
from depo.rl.report import write_plots, write_summary
from depo.rl.run_dir import RunDirectory
from depo.rl.signals import StopRequest
from depo.rl.state import restore_rng, rng_state, seed_everything
from depo.selection import DataOrder, make_selector, make_stream
from depo.tasks.base import Task, score_responses
from depo.tasks.gym import preset_tasks
from depo.types import Candidate, GroupOutcome

log = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 10_007
"""Held-out sampling uses seed + this, independent of the training random stream."""
COUNTED = ("select/scanned", "select/kept", "select/skipped", "select/explored", "select/forced")
"""Select stats summed over a step's generation batches (dynamic sampling draws several)."""


@dataclass
class StepLedger:
    """What one step measured: wall time per phase and the selector's counts, summed over its
    generation batches (dynamic sampling repeats select, rollout and reward)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    select: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    estimator_s: float = 0.0

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def add_select(self, stats: dict[str, float]) -> None:
        self.estimator_s += stats.pop("time/select_s", 0.0)  # the selector's own scoring time
        for key, value in stats.items():
            self.select[key] = self.select[key] + value if key in COUNTED else value


def resolve_model_path(cfg: TrainConfig) -> Path:
    """The policy directory: the embedded tiny policy (built and cached on first use) or `cfg.model`."""
    return Path(build_tiny_policy(cfg.preset)) if cfg.model == "tiny" else Path(cfg.model)


class Trainer:
    """GRPO/DAPO training of one policy with a pluggable prompt Selector.

    `Trainer(cfg).train()` runs cfg.max_steps steps into cfg.output_dir;
    `Trainer.resume(run_dir).train()` continues a run from its latest checkpoint.
    `tasks=(train, heldout)` replaces the preset's tasks (tests, custom data).
    """

    def __init__(self, config: TrainConfig, *, tasks: tuple[Sequence[Task], Sequence[Task]] | None = None,
                 _resume: bool = False) -> None:
        self.cfg = cfg = config
        self.run = RunDirectory.for_config(cfg)
        self.run_dir = self.run.path
        self.stop = StopRequest()
        self.step = 0
        self.totals = {"prompts": 0, "responses": 0, "tokens": 0, "reward_errors": 0}
        self.elapsed_s = 0.0
        if not _resume:
            self.run.claim(cfg)

        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)

        if tasks is None:  # the preset's (data seed 0: held-out numbers compare across training seeds)
            tasks = (
                preset_tasks(cfg.preset, "train", cfg.train_size, seed=0),
                preset_tasks(cfg.preset, "heldout", cfg.heldout_size, seed=0) if cfg.heldout_size else [],
            )
        self.train_tasks, self.heldout_tasks = list(tasks[0]), list(tasks[1])
        if not self.train_tasks:
            raise DepoError("the training set is empty")

        hf_logging.disable_progress_bar()  # "Loading weights" bars would garble the run's own bar
        self.model_path = resolve_model_path(cfg)
        latest = ckpt.latest_checkpoint(self.run.checkpoints) if _resume else None
        policy_dir = latest[1] / ckpt.POLICY_DIR if latest else self.model_path
        self.model, self.tokenizer = load_policy(policy_dir, device=cfg.device)
        self.model.eval()  # no dropout: the ratio pi/pi_old must be exactly 1 before the first update
        self.ref_model = None
        if cfg.beta > 0:
            ref, _ = load_policy(self.model_path, device=cfg.device)
            self.ref_model = ref.eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator().manual_seed(cfg.seed)

        if cfg.estimator_init:  # a warm start: the saved estimator, estimator_options replacing its settings
            estimator = build_estimator(cfg.estimator_init, device=cfg.device, **cfg.estimator_options)
        else:
            estimator = {"seed": cfg.seed, "device": cfg.device, **cfg.estimator_options}
        self.selector = make_selector(cfg.selector, group_size=cfg.num_generations, seed=cfg.seed,
                                      options=cfg.selector_options, estimator=estimator)
        order = DataOrder(len(self.train_tasks), seed=cfg.seed)
        self.stream = make_stream(cfg.selection, order, self.selector, self.candidate, cfg.batch_size,
                                  oversample=cfg.oversample, max_scan=cfg.max_scan)  # 0 = make_stream's 8 x batch_size
        if latest:
            self._load(latest[1])
        elif _resume:
            log.warning("no checkpoint in %s: starting the run from step 0", self.run_dir)
            self.run.metrics.truncate(0)

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: list[str] | None = None, *,
               tasks: tuple[Sequence[Task], Sequence[Task]] | None = None) -> Trainer:
        """Continue the run in `run_dir` from its latest complete checkpoint."""
        run = RunDirectory(run_dir)
        if not run.config_file.is_file():
            raise DepoError(f"not a run directory (no config.yaml): {run.path}")
        why = f"cannot change it when resuming; changeable: {', '.join(sorted(RESUME_OVERRIDABLE))}"
        keys = (text.split("=", 1)[0].strip() for text in overrides or [])
        locked = {key: why for key in keys if key not in RESUME_OVERRIDABLE}
        cfg = load_config(run.config_file, overrides, locked=locked).replace(output_dir=str(run.path))
        write_yaml(cfg, run.config_file)
        return cls(cfg, tasks=tasks, _resume=True)

    def candidate(self, index: int) -> Candidate:
        """Dataset index -> what the selector sees: a stable id and the text the estimator reads."""
        task = self.train_tasks[index]
        return Candidate(prompt_id=task.prompt_id, text=task.text)

    # ------------------------------------------------------------------ one training step
    def train_step(self) -> dict[str, float]:
        """One RL step (docs/method.md section 2.1); returns its metrics."""
        cfg = self.cfg
        ledger = StepLedger()
        generate = functools.partial(self._generate, ledger)  # 1-3: select, roll out, reward
        if cfg.dynamic_sampling:
            groups, rolled, dynamic_stats = collect_informative(generate, cfg.batch_size, cfg.max_num_gen_batches)
        else:
            rolled = generate()
            groups, dynamic_stats = [g for g in rolled if g.error is None], {}
        # 4. advantage: GRPO, normalised within each group.
        with ledger.phase("advantage"):
            batch = self._advantages(groups) if groups else None
        # 5. update the policy.
        with ledger.phase("update"):
            update_stats = self._update(batch) if batch is not None else {"update/skipped": 1.0}
        # 6. observe: the selector learns from every rolled-out group that has valid rewards.
        with ledger.phase("observe"):
            outcomes = [self._outcome(g) for g in rolled if g.error is None]
            observe_stats = self.selector.observe(outcomes) if outcomes else {}
        ledger.estimator_s += ledger.seconds["observe"]
        self.step += 1
        return self._step_metrics(rolled, groups, ledger, dynamic_stats, update_stats, observe_stats)

    def _generate(self, ledger: StepLedger) -> list[Group]:
        """Steps 1-3 once: the selected prompts, rolled out G times each, with their rewards."""
        cfg = self.cfg
        with ledger.phase("select"):  # 1. which prompts are worth a rollout
            indices, stats = self.stream.next_batch()
            explored = list(self.stream.last_explored)
        ledger.add_select(stats)
        with ledger.phase("rollout"):  # 2. G responses per prompt
            rollouts = sample(self.model, self.tokenizer, [self.train_tasks[i].prompt for i in indices],
                              cfg.num_generations, max_new_tokens=cfg.max_completion_length,
                              temperature=cfg.temperature, top_p=cfg.top_p, generator=self.generator,
                              batch_size=cfg.sampling_chunk_size)
        with ledger.phase("reward"):  # 3. verifier + overlong shaping; a failing reward drops its group
            return self._reward(indices, rollouts, explored)

    def _reward(self, indices: list[int], rollouts, explored: list[bool]) -> list[Group]:
        cfg, G = self.cfg, self.cfg.num_generations
        groups = []
        for j, index in enumerate(indices):
            sl = slice(j * G, (j + 1) * G)
            scores, error = score_responses(self.train_tasks[index], rollouts.response_text[sl])
            correct = np.asarray(scores, dtype=np.float64)
            lengths = torch.tensor([len(r) for r in rollouts.response_ids[sl]])
            shaped = correct + overlong_penalty(
                lengths, cfg.max_completion_length, cfg.overlong_buffer_len, cfg.overlong_penalty_factor
            ).double().numpy()
            if error is not None:
                if self.totals["reward_errors"] == 0:
                    log.warning("reward function failed on prompt %s (%s); group dropped",
                                self.train_tasks[index].prompt_id, error)
                self.totals["reward_errors"] += 1
            groups.append(Group(
                index=index, prompt_ids=rollouts.prompt_ids[j], response_ids=rollouts.response_ids[sl],
                logprobs=rollouts.logprobs[sl], truncated=rollouts.truncated[sl], correct=correct,
                rewards=shaped, explored=j < len(explored) and bool(explored[j]), error=error,
            ))
        errors = [g.error for g in groups if g.error is not None]
        if groups and len(errors) / len(groups) > cfg.max_reward_error_rate:
            raise DepoError(
                f"the reward function failed on {len(errors)} of {len(groups)} groups this step "
                f"(max_reward_error_rate={cfg.max_reward_error_rate}); first failure: {errors[0]}"
            )
        return groups

    def _outcome(self, group: Group) -> GroupOutcome:
        task = self.train_tasks[group.index]
        return GroupOutcome(task.prompt_id, task.text, tuple(float(r) for r in group.correct),
                            mean_logprobs=group.mean_logprobs(), explored=group.explored)

    def _advantages(self, groups: list[Group]) -> dict[str, torch.Tensor]:
        """Token tensors for the update and one GRPO advantage per response.

        Rows are prompt + response, right-padded. `mask[b, p] = 1` where position p predicts a
        response token (logits at p score token p + 1).
        """
        cfg = self.cfg
        rewards = torch.tensor(np.stack([g.rewards for g in groups]), dtype=torch.float32)
        advantages = group_advantages(rewards, cfg.scale_rewards).reshape(-1)
        rows = [(g.prompt_ids + resp, len(g.prompt_ids), trunc)
                for g in groups for resp, trunc in zip(g.response_ids, g.truncated)]
        width = max(len(row) for row, _, _ in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width - 1), dtype=torch.float32)
        for b, (row, start, truncated) in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention[b, : len(row)] = 1
            if not (cfg.mask_truncated_completions and truncated):
                mask[b, start - 1 : len(row) - 1] = 1.0
        return {"ids": ids, "attention": attention, "mask": mask, "advantages": advantages, "rewards": rewards}

    def _token_logprobs(self, model, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """log pi_T(token_{p+1} | tokens_<=p) for every position p, at the sampling temperature."""
        device = next(model.parameters()).device
        logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float()
        logp = torch.log_softmax(logits / self.cfg.temperature, dim=-1)
        return logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()

    def _update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        ids, attention, mask, adv = batch["ids"], batch["attention"], batch["mask"], batch["advantages"]
        G = cfg.num_generations
        # Mini-batches of whole, consecutive groups (so pi_old below is already in row order).
        chunks = [c for c in np.array_split(np.arange(ids.shape[0] // G), cfg.steps_per_generation) if len(c)]
        row_chunks = [torch.arange(int(c[0]) * G, (int(c[-1]) + 1) * G) for c in chunks]
        # pi_old: with one epoch and one mini-batch the policy has not moved, so logp.detach() is
        # pi_old exactly (TRL); otherwise recompute it once before the first update (verl).
        reuse = cfg.num_iterations == 1 and len(row_chunks) == 1
        with torch.no_grad():
            old_all = None if reuse else torch.cat([self._token_logprobs(self.model, ids[r], attention[r])
                                                    for r in row_chunks])
            ref_all = None if self.ref_model is None else self._token_logprobs(self.ref_model, ids, attention)
        params = [p for p in self.model.parameters() if p.requires_grad]
        sums: dict[str, float] = defaultdict(float)
        for _ in range(cfg.num_iterations):
            for rows in row_chunks:
                m = mask[rows]
                logp = self._token_logprobs(self.model, ids[rows], attention[rows])
                old = logp.detach() if old_all is None else old_all[rows]
                per_token, clipped = clipped_surrogate(logp, old, adv[rows], cfg.epsilon, cfg.epsilon_high)
                kl = None
                if ref_all is not None:
                    kl = kl_k3(logp, ref_all[rows])
                    per_token = per_token + cfg.beta * kl
                loss = aggregate(per_token, m, cfg.loss_type, max_len=cfg.max_completion_length)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # max_grad_norm 0 = no clipping (an infinite bound); the norm is logged either way
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or float("inf"))
                self.optimizer.step()
                tokens = m.sum().clamp(min=1.0)
                sums["loss/policy"] += float(loss.detach())
                sums["loss/clip_frac"] += float((clipped * m).sum() / tokens)
                sums["loss/grad_norm"] += float(grad_norm)
                if kl is not None:
                    sums["loss/kl"] += float((kl.detach() * m).sum() / tokens)
        n = cfg.num_iterations * len(row_chunks)
        out = {k: v / n for k, v in sums.items()}
        out["update/optimizer_steps"] = float(n)
        return out

    def _step_metrics(self, rolled: list[Group], groups: list[Group], ledger: StepLedger,
                      dynamic_stats: dict[str, float], update_stats: dict[str, float],
                      observe_stats: dict[str, float]) -> dict[str, float]:
        valid = [g for g in rolled if g.error is None]
        responses = sum(len(g.response_ids) for g in rolled)
        tokens = sum(g.num_tokens for g in rolled)
        self.totals["prompts"] += len(rolled)
        self.totals["responses"] += responses
        self.totals["tokens"] += tokens
        m: dict[str, float] = {"step": float(self.step)}
        m["reward/mean"] = float(np.mean([g.rewards.mean() for g in valid])) if valid else float("nan")
        m["reward/accuracy"] = float(np.mean([g.correct.mean() for g in valid])) if valid else float("nan")
        m["reward/errors"] = float(len(rolled) - len(valid))
        m["rollout/prompts"] = float(len(rolled))
        m["rollout/responses"] = float(responses)
        m["rollout/tokens"] = float(tokens)
        for key in ("prompts", "responses", "tokens"):
            m[f"rollout/total_{key}"] = float(self.totals[key])
        m["rollout/mean_length"] = tokens / responses if responses else 0.0
        m["rollout/truncated"] = float(np.mean([t for g in rolled for t in g.truncated])) if rolled else 0.0
        m["train/groups"] = float(len(groups))
        m.update({k: float(v) for k, v in observe_stats.items()})
        m.update(dict(ledger.select))
        if ledger.select.get("select/scanned"):
            m["select/survival_rate"] = ledger.select["select/kept"] / ledger.select["select/scanned"]
        # Effective rate: share of rolled-out groups that carry a gradient (non-zero variance).
        m["select/effective_rate"] = sum(g.informative for g in valid) / len(valid) if valid else float("nan")
        m.update(dynamic_stats)
        m.update(update_stats)
        for phase in ("select", "rollout", "reward", "advantage", "update", "observe"):
            m[f"time/{phase}_s"] = ledger.seconds[phase]
        m["time/estimator_s"] = ledger.estimator_s
        m["time/total_s"] = sum(ledger.seconds.values())
        return m

    def read_metrics(self) -> list[dict[str, Any]]:
        return self.run.metrics.read()

    def evaluate(self) -> dict[str, float]:
        """Held-out Avg@k and pass@k with a fixed seed (same draws at every evaluation)."""
        cfg = self.cfg
        if not self.heldout_tasks:
            return {}
        start = time.perf_counter()
        out = evaluate(self.model, self.tokenizer, self.heldout_tasks, k=cfg.eval_k,
                       max_new_tokens=cfg.max_completion_length, temperature=cfg.eval_temperature,
                       seed=cfg.seed + EVAL_SEED_OFFSET, batch_size=cfg.sampling_chunk_size)
        out["time/eval_s"] = time.perf_counter() - start
        return out

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "totals": dict(self.totals),
            "elapsed_s": self.elapsed_s,
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(self.generator),
            "stream": self.stream.state_dict(),
            "selector": self.selector.state_dict(),
        }

    def save(self) -> Path:
        return ckpt.save_checkpoint(
            self.run.checkpoints, self.step, self.model, self.tokenizer, self._state(), keep=self.cfg.save_total_limit
        )

    def _load(self, path: Path) -> None:
        state = ckpt.load_state(path)
        self.step = int(state["step"])
        self.totals.update(state["totals"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], generator=self.generator)
        self.stream.load_state_dict(state["stream"])
        self.selector.load_state_dict(state["selector"])
        ckpt.clean_partial(self.run.checkpoints)
        self.run.metrics.truncate(self.step)

    # ------------------------------------------------------------------ the loop
    def _due(self, every: int) -> bool:
        return self.step == self.cfg.max_steps or (every > 0 and self.step % every == 0)

    @property
    def interrupted(self) -> bool:
        return self.stop.requested

    def train(self) -> Path:
        """Run until max_steps (or Ctrl-C); returns the run directory."""
        cfg = self.cfg
        start = time.perf_counter()
        elapsed0 = self.elapsed_s
        setup = self._precompute_estimator_vectors()
        if self.step == 0 and not self.read_metrics():
            self.run.metrics.append({"step": 0, **self.evaluate(), **setup})
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not cfg.progress, desc="depo train", dynamic_ncols=True)
        last_saved = None
        with self.stop.on_sigint():
            while self.step < cfg.max_steps and not self.stop.requested:
                metrics = self.train_step()
                if self._due(cfg.eval_steps):
                    metrics.update(self.evaluate())
                self.elapsed_s = elapsed0 + time.perf_counter() - start
                metrics["time/elapsed_s"] = self.elapsed_s
                self.run.metrics.append(metrics)
                if self._due(cfg.save_steps) or self.stop.requested:
                    self.save()
                    last_saved = self.step
                bar.update(1)
                bar.set_postfix(_progress_fields(metrics, cfg.eval_k))
        bar.close()
        if last_saved != self.step and self.step > 0:
            self.save()
        records = self.read_metrics()
        write_plots(self.run_dir, records, cfg)
        write_summary(self.run_dir, records, cfg, self.summary_extra())
        return self.run_dir

    def _precompute_estimator_vectors(self) -> dict[str, float]:
        """`estimator_precompute`: encode the training pool once (disk cache), timed on its own."""
        estimator = getattr(self.selector, "estimator", None)
        if not self.cfg.estimator_precompute or estimator is None:
            return {}
        start = time.perf_counter()
        counts = estimator.warm_cache([t.text for t in self.train_tasks], progress=self.cfg.progress)
        return {"time/estimator_precompute_s": time.perf_counter() - start,
                "estimator/precompute_loaded": counts["loaded"],
                "estimator/precompute_encoded": counts["encoded"]}

    def summary_extra(self) -> dict[str, Any]:
        """What the summary needs from the live objects (the selector's warm-up length)."""
        config = getattr(self.selector, "config", None)
        warmup = getattr(config, "warmup_steps", None)
        return {"warmup_steps": warmup if isinstance(warmup, int) else None, "selector": self.cfg.selector}


def _progress_fields(metrics: dict[str, float], k: int) -> dict[str, str]:
    fields = {"reward": f"{metrics['reward/accuracy']:.3f}", "eff": f"{metrics['select/effective_rate']:.2f}"}
    if f"eval/avg@{k}" in metrics:
        fields[f"avg@{k}"] = f"{metrics[f'eval/avg@{k}']:.3f}"
    return fields
