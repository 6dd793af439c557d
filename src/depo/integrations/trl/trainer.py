"""DEPO inside TRL's `GRPOTrainer`: pre-rollout prompt selection, single- and multi-process.

The hooks (docs/trl.md, "How it plugs in"; TRL 1.16 `trl/trainer/grpo_trainer.py`):
`_get_train_sampler` returns a `DEPORepeatSampler` fed by a `SelectionFeed`;
`_calculate_rewards` (already gathered across processes) captures the per-completion total reward
and the prompts' dataset indices (the extra `depo_index` column), and
`_generate_and_score_completions` adds the mean token log-probs and calls `selector.observe`
(with `dynamic_sampling`, after more rounds: depo.integrations.trl.dynamic_sampling);
`_save_checkpoint` / `_load_optimizer_and_scheduler` write and restore `depo_selector.json` +
`.safetensors` (no pickle). `select/*` and `estimator/*` metrics go into TRL's `_metrics["train"]`.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
from typing import Any, Literal

import torch
from accelerate.utils import broadcast_object_list, gather_object
from datasets import Dataset
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from depo.data.io import chat_text
from depo.errors import DepoError
from depo.integrations.trl.dynamic_sampling import choose_groups, informative_groups, merge_rows
from depo.integrations.trl.feed import SelectionFeed
from depo.integrations.trl.sampler import DEPORepeatSampler
from depo.selection import Uniform
from depo.selection.base import Selector
from depo.selection.depo import DEPO
from depo.selection.mopps import MoPPS
from depo.state_io import load_state, save_state

logger = logging.getLogger(__name__)

INDEX_COLUMN = "depo_index"
STATE_NAME = "depo_selector"
"""The selector's state in a TRL checkpoint: depo_selector.json + depo_selector.safetensors (no pickle)."""
STATE_FILE = f"{STATE_NAME}.json"
LogprobMode = Literal["auto", "always", "never"]


