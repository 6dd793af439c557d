"""Offline training of the estimator on (text, pass rate) pairs: warm starts, real-data benchmarks, routing.

BCE + ranking loss over shuffled minibatches; no distill term (offline rows have no
log-probs). Deterministic given `seed`: shuffling and dropout use their own RNG and the
global one is left untouched. With a frozen encoder every text is encoded once up front, so
epochs cost only the trunk; with `train_top_layers=n` the lower layers run once per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from depo.errors import DepoError
from depo.estimator.losses import check_labels
from depo.metrics import calib_mae, spearman

if TYPE_CHECKING:  # the estimator type only: online.py imports this module
    from depo.estimator.online import OnlineEstimator


def fit(
    estimator: OnlineEstimator,
    texts: Sequence[str],
    targets: Sequence[float],
    *,
    epochs: int,
    batch_size: int = 32,
    val: tuple[Sequence[str], Sequence[float]] | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> list[dict[str, float]]:
    """Train `estimator` for `epochs` on (texts, pass rates); one metrics dict per epoch.

    Each dict holds the train loss parts, and val_mae / val_bce / val_spearman when `val` is given.
    """
    texts = list(texts)
    y_all = np.asarray(targets, dtype=np.float64)
    if len(texts) != len(y_all):
        raise DepoError(f"fit: {len(texts)} texts but {len(y_all)} targets")
    if not texts:
        raise DepoError("fit: no training texts")
    if epochs < 1 or batch_size < 1:
        raise DepoError("fit: epochs and batch_size must be >= 1")
    check_labels(y_all, "fit targets")
    if val is not None:
        check_labels(np.asarray(val[1], dtype=np.float64), "fit val targets")
    seed = estimator.config.seed if seed is None else seed
    history: list[dict[str, float]] = []
    device = estimator.device
    cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        frozen = estimator.features.mode == "pooled"
        pooled_all = estimator.features.pooled(texts, train=False) if frozen else None
        y_t = torch.tensor(y_all, dtype=torch.float32, device=device)
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(len(texts), generator=gen).tolist()
            batches = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
            sums: dict[str, float] = {}
            bar = tqdm(batches, desc=f"estimator fit {epoch}/{epochs}", disable=not progress, leave=False)
            for idx in bar:
                pooled = pooled_all[idx] if pooled_all is not None else None
                parts = estimator.step([texts[i] for i in idx], y_t[idx], None, None, pooled=pooled)
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value * len(idx)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
            metrics = {"epoch": float(epoch)}
            metrics.update({f"train_{k}": v / len(texts) for k, v in sums.items()})
            if val is not None:
                metrics.update(evaluate(estimator, val[0], val[1], prefix="val_"))
            history.append(metrics)
    return history


def evaluate(estimator: OnlineEstimator, texts: Sequence[str], targets: Sequence[float], prefix: str = "") -> dict[str, float]:
    """Calibration MAE, BCE and Spearman rank correlation of predictions against pass rates."""
    y = np.asarray(targets, dtype=np.float64)
    p = estimator.predict(texts)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    out = {
        f"{prefix}mae": calib_mae(p, y),
        f"{prefix}bce": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
    }
    rho = spearman(p, y)
    if np.isfinite(rho):
        out[f"{prefix}spearman"] = rho
    return out
