"""`depo bench route` end to end: a synthetic table (always), its saved estimators served by `depo route
serve`, and a quick run on the real MATH rates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depo.cli import main
from depo.estimator import load_estimator
from depo.paths import shared_data_dir
from depo.routing.serve_config import build_router, load_config

SMALL, LARGE = "sr_qwen2.5-1.5b-instruct_k50_t1.0", "sr_qwen2.5-7b-instruct_k50_t1.0"


def _synthetic(path: Path, n: int = 400) -> Path:
    """Queries whose words reveal the difficulty: 'trivial' (both right), 'tricky' (only the large
    model), 'impossible' (both wrong). A routing rule that reads text must beat random routing."""
    rng = np.random.default_rng(0)
    kinds = rng.choice(["trivial", "tricky", "impossible"], size=n, p=[0.3, 0.4, 0.3])
    table = {"trivial": (0.95, 0.98), "tricky": (0.2, 0.9), "impossible": (0.02, 0.05)}
    rows = []
    for i, kind in enumerate(kinds):
        ps, pl = table[kind]
        rows.append({"id": f"q{i}", "problem": f"a {kind} question number {i} about {rng.integers(100)}", "s": ps, "l": pl})
    pd.DataFrame(rows).to_parquet(path)
    return path


def _load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _check_curves(res: dict) -> None:
    base = res["baselines"]
    for name, rule in res["rules"].items():
        pts = np.array(rule["curve"])
        assert pts[0, 0] == 0.0 and pts[0, 1] == pytest.approx(base["large_only"], abs=1e-5), name
        assert pts[-1, 0] == 1.0 and pts[-1, 1] == pytest.approx(base["small_only"], abs=1e-5), name
    # the true gain is the best possible order at every share
    best = np.array(res["rules"]["oracle_gain"]["curve"])[:, 1]
    for name, rule in res["rules"].items():
        assert np.all(np.array(rule["curve"])[:, 1] <= best + 1e-5), name


def test_synthetic_table_tfidf_routes_better_than_random(tmp_path: Path):
    data = _synthetic(tmp_path / "synth.parquet")
    out = tmp_path / "out"
    code = main(["bench", "route", "--train", str(data), "--small", "s", "--large", "l", "--no-estimator", "--out", str(out)])
    assert code == 0
    res = _load(out)
    _check_curves(res)
    rules = res["rules"]
    assert set(rules) == {"random", "oracle_small", "oracle_gain", "tfidf_threshold", "tfidf_gain"}
    # the gain rule can send the 'impossible' queries to the small model for free; the threshold rule cannot
    assert rules["tfidf_gain"]["loss_at_27_points"] < 1.0 < rules["random"]["loss_at_27_points"]
    assert rules["tfidf_gain"]["acc_at_27"] > rules["tfidf_threshold"]["acc_at_27"]
    sweep = rules["tfidf_gain"]["sweep"]
    assert [p["share"] for p in sweep] == sorted(p["share"] for p in sweep)  # more lambda, more to small
    taus = [row["tau"] for row in res["threshold_table"]]
    shares = [row["tfidf_share"] for row in res["threshold_table"]]
    assert taus == [0.75, 0.7, 0.5, 0.3] and shares == sorted(shares)
    # the target is read at an operating point chosen on validation rows, not at the test sweep's 27%
    assert res["target"]["rule"] == "tfidf_gain"
    point = res["operating_points"]["tfidf_gain"]
    assert res["target"]["loss_points"] == point["loss_points"] and abs(point["share"] - 0.27) < 0.1
    assert point["share"] != rules["tfidf_gain"]["share_at_27"] or point["loss_points"] == rules["tfidf_gain"]["loss_at_27_points"]
    assert (out / "results.md").read_text().count("| tfidf_gain |") == 2
    assert (out / "bench_route_synth.png").stat().st_size > 1000


def test_saved_estimators_are_what_the_route_service_loads(tmp_path: Path):
    """`--save-estimators DIR`, then a service config naming DIR's estimators (docs/routing.md)."""
    data = _synthetic(tmp_path / "synth.parquet")
    args = ["bench", "route", "--train", str(data), "--small", "s", "--large", "l", "--quick", "--out",
            str(tmp_path / "out"), "--figures-dir", "", "--save-estimators", str(tmp_path / "route")]
    assert main(args) == 0
    backends = """models:
  - {name: small, url: "http://127.0.0.1:9001/v1", cost: 1%s}
  - {name: large, url: "http://127.0.0.1:9002/v1", cost: 5%s}
"""
    (tmp_path / "two.yaml").write_text(backends % (", estimator: route/estimator_small", ", estimator: route/estimator_large"))
    (tmp_path / "one.yaml").write_text("estimator: route/estimator_bayes\nrule: gain\nlambda: 0.05\n" + backends % ("", ""))
    queries = ["a trivial question number 3 about 7", "a tricky question number 9 about 1",
               "a impossible question number 4 about 50"]
    two = build_router(load_config(tmp_path / "two.yaml")).predict_rates(queries)
    for j, which in enumerate(("small", "large")):
        np.testing.assert_array_equal(two[:, j], load_estimator(tmp_path / "route" / f"estimator_{which}").predict(queries))
    one = build_router(load_config(tmp_path / "one.yaml"))
    gain = np.diff(one.predict_rates(queries), axis=1).ravel()  # large - small, per query
    assert gain[1] > 0.3 > max(gain[0], gain[2])  # the tricky query is the one the large model answers
    assert [d.model for d in one.route(queries)] == ["small", "large", "small"]  # a gain above 4 x lambda


