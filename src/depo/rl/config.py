"""Training configuration: one dataclass whose field docs are the user documentation.

Field names follow TRL's `GRPOConfig` wherever TRL has the knob (`num_generations`,
`learning_rate`, `epsilon`, `epsilon_high`, `loss_type`, `beta`, `num_iterations`,
`steps_per_generation`, `temperature`, `top_p`, `max_completion_length`, `scale_rewards`,
`mask_truncated_completions`, `max_grad_norm`, `save_total_limit`), and verl's DAPO recipe for
the rest (`dynamic_sampling`, `max_num_gen_batches`, `overlong_buffer_len`,
`overlong_penalty_factor`). A config is loaded from YAML plus `key=value` overrides and
validated at load: unknown keys, wrong types and invalid values are a `DepoError` naming the
valid choices, never a traceback halfway through a run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depo.errors import DepoError
from depo.rl.losses import LOSS_TYPES, SCALE_REWARDS
from depo.yaml_file import read_yaml_mapping

SELECTORS = ("uniform", "depo", "depo-paper", "history")


@dataclass
class TrainConfig:
    # --- model and data -------------------------------------------------------------------
    model: str = "tiny"
    """Policy: "tiny" (the embedded tiny Qwen2 policy for `preset`, built and cached on first
    use) or a local Hugging Face causal-LM directory."""
    preset: str = "mixed"
    """Task preset of reasoning-gym prompts: mixed, easy or hard."""
    train_size: int = 20000
    """Prompts in the procedurally generated training pool (one epoch = this many prompts)."""
    heldout_size: int = 200
    """Prompts in the fixed held-out set (disjoint seeds from the training pool)."""
    seed: int = 0
    """Seed for data order, sampling, selection and initialisation; same seed -> same run on CPU."""
    device: str = "cpu"
    """Torch device for the policy: cpu, cuda, cuda:1, ..."""
    num_threads: int = 0
    """torch.set_num_threads for the run; 0 leaves torch's default."""

    # --- batch and rollout ----------------------------------------------------------------
    batch_size: int = 32
    """Prompts per training step (each rolled out num_generations times)."""
    num_generations: int = 8
    """G: responses sampled per prompt (the GRPO group size)."""
    max_steps: int = 100
    """Training steps (one step = one batch rolled out and trained on)."""
    temperature: float = 1.0
    """Sampling temperature; log-probs are those of the tempered distribution."""
    top_p: float = 1.0
    """Nucleus sampling mass (1.0 = off)."""
    max_completion_length: int = 16
    """Maximum generated tokens per response."""
    generation_batch_size: int = 1024
    """Sequences sampled together in one KV-cache loop (memory knob, not a training knob)."""

    # --- selection (before the rollout) ---------------------------------------------------
    selector: str = "uniform"
    """Which prompts get rolled out: uniform (GRPO, keep all), depo (estimator, our default
    mode), depo-paper (the paper's warm-up + fixed window), history (GRESO-like)."""
    selector_options: dict = field(default_factory=dict)
    """Extra options for the selector (see depo.selection.make_selector); set one with
    --set selector_options.NAME=VALUE."""
    max_scan: int = 0
    """Bound on candidates scanned per step when filling a batch; 0 = 8 * batch_size."""
    estimator_options: dict = field(default_factory=dict)
    """Difficulty-estimator settings for depo / depo-paper (fields of
    depo.estimator.EstimatorConfig, e.g. freeze_encoder: true for the fast cached-encoder mode);
    its seed defaults to this run's seed."""
    estimator_init: str = ""
    """Directory of an estimator trained beforehand (OnlineEstimator.save, e.g. by
    `depo bench estimator --save DIR`) to start DEPO from instead of an untrained one."""
    estimator_precompute: bool = False
    """Encode the whole training pool with the frozen encoder once, before step 1 (loaded from /
    saved to the on-disk vector cache, so a second run on the same data encodes nothing), so
    steps pay only for the estimator's trunk. Needs estimator_options.freeze_encoder: true."""

    # --- loss -------------------------------------------------------------------------------
    learning_rate: float = 1e-4
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip per optimizer step (0 = off)."""
    epsilon: float = 0.2
    """Lower clip range of the ratio: clip(ratio, 1 - epsilon, 1 + epsilon_high)."""
    epsilon_high: float | None = None
    """Upper clip range (DAPO clip-higher uses 0.28); None = epsilon."""
    loss_type: str = "dapo"
    """Loss aggregation: grpo (seq-mean), dapo/bnpo (token-mean), dr_grpo (sum / (B * max_len))."""
    scale_rewards: str = "group"
    """Advantage scaling: group (GRPO, divide by the group's std), batch, none (Dr. GRPO)."""
    beta: float = 0.0
    """KL coefficient to the initial (reference) policy, k3 estimator; 0 = no reference model."""
    num_iterations: int = 1
    """Optimisation epochs over each rollout batch (PPO epochs; TRL's mu)."""
    steps_per_generation: int = 1
    """Mini-batches (optimizer steps) per rollout batch and epoch."""
    mask_truncated_completions: bool = False
    """Exclude responses that hit max_completion_length without EOS from the loss."""

    # --- DAPO -------------------------------------------------------------------------------
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: after the rollout drop zero-variance groups and keep generating
    until the batch holds batch_size informative groups."""
    max_num_gen_batches: int = 4
    """Dynamic sampling gives up after this many generation batches per step and trains on
    the informative groups it has (with a warning) — it never crashes."""
    overlong_buffer_len: int = 0
    """DAPO soft overlong punishment: the last this-many tokens before max_completion_length
    are penalised linearly (0 = off)."""
    overlong_penalty_factor: float = 1.0
    """Scale of the overlong penalty (reaches -factor at max_completion_length)."""

    # --- faults -----------------------------------------------------------------------------
    max_reward_error_rate: float = 0.5
    """A group whose reward function raised or returned NaN/inf is dropped and counted
    (reward/errors); the run stops with an error only when more than this share of a step's
    groups fail."""

    # --- evaluation, logging, checkpoints ---------------------------------------------------
    eval_every: int = 10
    """Held-out evaluation every this many steps (and at step 0 and the last step); 0 = only
    at the start and the end."""
    eval_k: int = 8
    """Samples per held-out prompt: Avg@k and pass@k."""
    eval_temperature: float = 1.0
    """Sampling temperature for the held-out evaluation."""
    output_dir: str = ""
    """Run directory; empty = runs/train-<timestamp>."""
    save_every: int = 50
    """Checkpoint every this many steps (and at the end); 0 = only at the end."""
    save_total_limit: int = 2
    """Checkpoints kept (older ones deleted); 0 = keep all."""
    progress: bool = True
    """Show a progress bar (step, reward, effective rate, ETA) on stderr."""

    @property
    def scan_bound(self) -> int:
        return self.max_scan if self.max_scan > 0 else 8 * self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Value converted to the field's type, or DepoError saying what was expected."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(name, value, options[0])
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return value
        raise DepoError(f"config {name}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise DepoError(f"config {name}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise DepoError(f"config {name}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise DepoError(f"config {name}: expected a number, got {value!r}") from None
        else:
            raise DepoError(f"config {name}: expected a number, got {value!r}")
        if not math.isfinite(out):
            raise DepoError(f"config {name}: expected a finite number, got {value!r}")
        return out
    if annotation is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise DepoError(f"config {name}: expected a string, got {value!r}")
    if annotation is dict:
        if isinstance(value, dict):
            return dict(value)
        raise DepoError(f"config {name}: expected a mapping, got {value!r}")
    raise TypeError(f"unsupported config field type {annotation!r}")


def _check(cfg: TrainConfig) -> None:
    """Value checks that types alone cannot express."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise DepoError(f"config {message}")

    need(cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}")
    need(cfg.num_generations >= 2, f"num_generations must be >= 2 (GRPO needs a group), got {cfg.num_generations}")
    need(cfg.max_steps >= 0, f"max_steps must be >= 0, got {cfg.max_steps}")
    need(cfg.train_size >= 1, f"train_size must be >= 1, got {cfg.train_size}")
    need(cfg.heldout_size >= 0, f"heldout_size must be >= 0, got {cfg.heldout_size}")
    need(cfg.temperature > 0, f"temperature must be > 0, got {cfg.temperature}")
    need(cfg.eval_temperature >= 0, f"eval_temperature must be >= 0, got {cfg.eval_temperature}")
    need(0.0 < cfg.top_p <= 1.0, f"top_p must be in (0, 1], got {cfg.top_p}")
    need(cfg.max_completion_length >= 1, f"max_completion_length must be >= 1, got {cfg.max_completion_length}")
    need(cfg.generation_batch_size >= 1, f"generation_batch_size must be >= 1, got {cfg.generation_batch_size}")
    need(cfg.selector in SELECTORS, f"selector must be one of {', '.join(SELECTORS)}; got {cfg.selector!r}")
    need(cfg.max_scan >= 0, f"max_scan must be >= 0, got {cfg.max_scan}")
    need(cfg.learning_rate > 0, f"learning_rate must be > 0, got {cfg.learning_rate}")
    need(cfg.weight_decay >= 0, f"weight_decay must be >= 0, got {cfg.weight_decay}")
    need(cfg.max_grad_norm >= 0, f"max_grad_norm must be >= 0, got {cfg.max_grad_norm}")
    need(0.0 <= cfg.epsilon < 1.0, f"epsilon must be in [0, 1), got {cfg.epsilon}")
    need(cfg.epsilon_high is None or cfg.epsilon_high >= 0, f"epsilon_high must be >= 0, got {cfg.epsilon_high}")
    need(cfg.loss_type in LOSS_TYPES, f"loss_type must be one of {', '.join(LOSS_TYPES)}; got {cfg.loss_type!r}")
    need(
        cfg.scale_rewards in SCALE_REWARDS,
        f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}; got {cfg.scale_rewards!r}",
    )
    need(cfg.beta >= 0, f"beta must be >= 0, got {cfg.beta}")
    need(cfg.num_iterations >= 1, f"num_iterations must be >= 1, got {cfg.num_iterations}")
    need(cfg.steps_per_generation >= 1, f"steps_per_generation must be >= 1, got {cfg.steps_per_generation}")
    need(
        cfg.steps_per_generation <= cfg.batch_size,
        f"steps_per_generation ({cfg.steps_per_generation}) must be <= batch_size ({cfg.batch_size})",
    )
    need(cfg.max_num_gen_batches >= 1, f"max_num_gen_batches must be >= 1, got {cfg.max_num_gen_batches}")
    need(
        0 <= cfg.overlong_buffer_len < cfg.max_completion_length,
        f"overlong_buffer_len must be in [0, max_completion_length={cfg.max_completion_length}), "
        f"got {cfg.overlong_buffer_len}",
    )
    need(cfg.overlong_penalty_factor >= 0, f"overlong_penalty_factor must be >= 0, got {cfg.overlong_penalty_factor}")
    need(
        0.0 <= cfg.max_reward_error_rate <= 1.0,
        f"max_reward_error_rate must be in [0, 1], got {cfg.max_reward_error_rate}",
    )
    need(cfg.eval_every >= 0, f"eval_every must be >= 0, got {cfg.eval_every}")
    need(cfg.eval_k >= 1, f"eval_k must be >= 1, got {cfg.eval_k}")
    need(cfg.save_every >= 0, f"save_every must be >= 0, got {cfg.save_every}")
    need(cfg.save_total_limit >= 0, f"save_total_limit must be >= 0, got {cfg.save_total_limit}")
    need(cfg.num_threads >= 0, f"num_threads must be >= 0, got {cfg.num_threads}")
    uses_estimator = cfg.selector in ("depo", "depo-paper")
    need(
        uses_estimator or not (cfg.estimator_options or cfg.estimator_init),
        f"estimator_options and estimator_init need selector depo or depo-paper, not {cfg.selector}",
    )
    need(
        not cfg.estimator_init or Path(cfg.estimator_init).is_dir(),
        f"estimator_init: no such directory {cfg.estimator_init}",
    )
    need(
        not cfg.estimator_precompute or (uses_estimator and (cfg.estimator_init or cfg.estimator_options.get("freeze_encoder"))),
        "estimator_precompute needs selector depo or depo-paper with estimator_options.freeze_encoder: true",
    )


