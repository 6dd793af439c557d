"""The `depo:` block of the verl config (config/depo_trainer.yaml) as a typed Config, and what it builds.

Every knob is a field below, documented by its docstring and listed in docs/verl.md, "Knobs";
an unknown key is refused with the nearest valid name, a bad value in one line naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import BeforeValidator, Field

from depo.config import Config
from depo.estimator import build_estimator as build
from depo.estimator import estimator_config
from depo.integrations.verl.remote import RemoteEstimator
from depo.selection import make_selector, selector_spec, trainable_selector
from depo.selection.base import Selector
from depo.selection.stream import make_stream

NULL_IS_EMPTY = BeforeValidator(lambda value: {} if value is None else value)
"""A mapping key set to `null` (e.g. a Hydra `depo.options=null`) means an empty mapping."""
Options = Annotated[dict[str, Any], NULL_IS_EMPTY]


class EstimatorPlacement(Config):
    """`depo.estimator`: where the online estimator runs, and its settings."""

    device: Literal["driver", "ray"] = "driver"
    """driver: in the trainer process; ray: a Ray actor with `num_gpus` / `num_cpus`."""
    torch_device: str = "auto"
    """The torch device inside that process: cpu, cuda or auto."""
    num_gpus: float = Field(1.0, ge=0)
    num_cpus: float = Field(1.0, ge=0)
    config: Options = {}
    """The estimator's settings (EstimatorConfig fields, or `kind: bayes` and BayesEstimatorConfig's)."""


class DepoSettings(Config):
    """The `depo:` block of the verl config."""

    enable: bool = True
    """false: plain verl behaviour (GRPO on every prompt)."""
    selector: str = "depo"
    """A registered selector: uniform, depo, depo-paper, history, mopps."""
    options: Options = {}
    """The selector's options (e.g. DEPOConfig fields)."""
    seed: int | None = None
    """Data order and exploration seed (None: data.seed, else 0)."""
    max_scan_factor: float = Field(8.0, ge=1)
    """Candidates scanned per step at most, in batches; then the batch is force-filled."""
    max_chunk: int | None = Field(None, ge=1)
    """Candidates per estimator call at most (None: the scan bound)."""
    selection: Literal["refill", "rank"] = "refill"
    oversample: float = Field(2.0, ge=1)
    """rank: scan oversample x the batch and keep its best (survival = 1 / oversample)."""
    reward_key: str = "auto"
    """What the estimator learns: auto (reward extra info `acc` if present, else the score), score, or a key."""
    estimator: Annotated[EstimatorPlacement, NULL_IS_EMPTY] = EstimatorPlacement()

    @classmethod
    def from_config(cls, node: Any) -> DepoSettings:
        """From the `depo` config node (None or missing: defaults); a bad key or value is one DepoError line."""
        return cls.build(as_mapping(node), what="depo")

    def check(self) -> DepoSettings:
        """What the block's own types cannot see, checked before anything is built: the selector
        against the registry, `options` against its options model, `estimator.config` against
        the estimator's; a problem is one DepoError line naming the key."""
        trainable_selector(self.selector, key="depo.selector").options.build(self.options, what="depo.options")
        estimator_settings(self.estimator)
        return self

    def data_seed(self, data: Any) -> int:
        """`seed`, else the data config's `seed`, else 0."""
        return int(self.seed if self.seed is not None else data.get("seed", None) or 0)

    def max_scan(self, batch_size: int) -> int:
        return max(batch_size, int(round(self.max_scan_factor * batch_size)))

    def stream(self, order: Any, selector: Any, candidate: Any, batch_size: int) -> Any:
        """The selection stream these settings ask for (depo.selection.stream)."""
        return make_stream(self.selection, order, selector, candidate, batch_size, oversample=self.oversample,
                           max_scan=self.max_scan(batch_size), max_chunk=self.max_chunk)


def estimator_settings(placement: EstimatorPlacement) -> Config:
    """The typed estimator config of `depo.estimator` (`config.kind`: trunk or bayes)."""
    cfg = dict(placement.config)
    cfg.setdefault("device", placement.torch_device)
    return estimator_config(cfg, what="depo.estimator.config")


def build_estimator(placement: EstimatorPlacement) -> Any:
    """The online estimator (`config.kind`: trunk or bayes), in this process or behind a Ray
    actor (same predict/update/state API)."""
    config = estimator_settings(placement)
    if placement.device == "ray":
        return RemoteEstimator(config, num_gpus=placement.num_gpus, num_cpus=placement.num_cpus)
    return build(config)


def build_selector(settings: DepoSettings, *, group_size: int, seed: int, estimator: Any = None) -> Selector:
    """`make_selector` with the settings' options; builds the estimator for estimator-driven selectors."""
    if selector_spec(settings.selector).uses_estimator and estimator is None:
        estimator = build_estimator(settings.estimator)
    return make_selector(
        settings.selector, group_size=group_size, seed=seed, options=dict(settings.options), estimator=estimator
    )


def as_mapping(value: Any) -> dict[str, Any]:
    """An OmegaConf node (or a mapping, or None) as a plain dict."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return dict(value or {})
