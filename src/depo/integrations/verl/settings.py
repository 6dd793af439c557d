"""The `depo:` block of the verl config (config/depo_trainer.yaml), validated, and what it builds.

The knobs (all under `depo.`) are listed in docs/verl.md, "Knobs"; besides them, `selection`:
refill (keep what the selector keeps, draw until the batch is full) | rank (the batch's best of
`oversample` x as many scanned candidates; survival = 1 / oversample).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from depo.errors import DepoError
from depo.estimator import build_estimator as build
from depo.estimator import estimator_config
from depo.integrations.verl.remote import RemoteEstimator
from depo.selection import make_selector
from depo.selection.base import Selector
from depo.selection.stream import make_stream

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
        data = _checked(as_mapping(node), cls, "depo")
        est = _checked(data.pop("estimator", None) or {}, EstimatorPlacement, "depo.estimator")
        est["config"] = dict(est.get("config") or {})
        data["options"] = dict(data.get("options") or {})
        return cls(estimator=EstimatorPlacement(**est), **data)

    def data_seed(self, data: Any) -> int:
        """`seed`, else the data config's `seed`, else 0."""
        return int(self.seed if self.seed is not None else data.get("seed", None) or 0)

    def max_scan(self, batch_size: int) -> int:
        return max(batch_size, int(round(self.max_scan_factor * batch_size)))

    def stream(self, order: Any, selector: Any, candidate: Any, batch_size: int) -> Any:
        """The selection stream these settings ask for (depo.selection.stream)."""
        return make_stream(self.selection, order, selector, candidate, batch_size, oversample=self.oversample,
                           max_scan=self.max_scan(batch_size), max_chunk=self.max_chunk)


def build_estimator(placement: EstimatorPlacement) -> Any:
    """The online estimator (`config.kind`: trunk or bayes), in this process or behind a Ray
    actor (same predict/update/state API)."""
    cfg = dict(placement.config)
    cfg.setdefault("device", placement.torch_device)
    config = estimator_config(cfg, what="depo.estimator.config")
    if placement.device == "ray":
        return RemoteEstimator(config, num_gpus=placement.num_gpus, num_cpus=placement.num_cpus)
    return build(config)


def build_selector(settings: DepoSettings, *, group_size: int, seed: int, estimator: Any = None) -> Selector:
    """`make_selector` with the settings' options; builds the estimator for estimator-driven selectors."""
    if settings.selector in SELECTORS_WITH_ESTIMATOR and estimator is None:
        estimator = build_estimator(settings.estimator)
    return make_selector(
        settings.selector, group_size=group_size, seed=seed, options=dict(settings.options), estimator=estimator
    )


def as_mapping(value: Any) -> dict[str, Any]:
    return dict(_plain(value) or {})


def _checked(value: Any, cls: type, what: str) -> dict[str, Any]:
    """`dict(value)`, whose keys must be fields of the dataclass `cls` (else one DepoError line)."""
    data, known = dict(value), sorted(f.name for f in fields(cls))
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DepoError(f"unknown {what} option(s): {', '.join(unknown)}; allowed: {', '.join(known)}")
    return data
