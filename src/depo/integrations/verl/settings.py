"""The `depo:` block of the verl config (config/depo_trainer.yaml), validated, and what it builds.

Knobs (all under `depo.`):
- `selector`: uniform | depo | depo-paper | history (`depo.selection.make_selector` names).
- `options`: the selector's own options (for depo / depo-paper: warmup_steps, lo, hi, threshold,
  explore, memory, ...; see `depo.selection.depo.DEPOConfig`).
- `seed`: the data order and the selector's exploration (null: `data.seed`, else 0).
- `max_scan_factor`: at most this many x train_batch_size candidates scanned per step before the
  batch is force-filled with the best-ranked rejected prompts (never stalls, unlike dynamic sampling).
- `max_chunk`: at most this many candidates per estimator call (null: the scan bound).
- `selection`: refill (keep what the selector keeps, draw until the batch is full) | rank (the
  batch's best of `oversample` x as many scanned candidates; survival = 1 / oversample).
- `reward_key`: what the estimator learns from: auto (the reward's `acc` if present, else the
  sequence score), score, or any key of the reward function's extra info.
- `estimator.device`: driver (in the trainer process) | ray (its own Ray actor with
  `estimator.num_gpus` / `estimator.num_cpus`); `estimator.torch_device`: cpu | cuda | auto inside
  that process; `estimator.config`: `depo.estimator.EstimatorConfig` fields (encoder_path, lr, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from depo.errors import DepoError
from depo.selection.base import Selector

SELECTORS_WITH_ESTIMATOR = ("depo", "depo-paper")
PLACEMENTS = ("driver", "ray")


def _plain(value: Any) -> Any:
    """An OmegaConf node (or anything) as plain Python containers."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        pass
    return value


@dataclass
class EstimatorPlacement:
    device: str = "driver"
    torch_device: str = "auto"
    num_gpus: float = 1.0
    num_cpus: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.device not in PLACEMENTS:
            raise DepoError(f"depo.estimator.device must be one of {', '.join(PLACEMENTS)}, got {self.device!r}")
        if self.num_gpus < 0 or self.num_cpus < 0:
            raise DepoError("depo.estimator.num_gpus and num_cpus must be >= 0")


@dataclass
class DepoSettings:
    enable: bool = True
    selector: str = "depo"
    options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    max_scan_factor: float = 8.0
    max_chunk: int | None = None
    selection: str = "refill"
    oversample: float = 2.0
    reward_key: str = "auto"
    estimator: EstimatorPlacement = field(default_factory=EstimatorPlacement)

    def __post_init__(self) -> None:
        if self.max_scan_factor < 1:
            raise DepoError(f"depo.max_scan_factor must be >= 1, got {self.max_scan_factor}")
        if self.max_chunk is not None and self.max_chunk < 1:
            raise DepoError(f"depo.max_chunk must be >= 1 or null, got {self.max_chunk}")
        if self.selection not in ("refill", "rank"):
            raise DepoError(f"depo.selection must be refill or rank, got {self.selection!r}")
        if not self.oversample >= 1:
            raise DepoError(f"depo.oversample must be >= 1, got {self.oversample}")

    @classmethod
    def from_config(cls, node: Any) -> DepoSettings:
        """From the `depo` config node (None or missing: defaults); unknown keys are a DepoError."""
        data = dict(_plain(node) or {})
        known = {"enable", "selector", "options", "seed", "max_scan_factor", "max_chunk", "reward_key", "estimator",
                 "selection", "oversample"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DepoError(f"unknown depo option(s): {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        est = dict(data.pop("estimator", None) or {})
        est_known = {"device", "torch_device", "num_gpus", "num_cpus", "config"}
        bad = sorted(set(est) - est_known)
        if bad:
            raise DepoError(f"unknown depo.estimator option(s): {', '.join(bad)}; allowed: {', '.join(sorted(est_known))}")
        est["config"] = dict(est.get("config") or {})
        data["options"] = dict(data.get("options") or {})
        return cls(estimator=EstimatorPlacement(**est), **data)

    def max_scan(self, batch_size: int) -> int:
        return max(batch_size, int(round(self.max_scan_factor * batch_size)))

    def stream(self, order: Any, selector: Any, candidate: Any, batch_size: int) -> Any:
        """The selection stream these settings ask for (depo.selection.stream)."""
        from depo.selection.stream import make_stream

        return make_stream(self.selection, order, selector, candidate, batch_size, oversample=self.oversample,
                           max_scan=self.max_scan(batch_size), max_chunk=self.max_chunk)


def build_estimator(placement: EstimatorPlacement) -> Any:
    """The online estimator (`config.kind`: trunk or bayes), in this process or behind a Ray
    actor (same predict/update/state API)."""
    from depo.estimator import build_estimator as build
    from depo.estimator import estimator_config

    cfg = dict(placement.config)
    cfg.setdefault("device", placement.torch_device)
    config = estimator_config(cfg, what="depo.estimator.config")
    if placement.device == "ray":
        from depo.integrations.verl.remote import RemoteEstimator

        return RemoteEstimator(config, num_gpus=placement.num_gpus, num_cpus=placement.num_cpus)
    return build(config)


def build_selector(settings: DepoSettings, *, group_size: int, seed: int, estimator: Any = None) -> Selector:
    """`make_selector` with the settings' options; builds the estimator for estimator-driven selectors."""
    from depo.selection import make_selector

    if settings.selector in SELECTORS_WITH_ESTIMATOR and estimator is None:
        estimator = build_estimator(settings.estimator)
    return make_selector(
        settings.selector, group_size=group_size, seed=seed, options=dict(settings.options), estimator=estimator
    )


def as_mapping(value: Any) -> Mapping[str, Any]:
    return dict(_plain(value) or {})
