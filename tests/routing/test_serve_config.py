"""The route service's config: one `depo.config.Config`, so files extend a base, unknown keys are
refused with the nearest valid name, and `--port`/`--set` override the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depo.cli import main
from depo.errors import DepoError
from depo.routing.serve_config import ConstantRate, build_router, load_config

TWO_MODELS = """
models:
  - {name: small, url: "http://127.0.0.1:9001/v1", cost: 1, rate: 0.6}
  - {name: large, url: "http://127.0.0.1:9002/v1/", cost: 5, rate: 0.9}
"""


def _write(tmp_path: Path, text: str, name: str = "route.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_file_gives_typed_settings_and_lambda_is_read_under_its_yaml_name(tmp_path):
    config = load_config(_write(tmp_path, TWO_MODELS + "rule: gain\nlambda: 0.05\nport: 8100\n"))
    assert (config.rule, config.lam, config.port) == ("gain", 0.05, 8100)
    assert config.models[1].url == "http://127.0.0.1:9002/v1"  # trailing slash dropped
    assert config.to_dict()["lambda"] == 0.05
    router = build_router(config)
    assert router.names == ["small", "large"] and router.lam == 0.05
    assert router.predict_rates(["any query"]).tolist() == [[0.6, 0.9]]  # the constant priors, in cost order
    assert ConstantRate(0.3).predict(["a", "b"]).tolist() == [0.3, 0.3]


def test_overrides_win_over_the_file_and_nested_keys_take_dots(tmp_path):
    config = load_config(_write(tmp_path, TWO_MODELS), ["port=9000", "rule=gain", "lambda=0.2"])
    assert (config.port, config.rule, config.lam) == (9000, "gain", 0.2)


def test_a_config_extends_a_base_and_relative_estimators_follow_the_file(tmp_path):
    _write(tmp_path, TWO_MODELS + "max_batch: 8\n", "base.yaml")
    (tmp_path / "sub").mkdir()
    child = _write(tmp_path / "sub", "extends: ../base.yaml\nmax_batch: 16\n")
    assert load_config(child).max_batch == 16
    with_estimator = _write(tmp_path, TWO_MODELS.replace("rate: 0.6", "estimator: est_small"), "est.yaml")
    assert load_config(with_estimator).models[0].estimator == str(tmp_path / "est_small")
    inherited = _write(tmp_path / "sub", "extends: ../est.yaml\n", "child.yaml")
    assert Path(load_config(inherited).models[0].estimator).resolve() == tmp_path / "est_small"  # the base's folder
    shared = _write(tmp_path / "sub", "extends: ../base.yaml\nestimator: heads\nmodels:\n" + TWO_MODELS.split("models:\n")[1].replace(", rate: 0.6", "").replace(", rate: 0.9", ""), "shared.yaml")
    assert load_config(shared).estimator == str(tmp_path / "sub" / "heads")
    assert load_config(shared, ["estimator=runs/heads"]).estimator == "runs/heads"  # a --set: the working directory's


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("max_bach: 4\n", "max_batch"),  # a typo names the field meant
        ("rule: cheapest\n", "rule"),
        ("port: 70000\n", "port"),
        ("routed_aliases: [small]\n", "clash"),
    ],
)
def test_mistakes_are_one_line_errors_naming_the_setting(tmp_path, extra, fragment):
    with pytest.raises(DepoError) as err:
        load_config(_write(tmp_path, TWO_MODELS + extra))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_routed_aliases_must_name_at_least_one(tmp_path):
    with pytest.raises(DepoError, match="routed_aliases: .*at least 1 item") as err:
        load_config(_write(tmp_path, TWO_MODELS + "routed_aliases: []\n"))
    assert "\n" not in str(err.value)


def test_a_backend_takes_one_predictor_and_an_http_url(tmp_path):
    both = TWO_MODELS.replace("rate: 0.6", "rate: 0.6, predictor: 'm:f'")
    with pytest.raises(DepoError, match="one of estimator, predictor, rate"):
        load_config(_write(tmp_path, both))
    with pytest.raises(DepoError, match="http"):
        load_config(_write(tmp_path, TWO_MODELS.replace("http://127.0.0.1:9001", "gpu1:9001")))
    with pytest.raises(DepoError, match="at least two"):
        load_config(_write(tmp_path, "models:\n  - {name: a, url: 'http://x/v1', cost: 1}\n"))


def test_each_backend_loads_its_own_predictor_and_a_bad_one_is_one_line(tmp_path, monkeypatch):
    from depo.estimator import build_estimator

    texts = [f"what is {i} plus {i}" for i in range(12)] + [f"prove the theorem {i}" for i in range(12)]
    estimator = build_estimator({"kind": "bayes", "max_length": 16, "hash_bits": 10})  # one head: a backend's own
    estimator.fit(texts, [0.9] * 12 + [0.2] * 12, samples=50)
    estimator.save(tmp_path / "small_est")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # routing_stubs, as a user's own module
    config = load_config(_write(tmp_path, """
models:
  - {name: small, url: "http://127.0.0.1:9001/v1", cost: 1, estimator: small_est}
  - {name: large, url: "http://127.0.0.1:9002/v1", cost: 5, predictor: "routing_stubs:small_predictor"}
