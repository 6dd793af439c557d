"""Fuzzing the training-config parser: any YAML file, mapping or `--set` list gives a valid
TrainConfig or one `DepoError` line, never a traceback; and a config that loads can build its
selector and estimator settings (nested options are validated at load, not mid-run).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depo.config import apply_overrides
from depo.errors import DepoError
from depo.estimator import EstimatorConfig
from depo.rl.config import TrainConfig, load_config
from depo.selection import make_selector

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELDS = list(TrainConfig.model_fields)
NESTED = ["selector_options.warmup_steps", "selector_options.explore", "selector_options.health_patience",
          "selector_options.threshold", "selector_options.p_easy", "selector_options.bogus",
          "estimator_options.width", "estimator_options.freeze_encoder", "estimator_options.dropout",
          "estimator_options.pooling", "estimator_options.nope", "model.x"]
keys = st.sampled_from(FIELDS) | st.text(max_size=12)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**66), 2**66), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["depo", "depo-paper", "history", "uniform", "true", "1e-3", "nan", "-1"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
override_text = st.one_of(
    st.text(max_size=30),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(FIELDS + NESTED) | st.text(max_size=10), st.text(max_size=15)),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(FIELDS + NESTED), scalars.map(str)),
)


class _StubEstimator:
    def predict(self, texts):
        return np.full(len(texts), 0.5)

    def update(self, outcomes):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


def _usable(cfg) -> None:
    """What the trainer builds from a config before step 1 must not fail once it has loaded."""
    make_selector(cfg.selector, group_size=cfg.num_generations, seed=cfg.seed,
                  options=dict(cfg.selector_options), estimator=_StubEstimator())
    if cfg.estimator_options:
        EstimatorConfig.build({"seed": cfg.seed, **cfg.estimator_options})


def _load(fn, *args) -> None:
    try:
        cfg = fn(*args)
    except DepoError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    _usable(cfg)


@FUZZ
@given(mapping=st.dictionaries(keys, values, max_size=5))
def test_random_mappings(mapping: dict) -> None:
    _load(TrainConfig.build, mapping)


@FUZZ
@given(overrides=st.lists(override_text, max_size=5), base=st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=3))
def test_random_overrides(overrides: list[str], base: dict) -> None:
    def go():
        return TrainConfig.build(apply_overrides(base, overrides))

    _load(go)
    _load(load_config, None, overrides)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=80) | st.binary(max_size=80))
def test_random_yaml_files(text) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        _load(load_config, path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["selector=depo", "selector_options.warmup_steps=abc"], "selector 'depo' options warmup_steps: Input should be a valid integer"),
        (["selector=depo", "selector_options.bogus=1"], "selector 'depo' options: unknown key 'bogus'; valid keys: "),
        (["selector=depo", "selector_options.explore=2"], "explore: Input should be less than or equal to 1"),
        (["selector=depo", "selector_options.skip=sideways"], "skip: Input should be 'both', 'hard' or 'easy'"),
        (["selector=history", "selector_options.p_easy=[1]"], "p_easy: Input should be a valid number"),
        (["selector_options.threshold=0.3"], r"selector 'uniform' options: unknown key 'threshold' \(it takes no options\)$"),
        (["selector=depo", "estimator_options.width=wide"], "estimator_options width: Input should be a valid integer"),
        (["selector=depo", "estimator_options.nope=1"], "estimator_options: unknown key 'nope'; valid keys: cache_"),
        (["selector=depo", "estimator_options.dropout=1.5"], "dropout: Input should be less than 1"),
        (["seed=3", "seed.x=1"], "seed is not a mapping"),
        (["selector_options=[1, 2]"], "expected a mapping"),
        (["selector=depo", "selector_options.estimator_init=x"], "unknown key 'estimator_init'"),
        (["selector=depo", "selector_options.mode=paper"], "mode is set by the selector name"),
    ],
)
def test_nested_options_are_checked_at_load(overrides: list[str], message: str) -> None:
    with pytest.raises(DepoError, match=message):
        load_config(None, overrides)


def test_nested_values_are_coerced_at_load() -> None:
    cfg = load_config(None, ["selector=depo", "selector_options.warmup_steps=3.0", "selector_options.health=false",
                             "estimator_options.freeze_encoder=yes", "estimator_options.cache_max_mb=none"])
    assert cfg.selector_options == {"warmup_steps": 3, "health": False}
    assert cfg.estimator_options == {"freeze_encoder": True, "cache_max_mb": None}