class DEPOMixin:
    """Adds DEPO selection to a `GRPOTrainer` (or a subclass of it): `class T(DEPOMixin, GRPOTrainer)`.

    Extra keyword arguments (docs/trl.md, "Options"): `selector` (default `Uniform()`: GRPO with
    DEPO's data order and bookkeeping); `text_column` / `id_column` (what the estimator reads, the
    stable prompt ids); `max_scan` (candidates per generation batch, default 8 x its prompts);
    `logprobs` ("auto" | "always" | "never": the responses' mean token log-probs for the
    selector); `selection` ("refill": keep what the selector keeps, draw until the batch is full;
    "rank": the best by priority of `oversample` x as many candidates); `dynamic_sampling` with
    `max_num_gen_batches` rounds at most (depo.integrations.trl.dynamic_sampling; needs each
    process's generation rows to hold whole groups).
    """

    def __init__(
        self,
        *args: Any,
        selector: Selector | None = None,
        text_column: str | None = None,
        id_column: str | None = None,
        max_scan: int | None = None,
        logprobs: LogprobMode = "auto",
        dynamic_sampling: bool = False,
        max_num_gen_batches: int = 4,
        selection: Literal["refill", "rank"] = "refill",
        oversample: float = 2.0,
        **kwargs: Any,
    ) -> None:
        # train_dataset by name, or at GRPOTrainer's position; everything else passes through as
        # given, so a subclass's own arguments reach it
        position = list(inspect.signature(GRPOTrainer.__init__).parameters).index("train_dataset") - 1  # after self
        by_name = "train_dataset" in kwargs
        dataset = kwargs.get("train_dataset") if by_name else (args[position] if len(args) > position else None)
        if not isinstance(dataset, Dataset):
            raise DepoError(
                "DEPO needs an indexable `datasets.Dataset` as train_dataset (got "
                f"{type(dataset).__name__}); it picks prompts by index before the rollout"
            )
        if logprobs not in ("auto", "always", "never"):
            raise DepoError(f"logprobs must be 'auto', 'always' or 'never', got {logprobs!r}")
        if max_num_gen_batches < 1:
            raise DepoError(f"max_num_gen_batches must be >= 1, got {max_num_gen_batches}")
        texts, ids = _candidate_columns(dataset, text_column, id_column)
        if INDEX_COLUMN in dataset.column_names:
            dataset = dataset.remove_columns(INDEX_COLUMN)
        dataset = dataset.add_column(INDEX_COLUMN, list(range(len(dataset))))
        if by_name:
            kwargs["train_dataset"] = dataset
        else:
            args = (*args[:position], dataset, *args[position + 1 :])
        super().__init__(*args, **kwargs)

        self.depo_selector = selector if selector is not None else Uniform()
        self._depo_pass_rates = isinstance(self.depo_selector, DEPO | MoPPS)  # they learn rewards as pass rates
        rows = self.args.per_device_train_batch_size * self.args.steps_per_generation
        if dynamic_sampling and rows % self.num_generations:
            raise DepoError(
                f"dynamic sampling needs whole groups on each process: per_device_train_batch_size * steps_per_generation "
                f"= {rows} rows is not a multiple of num_generations={self.num_generations}"
            )
        self._depo_logprobs = logprobs
        self._depo_rounds = int(max_num_gen_batches) if dynamic_sampling else 1
        self._depo_pending: tuple[list[int], list[float]] | None = None
        batch = self.args.generation_batch_size // self.num_generations
        several = self.accelerator.num_processes > 1
        if several and getattr(self.accelerator, "dispatch_batches", None):
            raise DepoError("DEPO needs accelerator_config.dispatch_batches=False with several processes")
        self.depo_feed = SelectionFeed(
            self.depo_selector, texts, ids, batch_size=batch, group_size=self.num_generations,
            seed=self.args.seed, max_scan=max_scan if max_scan is not None else 8 * batch,
            broadcast=_broadcast_from_main if several else None, selection=selection, oversample=oversample,
        )

    # -- sampling ------------------------------------------------------------------------
    def _get_train_sampler(self, dataset=None):  # noqa: ANN001 - TRL's signature
        n = len(dataset if dataset is not None else self.train_dataset)
        batch = self.depo_feed.batch_size
        return DEPORepeatSampler(
            self.depo_feed.next_chunk,
            chunks_per_epoch=n // batch,
            batch_size=batch,
            mini_repeat_count=self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
        )

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if INDEX_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, INDEX_COLUMN]

    def train(self, *args: Any, **kwargs: Any):
        # The DEPO sampler resumes from its own checkpointed position; Trainer's replay of the
        # batches already seen would run the selector again on prompts it already decided.
        self.args.ignore_data_skip = True
        return super().train(*args, **kwargs)

    # -- learning from rewards -----------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # noqa: ANN001
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training and inputs and INDEX_COLUMN in inputs[0]:
            indices = [int(i) for i in gather_object([int(x[INDEX_COLUMN]) for x in inputs])]
            weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
            total = (rewards_per_func * weights).nansum(dim=1)
            total[torch.isnan(rewards_per_func).all(dim=1)] = float("nan")
            self._depo_pending = (indices, total.tolist())
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):  # noqa: ANN001
        output, rewards = self._depo_round(inputs)
        if self._depo_rounds == 1 or rewards is None:
            return output
        return self._depo_dynamic_sampling(inputs, output, rewards)

    def _depo_round(self, inputs) -> tuple[dict, list[float] | None]:  # noqa: ANN001
        """TRL's generation and scoring of `inputs`, then the selector observes the groups."""
        output = super()._generate_and_score_completions(inputs)
        pending, self._depo_pending = self._depo_pending, None
        if pending is None:
            return output, None
        indices, rewards = pending
        if self._depo_pass_rates and (bad := [r for r in rewards if math.isfinite(r) and not 0.0 <= r <= 1.0]):
            raise DepoError(
                f"{type(self.depo_selector).__name__} learns rewards as pass rates: each completion's reward (the "
                f"reward_weights-weighted sum of reward_funcs) must be in [0, 1], got {bad[0]:g}; rescale them"
            )
        for key, value in self.depo_feed.complete(indices, rewards, self._depo_mean_logprobs(output)).items():
            self._metrics["train"][key].append(value)
        return output, rewards

    def _depo_dynamic_sampling(self, inputs, output: dict, rewards: list[float]) -> dict:  # noqa: ANN001
        """More rounds until every process holds only informative groups (docs/trl.md, "Dynamic
        sampling"); the rows TRL gave this process, no more. Every rank decides from the rewards
        TRL gathered across processes, so all run the same rounds and the collectives match."""
        g, procs, rank = self.num_generations, self.accelerator.num_processes, self.accelerator.process_index
        need = len(inputs) // g
        outputs, flags = [output], [informative_groups(rewards, g, procs)]

        def found() -> list[int]:  # informative groups so far, per process (every rank knows all ranks')
            return [sum(sum(f[p]) for f in flags) for p in range(procs)]

        while len(outputs) < self._depo_rounds and min(found()) < need:
            chunk = self.depo_feed.next_chunk(in_flight=False)
            rows = [self.train_dataset[int(i)] for i in chunk for _ in range(g)]
            extra, extra_rewards = self._depo_round(rows[rank * len(inputs) : (rank + 1) * len(inputs)])
            outputs.append(extra)
            flags.append(informative_groups(extra_rewards, g, procs))
        chosen = choose_groups([f[rank] for f in flags], need)
        rows = [(r, k * g + j) for r, k in chosen for j in range(g)]
        merged = merge_rows(outputs, rows, self._tokenizer.pad_token_id)
        merged["num_items_in_batch"] = self.accelerator.gather(merged["completion_mask"].sum()).sum()
        counts = found()
        stats = {
            "select/ds_rounds": float(len(outputs)),
            "select/ds_rollouts": float(len(outputs) * len(inputs) * procs),
            "select/ds_informative": float(sum(min(n, need) for n in counts)),
            "select/ds_unfilled": float(sum(max(0, need - n) for n in counts)),
        }
        for key, value in stats.items():
            self._metrics["train"][key].append(value)
        return merged

    def _depo_mean_logprobs(self, output: dict) -> list[float] | None:
        """Per completion, the mean over its tokens of log pi(token), gathered across processes."""
        if self._depo_logprobs == "never":
            return None
        per_token = output.get("old_per_token_logps")
        if per_token is None:
            per_token = output.get("sampling_per_token_logps")
        if per_token is None and self._depo_logprobs == "always":
            ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
            mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
            with torch.no_grad():
                per_token, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, ids, mask, output["completion_ids"].size(1),
                    batch_size=self.args.per_device_train_batch_size,
                )
        if per_token is None:
            return None
        mask = output["completion_mask"].to(per_token.dtype)
        mean = (torch.nan_to_num(per_token) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.accelerator.gather(mean.float()).tolist()

    # -- checkpoints ---------------------------------------------------------------------
    def _save_checkpoint(self, model, trial):  # noqa: ANN001
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            save_state(self.depo_feed.state_dict(), folder, STATE_NAME)

    def _load_optimizer_and_scheduler(self, checkpoint):  # noqa: ANN001
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        if os.path.isfile(os.path.join(checkpoint, STATE_FILE)):  # data only: loading runs nothing in it
            self.depo_feed.load_state_dict(load_state(checkpoint, STATE_NAME))
        elif os.path.isfile(os.path.join(checkpoint, f"{STATE_NAME}.pt")):
            raise DepoError(
                f"{checkpoint} holds a pickled {STATE_NAME}.pt, which depo does not load "
                "(unpickling can run arbitrary code); resume from a checkpoint written by this version"
            )
        else:
            logger.warning("DEPO: %s has no %s; the selector starts from scratch", checkpoint, STATE_FILE)


class DEPOGRPOTrainer(DEPOMixin, GRPOTrainer):
    """`trl.GRPOTrainer` that rolls out only the prompts a DEPO selector keeps (see `DEPOMixin`)."""


def _candidate_columns(dataset: Dataset, text_column: str | None, id_column: str | None) -> tuple[list[str], list[str]]:
    for name, col in (("text_column", text_column), ("id_column", id_column)):
        if col is not None and col not in dataset.column_names:
            raise DepoError(f"{name}={col!r} is not a column of the training set ({', '.join(dataset.column_names)})")
    if text_column is not None:
        texts = [str(t) for t in dataset[text_column]]
    elif "prompt" in dataset.column_names:
        try:
            texts = [chat_text(p) for p in dataset["prompt"]]
        except DepoError as exc:
            raise DepoError(f"{exc} in the training set's 'prompt' column; pass text_column=") from None
    else:
        raise DepoError("the training set has no 'prompt' column; pass text_column=")
    ids = [str(x) for x in dataset[id_column]] if id_column is not None else [str(i) for i in range(len(dataset))]
    if len(set(ids)) != len(ids):
        raise DepoError(f"id_column={id_column!r} has duplicate ids; the selector needs one id per prompt")
    return texts, ids


def _broadcast_from_main(obj: object) -> object:
    return broadcast_object_list([obj], from_process=0)[0]
