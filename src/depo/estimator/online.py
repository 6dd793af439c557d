"""The online difficulty estimator: predict pass rates before the rollout, learn from the rollout after.

SPEC.md section 2: per RL step the estimator scores candidate prompts (`predict`), and after the
rollout takes one AdamW step on that step's groups (`update`) with labels y = mean group reward and
t = the policy's clipped confidence. Learning rate 2e-4 for trunk and heads, 0.2x for the encoder,
gradient-norm clip 1.0. Weights and optimizer are checkpointed with the policy (`state_dict`), and
`save`/`load` write a self-contained Hugging Face style directory.

Beyond the paper (each off by default, so the defaults are the paper's):
- `updates_per_step=k` and `replay_size=n`: k optimizer steps per RL step, each on this step's
  groups plus up to n groups from earlier steps (a small replay buffer of recent outcomes);
  `update_batch_size=b` makes each of those steps use a random sample of the buffer instead
  (this step's groups always included, b prompts in all), which keeps the update cheap.
- `freeze_encoder=True`: the encoder never trains, so each prompt's pooled vector is computed once
  and cached by a hash of its text; only trunk and heads train (much cheaper per step).
- `train_top_layers=n`: only the top n encoder layers train.
- `fit`: offline training on (text, pass rate) pairs (BCE + ranking, no distill term), for warm
  starts, the real-data benchmark and routing.
"""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from depo.errors import DepoError
from depo.estimator.cache import FeatureCache
from depo.estimator.cache import text_key as text_key  # re-exported: callers key caches by it
from depo.estimator.encoder import POOLINGS, TextEncoder
from depo.estimator.losses import LossWeights, distill_target, estimator_loss
from depo.estimator.model import DualHead
from depo.selection.base import GroupOutcome

CONFIG_FILE = "estimator_config.json"
HEAD_FILE = "head.safetensors"
TRAIN_STATE_FILE = "train_state.pt"
ENCODER_DIR = "encoder"
FORMAT = "depo-estimator/1"

# Config fields that fix the shapes of the weights: a state saved under other values cannot load.
_ARCH_FIELDS = ("pooling", "width", "feature_width", "num_blocks", "freeze_encoder", "train_top_layers")


