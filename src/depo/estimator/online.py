"""The online difficulty estimator: predict pass rates before the rollout, learn from the rollout after.

Per RL step the estimator scores candidate prompts (`predict`), and after the rollout takes one
AdamW step on that step's groups (`update`) with labels y = mean group reward and t = the
policy's clipped confidence (docs/method.md sections 2.1-2.3). Weights and optimizer are
checkpointed with the policy (`state_dict`); `save`/`load` write a self-contained directory
(`depo.estimator.persistence`); `fit` trains offline (`depo.estimator.fit`). The settings marked
"ours" in `depo.estimator.config` (more optimizer steps per update, a replay buffer, a frozen or
partly frozen encoder) are off by default, so the defaults are the paper's.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from depo.errors import DepoError
from depo.estimator import fit as offline
from depo.estimator import persistence
from depo.estimator.config import ARCH_FIELDS, FORMAT, EstimatorConfig, resolve_device
from depo.estimator.encoder import TextEncoder
from depo.estimator.features import EncoderFeatures
from depo.estimator.losses import check_labels, distill_target, estimator_loss
from depo.estimator.trunk import DualHead
from depo.types import GroupOutcome


class OnlineEstimator:
    """Encoder + trunk + dual heads, with the online update rule (see module doc)."""

    def __init__(self, config: EstimatorConfig | None = None):
        self.config = cfg = config if config is not None else EstimatorConfig()
        self.device = resolve_device(cfg.device)
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
        self.features = EncoderFeatures(self.encoder, cfg, self.device)
        self.optimizer = torch.optim.AdamW(self._param_groups())
        self.steps = 0
        self.replay: deque[GroupOutcome] = deque(maxlen=cfg.replay_size)

    # ------------------------------------------------------------------ parameters
    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters()) + self.encoder_parameters()

    def _param_groups(self) -> list[dict[str, Any]]:
        """Trunk and heads at lr, the encoder's trainable weights at lr * encoder_lr_scale."""
        cfg = self.config
        groups: list[dict[str, Any]] = [{"params": list(self.head.parameters()), "lr": cfg.lr}]
        if enc := self.encoder_parameters():
            groups.append({"params": enc, "lr": cfg.lr * cfg.encoder_lr_scale})
        return [{**group, "weight_decay": cfg.weight_decay} for group in groups]

    def warm_cache(self, texts: Sequence[str], *, use_disk: bool = True, progress: bool = False) -> dict[str, float]:
        """Encode `texts` once (disk-cached) so steps pay only for the trunk; needs a frozen encoder."""
        if self.features.mode != "pooled":
            raise DepoError("precomputing encoder vectors needs a frozen encoder (freeze_encoder: true)")
        counts = self.features.warm_cache(texts, use_disk=use_disk, progress=progress)
        self.features.cache.reset_counts()  # the hit rate then shows whether any later call encoded
        return counts

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def predict_logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(score logits, distill logits) for each text; eval mode, no gradients."""
        texts = list(texts)
        if not texts:
            return np.zeros(0), np.zeros(0)
        self.head.eval()
        pooled = self.features.pooled(texts, train=False)
        bs = self.config.predict_batch_size
        logits = [torch.stack(self.head(pooled[i : i + bs])).float().cpu() for i in range(0, len(texts), bs)]
        scores, distills = torch.cat(logits, dim=1).numpy().astype(np.float64)
        return scores, distills

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted pass rates sigmoid(s) in (0, 1), one per text."""
        scores, _ = self.predict_logits(texts)
        return 1.0 / (1.0 + np.exp(-scores))

    # ------------------------------------------------------------------ training
    def step(
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
            pooled = self.features.pooled(texts, train=True)
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
        check_labels(y_np, "labels (mean group rewards)")
        targets = [distill_target(o.mean_logprobs) for o in batch]
        y = torch.tensor(y_np, dtype=torch.float32, device=self.device)
        mask = torch.tensor([v is not None for v in targets], dtype=torch.bool, device=self.device)
        t = None
        if bool(mask.any()):
            t = torch.tensor([v if v is not None else 0.5 for v in targets], dtype=torch.float32, device=self.device)
        parts = []
        for k in range(self.config.updates_per_step):
            idx = self._update_sample(len(outcomes), len(batch), k)
            ix = slice(None) if idx is None else torch.as_tensor(idx, device=self.device)
            sub = texts if idx is None else [texts[i] for i in idx]  # this optimizer step's prompts
            parts.append(self.step(sub, y[ix], None if t is None else t[ix], None if t is None else mask[ix]))
        self.steps += 1
        self.replay.extend(outcomes)
        metrics = {f"estimator/{key}": value for key, value in parts[0].items()}
        metrics["estimator/batch_size"] = float(len(batch))
        if self.config.update_batch_size:
            metrics["estimator/update_batch_size"] = float(len(sub))
        metrics["estimator/distill_n"] = float(mask.sum())
        metrics["estimator/target_mean"] = float(y_np[: len(outcomes)].mean())
        if self.features.mode != "none":
            metrics.update(self.features.cache.stats())
        metrics["time/estimator_update_s"] = time.perf_counter() - start
        return metrics

    def fit(self, texts: Sequence[str], targets: Sequence[float], **kwargs: Any) -> list[dict[str, float]]:
        """Offline training on (text, pass rate) pairs: see `depo.estimator.fit.fit`."""
        return offline.fit(self, texts, targets, **kwargs)

    def evaluate(self, texts: Sequence[str], targets: Sequence[float], prefix: str = "") -> dict[str, float]:
        """Calibration MAE, BCE and Spearman of predictions against pass rates."""
        return offline.evaluate(self, texts, targets, prefix=prefix)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, weights (encoder only if it trains), optimizer, replay."""
        state: dict[str, Any] = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "head": {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()},
            # a snapshot, not live references: torch's optimizer state_dict shares the moment tensors
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "steps": self.steps,
            "replay": [asdict(o) for o in self.replay],
        }
        if self.encoder_parameters():
            state["encoder"] = {k: v.detach().cpu().clone() for k, v in self.encoder.model.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; a state from an estimator of another shape is a DepoError."""
        if state.get("format") != FORMAT:
            raise DepoError(f"not a depo estimator state (format {state.get('format')!r}, expected {FORMAT})")
        saved = state.get("config", {})
        for name in ARCH_FIELDS:
            if name in saved and saved[name] != getattr(self.config, name):
                raise DepoError(
                    f"estimator state has {name}={saved[name]!r} but this estimator has {getattr(self.config, name)!r}"
                )
        self.head.load_state_dict(state["head"])
        if "encoder" in state:
            self.encoder.model.load_state_dict(state["encoder"])
            self.features.cache.clear()
        # deep copy: torch would otherwise alias the caller's tensors and mutate them on the next step
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        for group, configured in zip(self.optimizer.param_groups, self._param_groups()):
            # this config's lr and weight decay (a `load` override), not the saved optimizer's
            group.update(lr=configured["lr"], weight_decay=configured["weight_decay"])
        self.steps = int(state.get("steps", 0))
        self.replay.clear()
        for item in state.get("replay", []):
            item = {**item, "rewards": tuple(item["rewards"])}
            if item.get("mean_logprobs") is not None:
                item["mean_logprobs"] = tuple(item["mean_logprobs"])
            self.replay.append(GroupOutcome(**item))

    def save(self, path: str | Path) -> Path:
        """A self-contained directory that `OnlineEstimator.load` reads back (see depo.estimator.persistence)."""
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, **overrides: Any) -> OnlineEstimator:
        """Rebuild an estimator written by `save`: same predictions, same optimizer state.

        `device` and other non-architecture `overrides` (e.g. lr, replay_size) replace the saved values.
        """
        return persistence.load(cls, path, device=device, **overrides)
