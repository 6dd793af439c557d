"""Config loading: YAML + overrides, validated at load with one-line errors."""

from __future__ import annotations

import pytest

from depo.config import write_yaml
from depo.errors import DepoError
from depo.rl.config import TrainConfig, load_config


def test_defaults_and_trl_names():
    cfg = load_config()
    assert isinstance(cfg, TrainConfig)
    for name in ("num_generations", "learning_rate", "epsilon", "epsilon_high", "loss_type", "beta", "num_iterations"):
        assert hasattr(cfg, name)


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 3.0e-4\nbatch_size: 16\nselector: depo\n")
    cfg = load_config(path, ["batch_size=8", "learning_rate=1e-5", "epsilon_high=0.28", "dynamic_sampling=true",
                             "selector_options.threshold=0.9"])
    assert cfg.batch_size == 8
    assert cfg.learning_rate == pytest.approx(1e-5)  # YAML reads "1e-5" as a string; coerced
    assert cfg.epsilon_high == pytest.approx(0.28)
    assert cfg.dynamic_sampling is True
    assert cfg.selector == "depo" and cfg.selector_options == {"threshold": 0.9}


def test_round_trip(tmp_path):
    cfg = load_config(None, ["loss_type=grpo", "epsilon_high=null", "max_steps=7"])
    write_yaml(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bogus_key=1", "unknown key 'bogus_key'.*valid keys: batch_size, beta"),
        ("batch_sise=1", r"did you mean 'batch_size'\?"),
        ("batch_size=abc", "batch_size: Input should be a valid integer"),
        ("batch_size=2.5", "batch_size: Input should be a valid integer"),
        ("learning_rate=fast", "learning_rate: Input should be a valid number"),
        ("learning_rate=nan", "learning_rate: Input should be a finite number"),
        ("dynamic_sampling=maybe", "dynamic_sampling: Input should be a valid boolean"),
        ("loss_type=sum", "loss_type: Input should be 'grpo', 'dapo', 'bnpo' or 'dr_grpo'"),
        ("scale_rewards=max", "scale_rewards: Input should be 'group', 'batch' or 'none'"),
        ("selector=magic", "unknown selector 'magic'; choose one of: depo"),
        ("num_generations=1", "num_generations: Input should be greater than or equal to 2"),
        ("top_p=0", "top_p: Input should be greater than 0"),
        ("epsilon=1.5", "epsilon: Input should be less than 1"),
        ("overlong_buffer_len=16", "overlong_buffer_len must be < max_completion_length"),
        ("max_scan=3", r"max_scan \(3\) must be 0 \(8 x batch_size\) or >= batch_size"),
        ("max_num_gen_batches=0", "max_num_gen_batches: Input should be greater than or equal to 1"),
        ("selector_options=3", "selector_options: expected a mapping"),
        ("nokey", "--set expects key=value"),
        ("bogus.x=1", "unknown key 'bogus'"),
        ("estimator_options.freeze_encoder=true", "estimator_options and estimator_init need selector depo"),
    ],
)
def test_invalid_values_are_depo_errors(override, message):
    with pytest.raises(DepoError, match=message):
        load_config(None, [override])


def test_file_errors(tmp_path):
    with pytest.raises(DepoError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(DepoError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(DepoError, match="must be a mapping"):
        load_config(listy)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DepoError, match="cannot read config"):
        load_config(binary)


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"demo.yaml", "grpo.yaml", "dapo.yaml"} <= set(names)
    for name in ("demo.yaml", "grpo.yaml", "dapo.yaml", "demo_bayes.yaml"):
        load_config(root / name)
    assert load_config(root / "dapo.yaml").dynamic_sampling is True
    bayes = load_config(root / "demo_bayes.yaml")  # extends the GRPO baseline, swaps the estimator
    assert bayes.estimator_options == {"kind": "bayes"} and bayes.max_steps == load_config(root / "demo.yaml").max_steps