def test_knobs_for_share_send_that_share_to_the_small_model_under_the_routers_rules():
    from depo.bench.route import knobs_for_share
    from depo.routing.router import gain_choice, threshold_choice

    rng = np.random.default_rng(0)
    ps, pl = rng.uniform(size=1000), rng.uniform(size=1000)
    knobs = knobs_for_share(ps, pl, 0.27, cost_gap=5.5)
    rates = np.stack([ps, pl], axis=1)
    assert (threshold_choice(rates, knobs["tau"]) == 0).mean() == pytest.approx(0.27, abs=0.002)
    assert (gain_choice(rates, (1.5, 7.0), knobs["lambda"]) == 0).mean() == pytest.approx(0.27, abs=0.002)


def test_bad_columns_are_one_line_errors(tmp_path: Path, capsys):
    data = _synthetic(tmp_path / "synth.parquet", n=50)
    code = main(["bench", "route", "--train", str(data), "--small", "nope", "--large", "l", "--no-estimator", "--out", str(tmp_path)])
    assert code == 2
    assert "column 'nope' not found" in capsys.readouterr().err
    code = main(["bench", "route", "--train", str(data), "--small", "l", "--large", "l", "--out", str(tmp_path)])
    assert code == 2


@pytest.mark.shared
@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data (math_train_passrates.parquet)")
def test_quick_run_on_real_math_rates_with_the_estimator(tmp_path: Path):
    data = shared_data_dir() / "math_train_passrates.parquet"
    out = tmp_path / "out"
    args = ["bench", "route", "--train", str(data), "--small", SMALL, "--large", LARGE, "--quick", "--out", str(out)]
    assert main(args) == 0
    res = _load(out)
    _check_curves(res)
    assert {"estimator_threshold", "estimator_gain", "ensemble_threshold", "ensemble_gain", "bayes_gain"} <= set(res["rules"])
    assert res["spearman"]["bayes"]["small"] > 0.0  # one two-head Bayesian estimator
    assert res["target"]["rule"] == "bayes_gain" and set(res["operating_points"]) >= {"bayes_gain", "bayes_threshold"}
    target = res["target"]  # met: the loss, at a share of the test rows not below the 27% target (1 point slack)
    assert target["met"] == (target["loss_points"] <= 4.0 and target["test_share"] >= 0.26)
    assert res["baselines"]["large_only"] > res["baselines"]["small_only"]
    assert res["meta"]["quick"] is True and res["n_test"] == 60
