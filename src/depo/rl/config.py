"""Training configuration: one model whose field docs are the user documentation.

Field names follow TRL's `GRPOConfig` wherever TRL has the knob, and verl's DAPO recipe for the
DAPO ones (`dynamic_sampling`, `max_num_gen_batches`, `overlong_*`). A config is loaded from YAML
(which may `extends:` a base) plus `key=value` overrides and validated at load (`depo.config`):
unknown keys, wrong types and invalid values are one line naming the key and the valid choices,
never a traceback halfway through a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from depo import config as configuration
from depo.config import Config
from depo.errors import DepoError
from depo.estimator import estimator_config
from depo.rl.losses import LOSS_TYPES, SCALE_REWARDS
from depo.selection import SELECTORS, selector_options, selector_spec

RESUME_OVERRIDABLE = {"max_steps", "eval_steps", "save_steps", "save_total_limit", "progress", "num_threads", "device"}
"""Keys that may change when a run is resumed; the rest would silently change the run."""


class TrainConfig(Config):
    # --- model and data -------------------------------------------------------------------
    model: str = "tiny"
    """Policy: "tiny" (the embedded tiny Qwen2 policy for `preset`, built and cached on first
    use) or a local Hugging Face causal-LM directory."""
    preset: Literal["mixed", "easy", "hard"] = "mixed"
    """Task preset of reasoning-gym prompts."""
    train_size: int = Field(20000, ge=1)
    """Prompts in the procedurally generated training pool (one epoch = this many prompts)."""
    heldout_size: int = Field(200, ge=0)
    """Prompts in the fixed held-out set (disjoint seeds from the training pool)."""
    seed: int = 0
    """Seed for data order, sampling, selection and initialisation; same seed -> same run on CPU."""
    device: str = "cpu"
    """Torch device for the policy: cpu, cuda, cuda:1, ..."""
    num_threads: int = Field(0, ge=0)
    """torch.set_num_threads for the run; 0 leaves torch's default."""

    # --- batch and rollout ----------------------------------------------------------------
    batch_size: int = Field(32, ge=1)
    """Prompts per training step (each rolled out num_generations times)."""
    num_generations: int = Field(8, ge=2)
    """G: responses sampled per prompt (the GRPO group size)."""
    max_steps: int = Field(100, ge=0)
    """Training steps (one step = one batch rolled out and trained on)."""
    temperature: float = Field(1.0, gt=0.0)
    """Sampling temperature; log-probs are those of the tempered distribution."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass (1.0 = off)."""
    max_completion_length: int = Field(16, ge=1)
    """Maximum generated tokens per response."""
    sampling_chunk_size: int = Field(1024, ge=1)
    """Sequences sampled together in one KV-cache loop (a memory knob, not a training knob)."""

    # --- selection (before the rollout) ---------------------------------------------------
    selector: str = "uniform"
    """Which prompts get rolled out (depo.selection.SELECTORS): uniform (GRPO, keep all), depo
    (estimator, our default mode), depo-paper (the paper's warm-up + fixed window), history (GRESO), mopps (MoPPS)."""
    selector_options: dict[str, Any] = Field(default_factory=dict)
    """The selector's own options (e.g. DEPOConfig fields for depo); set one with
    --set selector_options.NAME=VALUE."""
    selection: Literal["refill", "rank"] = "refill"
    """How the selector's answers become a batch (depo.selection.stream): refill (keep what the
    rule keeps, draw until full; the paper's loop) or rank (roll out the batch_size best of
    oversample * batch_size scanned candidates; docs/method.md section 4.9)."""
    oversample: float = Field(2.0, ge=1.0)
    """selection: rank -- candidates scanned per rolled-out prompt (survival = 1 / oversample)."""
    max_scan: int = Field(0, ge=0)
    """selection: refill -- bound on candidates scanned per step; 0 = 8 * batch_size."""
    estimator_options: dict[str, Any] = Field(default_factory=dict)
    """Difficulty-estimator settings for depo / depo-paper: `kind` (trunk, the default: the paper's
    encoder + trunk + heads; bayes: the closed-form posterior of docs/method.md section 4.10) and
    that estimator's fields (depo.estimator.EstimatorConfig or BayesEstimatorConfig); its seed
    defaults to this run's seed."""
    estimator_init: str = ""
    """Directory of an estimator trained beforehand (OnlineEstimator.save, e.g. by
    `depo bench estimator --save DIR`) to start DEPO from instead of an untrained one; its saved
    settings hold except those `estimator_options` set (not the architecture's, which are refused)."""
    estimator_precompute: bool = False
    """Encode the whole training pool with the frozen encoder once, before step 1 (loaded from /
    saved to the on-disk vector cache, so a second run on the same data encodes nothing), so
    steps pay only for the estimator itself. Needs a frozen encoder (the bayes estimator, or the
    trunk with freeze_encoder: true)."""

    # --- loss -------------------------------------------------------------------------------
    learning_rate: float = Field(1e-4, gt=0.0)
    """AdamW learning rate."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, ge=0.0)
    """Gradient-norm clip per optimizer step (0 = off)."""
    epsilon: float = Field(0.2, ge=0.0, lt=1.0)
    """Lower clip range of the ratio: clip(ratio, 1 - epsilon, 1 + epsilon_high)."""
    epsilon_high: float | None = Field(None, ge=0.0)
    """Upper clip range (DAPO clip-higher uses 0.28); None = epsilon."""
    loss_type: Literal[LOSS_TYPES] = "dapo"  # type: ignore[valid-type]
    """Loss aggregation: grpo (seq-mean), dapo/bnpo (token-mean), dr_grpo (sum / (B * max_len))."""
    scale_rewards: Literal[SCALE_REWARDS] = "group"  # type: ignore[valid-type]
    """Advantage scaling: group (GRPO, divide by the group's std), batch, none (Dr. GRPO)."""
    beta: float = Field(0.0, ge=0.0)
    """KL coefficient to the initial (reference) policy, k3 estimator; 0 = no reference model."""
    num_iterations: int = Field(1, ge=1)
    """Optimisation epochs over each rollout batch (PPO epochs; TRL's mu)."""
    steps_per_generation: int = Field(1, ge=1)
    """Mini-batches (optimizer steps) per rollout batch and epoch."""
    mask_truncated_completions: bool = False
    """Exclude responses that hit max_completion_length without EOS from the loss."""

    # --- DAPO -------------------------------------------------------------------------------
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: after the rollout drop zero-variance groups and keep generating
    until the batch holds batch_size informative groups (with any selector in front of it)."""
    max_num_gen_batches: int = Field(4, ge=1)
    """Dynamic sampling gives up after this many generation batches per step and trains on
    the informative groups it has (with a warning) — it never crashes."""
    overlong_buffer_len: int = Field(0, ge=0)
    """DAPO soft overlong punishment: the last this-many tokens before max_completion_length
    are penalised linearly (0 = off)."""
    overlong_penalty_factor: float = Field(1.0, ge=0.0)
    """Scale of the overlong penalty (reaches -factor at max_completion_length)."""

    # --- faults -----------------------------------------------------------------------------
    max_reward_error_rate: float = Field(0.5, ge=0.0, le=1.0)
    """A group whose reward function raised or returned NaN/inf is dropped and counted
    (reward/errors); the run stops with an error only when more than this share of a step's
    groups fail."""

    # --- evaluation, logging, checkpoints ---------------------------------------------------
    eval_steps: int = Field(10, ge=0)
    """Held-out evaluation every this many steps (and at step 0 and the last step); 0 = only
    at the start and the end."""
    eval_k: int = Field(8, ge=1)
    """Samples per held-out prompt: Avg@k and pass@k."""
    eval_temperature: float = Field(1.0, ge=0.0)
    """Sampling temperature for the held-out evaluation."""
    output_dir: str = ""
    """Run directory; empty = runs/train-<timestamp>."""
    save_steps: int = Field(50, ge=0)
    """Checkpoint every this many steps (and at the end); 0 = only at the end."""
    save_total_limit: int = Field(2, ge=0)
    """Checkpoints kept (older ones deleted); 0 = keep all."""
    progress: bool = True
    """Show a progress bar (step, reward, effective rate, ETA) on stderr."""

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, values: Any) -> Any:
        """selector_options and estimator_options checked against their own models at load, so a
        typo fails in a second instead of after the model has loaded."""
        if not isinstance(values, dict):
            return values
        selector = values.get("selector", "uniform")
        spec = selector_spec(str(selector), key="config selector")
        options, estimator = (values.get(key) or {} for key in ("selector_options", "estimator_options"))
        for key, value in (("selector_options", options), ("estimator_options", estimator)):
            if not isinstance(value, dict):
                raise DepoError(f"config {key}: expected a mapping, got {value!r}")
        typed = selector_options(selector, options)
        values = {**values, "selector_options": typed.model_dump(mode="json", exclude_unset=True)}
        if estimator:
            kind = spec.estimator or "trunk"
            checked = estimator_config({"seed": values.get("seed", 0), **estimator}, default_kind=kind, what="config estimator_options")
            values["estimator_options"] = {k: getattr(checked, k) for k in estimator}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        uses_estimator = SELECTORS[self.selector].uses_estimator
        if not uses_estimator and (self.estimator_options or self.estimator_init):
            raise ValueError(f"estimator_options and estimator_init need selector depo or depo-paper, not {self.selector}")
        if self.estimator_init and not Path(self.estimator_init).is_dir():
            raise ValueError(f"estimator_init: no such directory {self.estimator_init}")
        kind = self.estimator_options.get("kind", SELECTORS[self.selector].estimator)
        frozen = self.estimator_init or kind == "bayes" or self.estimator_options.get("freeze_encoder")
        if self.estimator_precompute and not (uses_estimator and frozen):
            raise ValueError("estimator_precompute needs a frozen encoder: the bayes estimator, or freeze_encoder: true")
        if 0 < self.max_scan < self.batch_size:
            raise ValueError(f"max_scan ({self.max_scan}) must be 0 (8 x batch_size) or >= batch_size ({self.batch_size})")
        if self.steps_per_generation > self.batch_size:
            raise ValueError(f"steps_per_generation ({self.steps_per_generation}) must be <= batch_size ({self.batch_size})")
        if self.overlong_buffer_len >= self.max_completion_length:
            raise ValueError(
                f"overlong_buffer_len must be < max_completion_length={self.max_completion_length}, got {self.overlong_buffer_len}"
            )
        return self


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                locked: dict[str, str] | None = None) -> TrainConfig:
    """TrainConfig from an optional YAML file plus `key=value` overrides, validated."""
    return configuration.load(TrainConfig, path, overrides or [], locked=locked)