"""))  # fmt: skip
    rates = build_router(config).predict_rates(texts[:2])
    np.testing.assert_allclose(rates[:, 0], estimator.predict(texts[:2]))
    from routing_stubs import HashRate

    np.testing.assert_allclose(rates[:, 1], HashRate().predict(texts[:2]))
    for spec, fragment in [
        ("estimator: nowhere", "estimator directory not found: "),
        ("predictor: routing_stubs", "must be 'module:callable'"),
        ("predictor: 'no_such_module:f'", "cannot import predictor"),
        ("predictor: 'routing_stubs:HashRate.predict'", "cannot import predictor"),
        ("predictor: 'routing_stubs:socket'", "is not callable"),
        ("predictor: 'routing_stubs:StubBackend'", "raised TypeError: "),
        ("predictor: 'routing_stubs:HashRate'", None),
        ("predictor: 'routing_stubs:FastAPI'", "returned an object without predict()"),
    ]:
        bad = TWO_MODELS.replace("rate: 0.6", spec)
        if fragment is None:  # a class with predict() is its own factory
            build_router(load_config(_write(tmp_path, bad)))
            continue
        with pytest.raises(DepoError, match=fragment) as err:
            build_router(load_config(_write(tmp_path, bad)))
        assert "backend 'small'" in str(err.value) and "\n" not in str(err.value)


def test_the_command_takes_field_flags_and_sets(tmp_path, capsys):
    path = _write(tmp_path, TWO_MODELS)
    assert main(["route", "serve", "--config", str(path), "--port", "8123", "--set", "rule=gain", "--check"]) == 0
    assert "rule=gain lambda=0" in capsys.readouterr().out
    assert main(["route", "serve", "--config", str(path), "--set", "no_such=1", "--check"]) == 2
    assert "no_such" in capsys.readouterr().err


def test_check_resolves_the_environment_variables_serving_needs(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEPO_TEST_ROUTE_TOKEN", raising=False)
    monkeypatch.delenv("DEPO_TEST_BACKEND_KEY", raising=False)
    token = _write(tmp_path, TWO_MODELS + "bearer_token_env: DEPO_TEST_ROUTE_TOKEN\n", "token.yaml")
    key = _write(tmp_path, TWO_MODELS.replace("rate: 0.9", "rate: 0.9, api_key_env: DEPO_TEST_BACKEND_KEY"), "key.yaml")
    for path, variable, owner in [(token, "DEPO_TEST_ROUTE_TOKEN", "auth"), (key, "DEPO_TEST_BACKEND_KEY", "backend 'large'")]:
        assert main(["route", "serve", "--config", str(path), "--check"]) == 2
        assert f"{owner}: environment variable {variable} is not set" in capsys.readouterr().err
        monkeypatch.setenv(variable, "set")
        assert main(["route", "serve", "--config", str(path), "--check"]) == 0
        capsys.readouterr()


def test_a_backends_own_estimator_with_several_heads_is_refused_at_start_up(tmp_path):
    from depo.estimator import build_estimator

    texts = [f"what is {i} plus {i}" for i in range(6)] + [f"prove the theorem {i}" for i in range(6)]
    estimator = build_estimator({"kind": "bayes", "num_targets": 2, "max_length": 16, "hash_bits": 10})
    estimator.fit(texts, np.array([[0.9, 0.95]] * 6 + [[0.2, 0.6]] * 6), samples=20)
    estimator.save(tmp_path / "heads")
    config = load_config(_write(tmp_path, TWO_MODELS.replace("rate: 0.6", "estimator: heads")))
    with pytest.raises(DepoError, match=r"backend 'small': estimator .*heads has 2 head\(s\)") as err:
        build_router(config)
    assert "top-level `estimator:`" in str(err.value) and "\n" not in str(err.value)


def test_one_multi_target_estimator_predicts_every_model_in_one_call(tmp_path):
    from depo.estimator import build_estimator

    texts = [f"what is {i} plus {i}" for i in range(12)] + [f"prove the theorem {i}" for i in range(12)]
    rates = np.array([[0.95, 0.9]] * 12 + [[0.6, 0.1]] * 12)  # heads in the config order below: large, small
    estimator = build_estimator({"kind": "bayes", "num_targets": 2, "max_length": 16, "hash_bits": 10})
    estimator.fit(texts, rates, samples=50)
    estimator.save(tmp_path / "heads")
    config = load_config(_write(tmp_path, """
estimator: heads
rule: gain
models:
  - {name: large, url: "http://127.0.0.1:9002/v1", cost: 5}
  - {name: small, url: "http://127.0.0.1:9001/v1", cost: 1}
"""))  # fmt: skip
    assert config.estimator == str(tmp_path / "heads")
    router = build_router(config)
    queries = ["what is 3 plus 3", "prove the theorem 7"]
    heads = estimator.predict(queries)  # columns in the config's model order: large, small
    np.testing.assert_allclose(router.predict_rates(queries), heads[:, ::-1])  # the router's columns: cheapest first
    assert router.predict_rates(queries)[1, 1] - router.predict_rates(queries)[1, 0] > 0.2  # the hard query's gain
    with pytest.raises(DepoError, match="must not name their own predictor"):
        load_config(_write(tmp_path, "estimator: heads\n" + TWO_MODELS))
    three = TWO_MODELS.replace(", rate: 0.6", "").replace(", rate: 0.9", "") + '  - {name: xl, url: "http://x/v1", cost: 9}\n'
    with pytest.raises(DepoError, match=r"^estimator .*heads has 2 head\(s\); 3 models need one each$"):
        build_router(load_config(_write(tmp_path, "estimator: heads\n" + three)))


def test_the_commented_example_config_loads():
    example = Path(__file__).resolve().parents[2] / "configs" / "route_serve.example.yaml"
    config = load_config(example)
    assert config.rule == "gain" and [m.name for m in config.models] == ["qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct"]
    assert config.models[0].estimator == str(example.parent / "../runs/route/estimator_small")