def _printable(key: object) -> str:
    """A key as it reads in a one-line error: repr() when it holds control characters."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _typed(field: str, options: dict, hints: dict[str, Any], owner: str) -> dict:
    """`options` with each value coerced to its key's annotated type; unknown keys are a
    DepoError naming the allowed ones."""
    unknown = sorted(_printable(k) for k in options if k not in hints)
    if unknown:
        raise DepoError(
            f"unknown option(s) for {owner} in {field}: {', '.join(unknown)}; allowed: {', '.join(sorted(hints)) or 'none'}"
        )
    return {k: _coerce(f"{field}.{k}", v, hints[k]) for k, v in options.items()}


def _check_options(cfg: TrainConfig) -> None:
    """selector_options and estimator_options: known keys, typed values, valid settings.

    Checked at load by building the selector's settings (with a placeholder estimator) and the
    estimator's config, so a typo fails in a second instead of after the model has loaded.
    """
    from depo.selection import make_selector

    opts = cfg.selector_options
    misplaced = sorted(k for k in ("estimator_config", "estimator_init") if k in opts)
    if misplaced:
        raise DepoError(f"config selector_options.{misplaced[0]}: use the top-level keys estimator_options / estimator_init")
    if cfg.selector in ("depo", "depo-paper"):
        from depo.selection.depo import DEPOConfig

        hints = {k: v for k, v in typing.get_type_hints(DEPOConfig).items() if k not in ("mode", "group_size")}
    elif cfg.selector == "history":
        from depo.selection.history import History

        hints = {k: v for k, v in typing.get_type_hints(History.__init__).items() if k not in ("seed", "return")}
    else:
        hints = {}
    cfg.selector_options = _typed("selector_options", opts, hints, f"selector {cfg.selector!r}")
    make_selector(cfg.selector, group_size=cfg.num_generations, seed=cfg.seed,
                  options=dict(cfg.selector_options), estimator=object())
    if cfg.estimator_options:
        from depo.estimator.online import EstimatorConfig

        hints = typing.get_type_hints(EstimatorConfig)
        cfg.estimator_options = _typed("estimator_options", cfg.estimator_options, hints, "the estimator")
        EstimatorConfig.from_dict({"seed": cfg.seed, **cfg.estimator_options}).validate()


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from a plain mapping (YAML contents)."""
    if not isinstance(values, dict):
        raise DepoError(f"config must be a mapping of key: value, got {type(values).__name__}")
    valid = field_names()
    unknown = sorted(_printable(k) for k in values if k not in valid)
    if unknown:
        raise DepoError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")
    hints = typing.get_type_hints(TrainConfig)
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    cfg = TrainConfig(**kwargs)
    _check(cfg)
    _check_options(cfg)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` -> (key, YAML-parsed value); `a.b=value` sets key b of mapping field a."""
    import yaml

    if "=" not in text:
        raise DepoError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise DepoError(f"--set expects key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = dict(values)
    for text in overrides:
        key, value = parse_override(text)
        if "." in key:
            head, sub = key.split(".", 1)
            if head not in field_names():
                raise DepoError(f"unknown config key {_printable(head)}; valid keys: {', '.join(field_names())}")
            if typing.get_type_hints(TrainConfig)[head] is not dict:
                raise DepoError(f"config {head} is not a mapping; set it with {head}=VALUE")
            current = out.get(head) or {}
            if not isinstance(current, dict):
                raise DepoError(f"config {head}: expected a mapping, got {current!r}")
            inner = dict(current)
            inner[sub] = value
            out[head] = inner
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "config")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """TrainConfig from an optional YAML file plus `key=value` overrides, validated."""
    values = read_yaml(path) if path is not None else {}
    return from_dict(apply_overrides(values, overrides or []))


def dump_config(cfg: TrainConfig, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
