"""The estimator's settings: the paper's defaults (docs/method.md sections 2.2-2.3) unless marked "ours"."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from depo.config import Config
from depo.errors import DepoError
from depo.estimator.losses import LossWeights

FORMAT = "depo-estimator/1"
"""Format tag of estimator states and saved directories."""
ARCH_FIELDS = ("pooling", "width", "feature_width", "num_blocks", "freeze_encoder", "train_top_layers")
"""Settings that fix the shapes of the weights: a state saved under other values cannot load."""


class EstimatorConfig(Config):
    """The paper's estimator (docs/method.md sections 2.2-2.3): encoder, trunk, loss and online-update settings."""

    kind: Literal["trunk"] = "trunk"
    """Which estimator: "trunk" (this one, the paper's) or "bayes" (depo.estimator.bayes)."""
    encoder_path: str | None = None
    """Local Hugging Face encoder directory; None = the embedded all-MiniLM-L6-v2."""
    pooling: Literal["cls", "mean"] = "cls"
    """The prompt's vector: the [CLS] vector of the last layer (paper) or the mean over its tokens."""
    max_length: int = Field(512, ge=2)
    """Encoder tokens read per prompt (longer prompts are truncated, counted and warned about)."""
    width: int = Field(1024, ge=1)
    """Trunk width."""
    feature_width: int = Field(512, ge=1)
    """Width of the feature the two heads read."""
    num_blocks: int = Field(2, ge=0)
    """Residual blocks in the trunk."""
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    lr: float = Field(2e-4, gt=0.0)
    """AdamW learning rate of trunk and heads."""
    encoder_lr_scale: float = Field(0.2, ge=0.0)
    """The encoder's learning rate as a share of `lr`."""
    weight_decay: float = Field(0.01, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    """Gradient-norm clip per optimizer step."""
    lambda_d: float = Field(0.5, ge=0.0)
    """Weight of the distill head's BCE."""
    lambda_r: float = Field(3.0, ge=0.0)
    """Weight of the ranking hinge."""
    delta: float = Field(0.05, ge=0.0)
    """The ranking loss compares pairs with y_i > y_j + delta."""
    margin: float = Field(0.5, ge=0.0)
    """Hinge margin of the ranking loss, on score logits."""
    updates_per_step: int = Field(1, ge=1)
    """ours: optimizer steps per `update` call (paper: 1)."""
    replay_size: int = Field(0, ge=0)
    """ours: recent outcomes from earlier steps mixed into each update (paper: 0)."""
    update_batch_size: int = Field(0, ge=0)
    """ours: with a replay buffer, each optimizer step uses this step's groups plus a random sample
    of the replay up to this many prompts in all (0 = the whole buffer every time). The trunk's
    cost and the ranking loss's pairs grow with the batch (pairs quadratically), so a sample keeps
    the update cheap while the buffer still remembers recent steps."""
    freeze_encoder: bool = False
    """ours: train only trunk and heads, caching each prompt's pooled encoder vector."""
    train_top_layers: int | None = Field(None, ge=0)
    """ours: train only the top n encoder layers (None = all)."""
    cache_lower_layers: bool = True
    """ours: with train_top_layers, run the frozen lower layers once per prompt and cache their output."""
    cache_max_mb: float | None = Field(2048.0, gt=0.0)
    """Memory budget of the feature cache (least recently used entries dropped first; None = no limit)."""
    predict_batch_size: int = Field(32, ge=1)
    """Texts per encoder forward (length-sorted chunks, for predict and update alike)."""
    device: str = "cpu"
    """"cpu", "cuda", "cuda:1", or "auto" (cuda when available)."""
    seed: int = 0
    """Initialisation, dropout and replay sampling."""

    @model_validator(mode="after")
    def _one_training_mode(self) -> EstimatorConfig:
        if self.freeze_encoder and self.train_top_layers is not None:
            raise ValueError("choose freeze_encoder or train_top_layers, not both")
        return self

    @property
    def weights(self) -> LossWeights:
        return LossWeights(self.lambda_d, self.lambda_r, self.delta, self.margin)


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's `device` ("auto" = cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DepoError(f"estimator device {name!r} is not a torch device") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DepoError(f"estimator device {name!r} requested but CUDA is not available")
    return device
