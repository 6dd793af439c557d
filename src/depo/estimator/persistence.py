"""A saved estimator: a self-contained directory, loadable without running any pickled code.

    encoder/                 the encoder in Hugging Face format (save_pretrained + tokenizer)
    head.safetensors         trunk and heads
    estimator_config.json    {"format": ..., "config": EstimatorConfig fields}
    train_state.pt           optimizer state, update count, replay (read with weights_only=True)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from depo.errors import DepoError, describe_exception
from depo.estimator.config import ARCH_FIELDS, FORMAT, EstimatorConfig

if TYPE_CHECKING:  # the estimator type only: online.py imports this module
    from depo.estimator.online import OnlineEstimator

CONFIG_FILE = "estimator_config.json"
HEAD_FILE = "head.safetensors"
TRAIN_STATE_FILE = "train_state.pt"
ENCODER_DIR = "encoder"
E = TypeVar("E", bound="OnlineEstimator")


def save(estimator: OnlineEstimator, path: str | Path) -> Path:
    """Write `estimator` to the directory `path` (created) and return it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    estimator.encoder.save(path / ENCODER_DIR)
    save_file({k: v.detach().cpu().contiguous() for k, v in estimator.head.state_dict().items()}, path / HEAD_FILE)
    config = estimator.config.to_dict()
    config["encoder_path"] = ENCODER_DIR
    (path / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "config": config}, indent=2) + "\n")
    train_state = {
        "optimizer": estimator.optimizer.state_dict(),
        "steps": estimator.steps,
        "replay": [asdict(o) for o in estimator.replay],
    }
    torch.save(train_state, path / TRAIN_STATE_FILE)
    return path


def load(cls: type[E], path: str | Path, *, device: str | None = None, **overrides: Any) -> E:
    """Rebuild the estimator saved in `path` as a `cls` (an OnlineEstimator class)."""
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
    for name in overrides:
        if name in ARCH_FIELDS or name == "encoder_path":
            raise DepoError(f"cannot override {name} when loading a saved estimator")
    values = {**data["config"], **overrides, "encoder_path": str(path / ENCODER_DIR)}
    if device is not None:
        values["device"] = device
    estimator = cls(EstimatorConfig.build(values, what=f"estimator config {config_file}"))
    try:  # missing, corrupt or mismatched weights: FileNotFoundError, SafetensorError, RuntimeError...
        estimator.head.load_state_dict(load_file(path / HEAD_FILE, device=str(estimator.device)))
        train_state_file = path / TRAIN_STATE_FILE
        train_state = (
            torch.load(train_state_file, map_location=estimator.device, weights_only=True)
            if train_state_file.is_file()
            else None
        )
    except Exception as exc:
        raise DepoError(f"cannot load the estimator weights in {path}: {describe_exception(exc)}") from exc
    if train_state is not None:
        estimator.load_state_dict({"format": FORMAT, "config": data["config"], "head": estimator.head.state_dict(), **train_state})
    return estimator