@dataclass
class EstimatorConfig:
    """Estimator settings; defaults are the paper's (SPEC.md section 2) unless marked 'ours'."""

    encoder_path: str | None = None
    """Local Hugging Face encoder directory; None = the embedded all-MiniLM-L6-v2."""
    pooling: str = "cls"
    max_length: int = 512
    width: int = 1024
    feature_width: int = 512
    num_blocks: int = 2
    dropout: float = 0.1
    lr: float = 2e-4
    encoder_lr_scale: float = 0.2
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lambda_d: float = 0.5
    lambda_r: float = 3.0
    delta: float = 0.05
    margin: float = 0.5
    updates_per_step: int = 1
    """ours: optimizer steps per `update` call (paper: 1)."""
    replay_size: int = 0
    """ours: recent outcomes from earlier steps mixed into each update (paper: 0)."""
    update_batch_size: int = 0
    """ours: with a replay buffer, each optimizer step uses this step's groups plus a random sample
    of the replay up to this many prompts in all (0 = the whole buffer every time). The trunk's
    cost and the ranking loss's pairs grow with the batch (pairs quadratically), so a sample keeps
    the update cheap while the buffer still remembers recent steps."""
    freeze_encoder: bool = False
    """ours: train only trunk and heads, caching each prompt's pooled encoder vector."""
    train_top_layers: int | None = None
    """ours: train only the top n encoder layers (None = all)."""
    cache_lower_layers: bool = True
    """ours: with train_top_layers, run the frozen lower layers once per prompt and cache their output."""
    cache_max_mb: float | None = 2048.0
    """Memory budget of the feature cache (least recently used entries dropped first; None = no limit)."""
    predict_batch_size: int = 32
    """Texts per encoder forward (length-sorted chunks, for predict and update alike)."""
    device: str = "cpu"
    """"cpu", "cuda", "cuda:1", or "auto" (cuda when available)."""
    seed: int = 0

    def validate(self) -> None:
        """Raise DepoError with one clear line for any setting that cannot work."""
        if self.pooling not in POOLINGS:
            raise DepoError(f"estimator pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        positive_ints = ("max_length", "width", "feature_width", "updates_per_step", "predict_batch_size")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise DepoError(f"estimator {name} must be >= 1, got {getattr(self, name)}")
        if self.num_blocks < 0 or self.replay_size < 0 or self.update_batch_size < 0:
            raise DepoError("estimator num_blocks, replay_size and update_batch_size must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise DepoError(f"estimator dropout must be in [0, 1), got {self.dropout}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise DepoError(f"estimator {name} must be > 0, got {getattr(self, name)}")
        for name in ("encoder_lr_scale", "weight_decay", "lambda_d", "lambda_r", "delta", "margin"):
            if getattr(self, name) < 0:
                raise DepoError(f"estimator {name} must be >= 0, got {getattr(self, name)}")
        if self.train_top_layers is not None and self.train_top_layers < 0:
            raise DepoError(f"estimator train_top_layers must be >= 0, got {self.train_top_layers}")
        if self.freeze_encoder and self.train_top_layers is not None:
            raise DepoError("estimator: choose freeze_encoder or train_top_layers, not both")
        if self.cache_max_mb is not None and self.cache_max_mb <= 0:
            raise DepoError(f"estimator cache_max_mb must be > 0 or None, got {self.cache_max_mb}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EstimatorConfig:
        """Build from a mapping (e.g. YAML/JSON); unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DepoError(f"unknown estimator option(s): {', '.join(unknown)}")
        return cls(**data)

    @property
    def weights(self) -> LossWeights:
        return LossWeights(self.lambda_d, self.lambda_r, self.delta, self.margin)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DepoError(f"estimator device {name!r} is not a torch device") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DepoError(f"estimator device {name!r} requested but CUDA is not available")
    return device


def _check_labels(values: np.ndarray, what: str) -> None:
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0):
        raise DepoError(f"estimator {what} must be pass rates in [0, 1] (mean rewards of binary or [0,1] rewards)")


class OnlineEstimator:
    """Encoder + trunk + dual heads, with the online update rule and offline `fit` (see module doc)."""

    def __init__(self, config: EstimatorConfig | None = None):
        self.config = config if config is not None else EstimatorConfig()
        self.config.validate()
        self.device = _resolve_device(self.config.device)
        cfg = self.config
        self.encoder = TextEncoder(cfg.encoder_path, pooling=cfg.pooling, max_length=cfg.max_length)
        self.encoder.set_trainable(freeze=cfg.freeze_encoder, top_layers=cfg.train_top_layers)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.head = DualHead(
                self.encoder.hidden_size,
                width=cfg.width,
                feature_width=cfg.feature_width,
                num_blocks=cfg.num_blocks,
                dropout=cfg.dropout,
            )
        self.encoder.to(self.device)
        self.head.to(self.device)
        self.optimizer = self._make_optimizer()
        self.steps = 0
        self.replay: deque[GroupOutcome] = deque(maxlen=cfg.replay_size)
        max_bytes = None if cfg.cache_max_mb is None else int(cfg.cache_max_mb * 2**20)
        self.cache = FeatureCache(max_bytes)

    # ------------------------------------------------------------------ parameters
    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters()) + self.encoder_parameters()

    def _make_optimizer(self) -> torch.optim.AdamW:
        """AdamW; trunk and heads at lr, the encoder's trainable weights at lr * encoder_lr_scale."""
        cfg = self.config
        groups: list[dict[str, Any]] = [{"params": list(self.head.parameters()), "lr": cfg.lr}]
        enc = self.encoder_parameters()
        if enc:
            groups.append({"params": enc, "lr": cfg.lr * cfg.encoder_lr_scale})
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    @property
    def encoder_trainable(self) -> bool:
        return bool(self.encoder_parameters())

    # ------------------------------------------------------------------ encoding
    @property
    def feature_mode(self) -> str:
        """What the cache holds: "pooled" (frozen encoder: final vectors), "lower" (top-n training:
        the frozen lower layers' hidden states) or "none" (full fine-tuning: nothing is cacheable)."""
        cfg = self.config
        if cfg.freeze_encoder or cfg.train_top_layers == 0:
            return "pooled"
        if cfg.train_top_layers is not None and cfg.cache_lower_layers:
            return "lower"
        return "none"

    def _batched(self, texts: Sequence[str], fn: Callable[[list[str]], torch.Tensor], *, train: bool = False) -> torch.Tensor:
        """fn over length-sorted chunks (far less padding than one batch), results in input order.

        Eval mode without gradients for prediction; with `train` the chunks keep their graphs
        (one backward later covers them all, so the ranking loss still sees every pair).
        """
        was_training = self.encoder.training
        self.encoder.train(train)
        try:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            bs = self.config.predict_batch_size
            with torch.set_grad_enabled(train and torch.is_grad_enabled()):
                parts = [fn([texts[i] for i in order[s : s + bs]]).float() for s in range(0, len(order), bs)]
        finally:
            self.encoder.train(was_training)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(parts)[inverse.to(self.device)]

    def _encode_full(self, texts: list[str]) -> torch.Tensor:
        return self.encoder.encode(texts, self.device)

    def _compute_lower(self, texts: list[str]) -> list[torch.Tensor]:
        """Per text, the frozen lower layers' hidden states at its real (non-padding) tokens."""
        out: list[torch.Tensor] = []
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                bs = self.config.predict_batch_size
                for start in range(0, len(texts), bs):
                    batch = self.encoder.tokenize(texts[start : start + bs])
                    mask = batch["attention_mask"].to(self.device)
                    states = self.encoder.lower_states(batch["input_ids"].to(self.device), mask)
                    out.extend(states[b][mask[b].bool()] for b in range(states.shape[0]))
        finally:
            self.encoder.train(was_training)
        return out

    def _encode_from_lower(self, texts: list[str]) -> torch.Tensor:
        """Pooled vectors running only the top n layers on cached lower-layer states."""
        cached = self.cache.lookup(texts, self._compute_lower)
        batch = self.encoder.tokenize(texts)
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        states = torch.zeros(*ids.shape, self.encoder.hidden_size, device=self.device, dtype=cached[0].dtype)
        for b, value in enumerate(cached):
            states[b, mask[b].bool()] = value.to(self.device)
        return self.encoder.forward_from_lower(ids, mask, states)

    def _pooled(self, texts: Sequence[str], *, train: bool) -> torch.Tensor:
        texts = list(texts)
        mode = self.feature_mode
        if mode == "pooled":
            vectors = self.cache.lookup(texts, lambda miss: list(self._batched(miss, self._encode_full)))
            return torch.stack(vectors).to(self.device)
        fn = self._encode_from_lower if mode == "lower" else self._encode_full
        return self._batched(texts, fn, train=train)

    def cache_stats(self) -> dict[str, float]:
        return self.cache.stats()

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def predict_logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(score logits, distill logits) for each text; eval mode, no gradients."""
        texts = list(texts)
        if not texts:
            return np.zeros(0), np.zeros(0)
        self.head.eval()
        pooled = self._pooled(texts, train=False)
        scores, distills = [], []
        bs = self.config.predict_batch_size
        for start in range(0, len(texts), bs):
            s, d = self.head(pooled[start : start + bs])
            scores.append(s.float().cpu())
            distills.append(d.float().cpu())
        return torch.cat(scores).numpy().astype(np.float64), torch.cat(distills).numpy().astype(np.float64)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted pass rates sigmoid(s) in (0, 1), one per text."""
        scores, _ = self.predict_logits(texts)
        return 1.0 / (1.0 + np.exp(-scores))

    def predict_confidence(self, texts: Sequence[str]) -> np.ndarray:
        """The distill head's sigmoid(d): predicted policy confidence t (SPEC.md section 2)."""
        _, distills = self.predict_logits(texts)
        return 1.0 / (1.0 + np.exp(-distills))

    # ------------------------------------------------------------------ training
    def _step(
        self,
        texts: Sequence[str],
        y: torch.Tensor,
        t: torch.Tensor | None,
        t_mask: torch.Tensor | None,
        pooled: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One AdamW step on one batch; returns the loss parts measured before the step."""
        self.head.train()
        if pooled is None:
            pooled = self._pooled(texts, train=True)
        s, d = self.head(pooled)
        loss, parts = estimator_loss(s, d, y, t, t_mask, self.config.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), self.config.grad_clip)
        self.optimizer.step()
        parts["grad_norm"] = float(grad_norm)
        return parts

    def _update_sample(self, fresh: int, total: int, k: int) -> list[int] | None:
        """Indices of one optimizer step's batch: every fresh group (the first `fresh`) plus a random
        sample of the replay up to `update_batch_size` in all; None = the whole batch. The sample's
        RNG is seeded by (seed, update count, k), so a resumed run draws the same batches."""
        size = self.config.update_batch_size
        if not size or total <= max(size, fresh):
            return None
        rng = np.random.default_rng([self.config.seed, self.steps, k])
        extra = rng.choice(np.arange(fresh, total), size=size - fresh, replace=False) if size > fresh else []
        return list(range(fresh)) + sorted(int(i) for i in extra)

    def update(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        """One online step (k optimizer steps) on this RL step's groups (+ replay); returns metrics.

        Labels: y = mean group reward; t = clip(exp(mean of the responses' mean token log-probs))
        where the outcome carries log-probs, otherwise that prompt has no distill term.
        """
        outcomes = list(outcomes)
        if not outcomes:
            return {}
        start = time.perf_counter()
        batch = outcomes + list(self.replay)
        texts = [o.text for o in batch]
        y_np = np.array([o.mean_reward for o in batch], dtype=np.float64)
        _check_labels(y_np, "labels (mean group rewards)")
        targets = [distill_target(o.mean_logprobs) for o in batch]
        y = torch.tensor(y_np, dtype=torch.float32, device=self.device)
        mask = torch.tensor([v is not None for v in targets], dtype=torch.bool, device=self.device)
        t = None
        if bool(mask.any()):
            t = torch.tensor([v if v is not None else 0.5 for v in targets], dtype=torch.float32, device=self.device)
        first: dict[str, float] = {}
        used = len(batch)  # prompts per optimizer step
        for k in range(self.config.updates_per_step):
            idx = self._update_sample(len(outcomes), len(batch), k)
            used = len(batch) if idx is None else len(idx)
            if idx is None:
                parts = self._step(texts, y, t, mask if t is not None else None)
            else:
                ix = torch.as_tensor(idx, device=self.device)
                parts = self._step(
                    [texts[i] for i in idx], y[ix], t[ix] if t is not None else None, mask[ix] if t is not None else None
                )
            if k == 0:
                first = parts
        self.steps += 1
        self.replay.extend(outcomes)
        metrics = {f"estimator/{key}": value for key, value in first.items()}
        metrics["estimator/batch_size"] = float(len(batch))
        if self.config.update_batch_size:
            metrics["estimator/update_batch_size"] = float(used)
        metrics["estimator/distill_n"] = float(mask.sum())
        metrics["estimator/target_mean"] = float(y_np[: len(outcomes)].mean())
        if self.feature_mode != "none":
            metrics.update(self.cache_stats())
        metrics["time/estimator_update_s"] = time.perf_counter() - start
        return metrics

    def fit(
        self,
        texts: Sequence[str],
        targets: Sequence[float],
        *,
        epochs: int,
        batch_size: int = 32,
        val: tuple[Sequence[str], Sequence[float]] | None = None,
        progress: bool = True,
        seed: int | None = None,
        callback: Callable[[int, dict[str, float]], dict[str, float] | None] | None = None,
    ) -> list[dict[str, float]]:
        """Offline training on (text, pass rate) pairs: BCE + ranking over shuffled minibatches.

        No distill term (offline data has no log-probs). Deterministic given `seed` (default: the
        config's seed): shuffling and dropout use their own RNG, the global one is left untouched.
        With a frozen encoder every text is encoded once up front, so epochs cost only the head;
        with `train_top_layers=n` the lower layers run once per text (cached) and epochs cost
        the top n layers and the head.
        Returns one metrics dict per epoch (train loss; val_mae/val_bce/val_spearman when `val`
        is given; plus whatever `callback(epoch, metrics)` returns).
        """
        texts = list(texts)
        y_all = np.asarray(targets, dtype=np.float64)
        if len(texts) != len(y_all):
            raise DepoError(f"fit: {len(texts)} texts but {len(y_all)} targets")
        if not texts:
            raise DepoError("fit: no training texts")
        if epochs < 1 or batch_size < 1:
            raise DepoError("fit: epochs and batch_size must be >= 1")
        _check_labels(y_all, "fit targets")
        if val is not None:
            _check_labels(np.asarray(val[1], dtype=np.float64), "fit val targets")
        from tqdm.auto import tqdm

        seed = self.config.seed if seed is None else seed
        history: list[dict[str, float]] = []
        cuda_ids = []
        if self.device.type == "cuda":
            cuda_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=cuda_ids):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            pooled_all = self._pooled(texts, train=False) if self.feature_mode == "pooled" else None
            y_t = torch.tensor(y_all, dtype=torch.float32, device=self.device)
            for epoch in range(1, epochs + 1):
                perm = torch.randperm(len(texts), generator=gen).tolist()
                batches = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
                sums: dict[str, float] = {}
                bar = tqdm(batches, desc=f"estimator fit {epoch}/{epochs}", disable=not progress, leave=False)
                for idx in bar:
                    pooled = pooled_all[idx] if pooled_all is not None else None
                    parts = self._step([texts[i] for i in idx], y_t[idx], None, None, pooled=pooled)
                    for key, value in parts.items():
                        sums[key] = sums.get(key, 0.0) + value * len(idx)
                    bar.set_postfix(loss=f"{parts['loss']:.4f}")
                metrics = {"epoch": float(epoch)}
                metrics.update({f"train_{k}": v / len(texts) for k, v in sums.items()})
                if val is not None:
                    metrics.update(self.evaluate(val[0], val[1], prefix="val_"))
                if callback is not None:
                    extra = callback(epoch, metrics)
                    if extra:
                        metrics.update(extra)
                history.append(metrics)
        return history

    def evaluate(self, texts: Sequence[str], targets: Sequence[float], prefix: str = "") -> dict[str, float]:
        """Calibration MAE, BCE and Spearman rank correlation of predictions against pass rates."""
        from scipy.stats import spearmanr

        y = np.asarray(targets, dtype=np.float64)
        p = self.predict(texts)
        eps = 1e-7
        pc = np.clip(p, eps, 1 - eps)
        out = {
            f"{prefix}mae": float(np.mean(np.abs(p - y))),
            f"{prefix}bce": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
        }
        if len(y) > 1 and np.std(y) > 0 and np.std(p) > 0:
            out[f"{prefix}spearman"] = float(spearmanr(p, y).statistic)
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, weights (encoder only if it trains), optimizer, replay."""
        state: dict[str, Any] = {
            "format": FORMAT,
            "config": asdict(self.config),
            "head": {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()},
            # a snapshot, not live references: torch's optimizer state_dict shares the moment tensors
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "steps": self.steps,
            "replay": [asdict(o) for o in self.replay],
        }
        if self.encoder_trainable:
            state["encoder"] = {k: v.detach().cpu().clone() for k, v in self.encoder.model.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; a state from an estimator of another shape is a DepoError."""
        if state.get("format") != FORMAT:
            raise DepoError(f"not a depo estimator state (format {state.get('format')!r}, expected {FORMAT})")
        saved = state.get("config", {})
        for name in _ARCH_FIELDS:
            if name in saved and saved[name] != getattr(self.config, name):
                raise DepoError(
                    f"estimator state has {name}={saved[name]!r} but this estimator has {getattr(self.config, name)!r}"
                )
        self.head.load_state_dict(state["head"])
        if "encoder" in state:
            self.encoder.model.load_state_dict(state["encoder"])
            self.cache.clear()
        # deep copy: torch would otherwise alias the caller's tensors and mutate them on the next step
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.steps = int(state.get("steps", 0))
        self.replay.clear()
        for item in state.get("replay", []):
            item = dict(item)
            item["rewards"] = tuple(item["rewards"])
            if item.get("mean_logprobs") is not None:
                item["mean_logprobs"] = tuple(item["mean_logprobs"])
            self.replay.append(GroupOutcome(**item))

    def save(self, path: str | Path) -> Path:
        """Write a self-contained directory: encoder/ (HF save_pretrained + tokenizer),
        head.safetensors (trunk + heads), estimator_config.json, train_state.pt (optimizer, replay)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save(path / ENCODER_DIR)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, path / HEAD_FILE)
        config = asdict(self.config)
        config["encoder_path"] = ENCODER_DIR
        (path / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "config": config}, indent=2) + "\n")
        train_state = {
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "replay": [asdict(o) for o in self.replay],
        }
        torch.save(train_state, path / TRAIN_STATE_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, **overrides: Any) -> OnlineEstimator:
        """Rebuild an estimator written by `save`: same predictions, same optimizer state.

        `device` and other non-architecture `overrides` (e.g. lr, freeze-free options such as
        replay_size) replace the saved values.
        """
        path = Path(path)
        config_file = path / CONFIG_FILE
        if not config_file.is_file():
            raise DepoError(f"{path} is not a saved depo estimator (no {CONFIG_FILE})")
        try:
            data = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DepoError(f"cannot read {config_file}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DepoError(f"{config_file}: unknown format {found!r}, expected {FORMAT}")
        if not isinstance(data.get("config"), dict):
            raise DepoError(f"{config_file}: 'config' must be a mapping of EstimatorConfig fields")
        config_data = dict(data["config"])
        config_data["encoder_path"] = str(path / ENCODER_DIR)
        for name in overrides:
            if name in _ARCH_FIELDS or name == "encoder_path":
                raise DepoError(f"cannot override {name} when loading a saved estimator")
        config_data.update(overrides)
        if device is not None:
            config_data["device"] = device
        try:
            config = EstimatorConfig.from_dict(config_data)
            config.validate()
        except (TypeError, ValueError) as exc:  # a hand-edited file: wrong value types
            raise DepoError(f"{config_file}: invalid estimator config: {exc}") from None
        estimator = cls(config)
        from safetensors.torch import load_file

        try:  # missing, corrupt or mismatched weights: FileNotFoundError, SafetensorError, RuntimeError...
            estimator.head.load_state_dict(load_file(path / HEAD_FILE, device=str(estimator.device)))
            train_state_file = path / TRAIN_STATE_FILE
            train_state = (
                torch.load(train_state_file, map_location=estimator.device, weights_only=True)
                if train_state_file.is_file()
                else None
            )
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise DepoError(f"cannot load the estimator weights in {path}: {type(exc).__name__}: {first}") from exc
        if train_state is not None:
            state = {
                "format": FORMAT,
                "config": data["config"],
                "head": estimator.head.state_dict(),
                **train_state,
            }
            estimator.load_state_dict(state)
        return estimator
