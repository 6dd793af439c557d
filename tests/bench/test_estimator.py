"""`depo bench estimator`: the quick mode end to end (baselines, estimator variants, --save loadable
by OnlineEstimator.load), its settings and input errors (its metrics: test_metrics.py)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from depo.bench.estimator import normalize_latex
from depo.cli import main
from depo.paths import shared_data_dir


def test_normalize_latex_reads_commands_as_words():
    text = r"Find $\frac{a}{b}$ when $\left( x^2 \right)$ is $\sqrt{2}$."
    assert normalize_latex(text) == "Find frac a b when ( x^2 ) is sqrt 2 ."


def _synthetic(path, n=260, seed=0):
    """Texts whose words carry the pass rate: a bag-of-words model can learn it, a constant cannot."""
    rng = np.random.default_rng(seed)
    words = ["add", "count", "area", "prime", "integral", "olympiad", "inequality", "sequence"]
    rows = []
    for i in range(n):
        chosen = rng.choice(len(words), size=3, replace=False)
        difficulty = chosen.mean() / (len(words) - 1)
        rate = float(np.clip(1.0 - difficulty + rng.normal(0, 0.05), 0, 1))
        text = f"Problem {i}: " + " ".join(f"{words[j]} question" for j in chosen)
        rows.append({"idx": i, "problem": text, "level": f"Level {1 + int(difficulty * 4)}", "sr": round(rate * 50) / 50})
    pd.DataFrame(rows).to_parquet(path)


def test_quick_bench_end_to_end_and_save_loads(tmp_path, capsys):
    from depo.estimator import OnlineEstimator

    data = tmp_path / "rates.parquet"
    _synthetic(data)
    out, saved = tmp_path / "out", tmp_path / "est"
    code = main(["bench", "estimator", "--train", str(data), "--target", "sr", "--quick",
                 "--variants", "frozen,top,full,bayes", "--out", str(out), "--save", str(saved)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    for name in ("constant_mean", "level_mean", "tfidf_ridge", "estimator_frozen", "estimator_top", "estimator_full",
                 "estimator_bayes"):
        assert set(results[name]) >= {"spearman", "pearson", "mae", "ece", "auc_zero_var", "eff_top30", "window_keep"}
    assert results["tfidf_ridge"]["spearman"] > 0.5  # the words carry the rate
    assert results["estimator_top"]["fit_s_per_row_epoch"] > 0 and results["estimator_top"]["epochs_run"] >= 1
    assert results["estimator_bayes"]["spearman"] > 0.5  # and the Bayesian estimator reads them
    assert results["constant_mean"]["spearman"] is None  # undefined for a constant, written as null
    assert results["oracle"]["eff_top30"] >= results["random"]["eff_top30"]
    assert (out / "scatter.png").is_file() and (out / "reliability.png").is_file()
    assert "| tfidf_ridge |" in capsys.readouterr().out
    # the saved estimator reproduces the benchmark's own test-row Spearman
    frame = pd.read_parquet(data)
    from depo.data.io import holdout_mask

    test = frame[holdout_mask([str(i) for i in frame.idx], 0.2, 0)].head(60)
    loaded = OnlineEstimator.load(saved)
    rho = spearmanr(loaded.predict(list(test.problem)), test.sr).statistic
    assert rho == pytest.approx(results["estimator_frozen"]["spearman"], abs=1e-4)


def test_calibrated_variant_maps_its_zero_variance_probability_monotonically(tmp_path):
    from depo.bench.estimator import EstimatorBenchConfig, predictive_zero_var, train_calibrated
    from depo.bench.table import Rows

    data = tmp_path / "rates.parquet"
    _synthetic(data, n=400)
    frame = pd.read_parquet(data)
    cfg = EstimatorBenchConfig(train=data, target="sr", quick=True, max_length=32)
    train = Rows([str(i) for i in frame.idx], list(frame.problem), frame.sr.to_numpy(), None)
    est, iso = train_calibrated(cfg, train)
    stated = predictive_zero_var(est, train.texts, 8)
    mapped = iso.predict(stated)
    order = np.argsort(stated)
    assert np.all(np.diff(mapped[order]) >= 0) and mapped.min() >= 0 and mapped.max() <= 1  # rank kept, a probability
    # fitted on the 10% validation part only: a different P(zero-var) than the raw one
    assert not np.allclose(mapped, stated)


def test_input_errors_exit_2(tmp_path):
    data = tmp_path / "rates.parquet"
    _synthetic(data, n=40)
    assert main(["bench", "estimator", "--train", str(data), "--target", "nope", "--quick"]) == 2
    assert main(["bench", "estimator", "--train", str(tmp_path / "missing.parquet"), "--target", "sr"]) == 2
    assert main(["bench", "estimator", "--train", str(data), "--target", "sr", "--variants", "huge", "--quick"]) == 2


def test_settings_come_from_a_file_then_flags_then_sets(tmp_path, capsys):
    from depo.bench.commands import register
    from depo.bench.estimator import EstimatorBenchConfig
    from depo.config import from_arguments

    base = tmp_path / "base.yaml"
    base.write_text("train: rates.parquet\ntarget: sr\nvariants: [frozen]\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nepochs: 5\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["estimator", "--config", str(child), "--epochs", "7", "--variants", "frozen,bayes",
                              "--set", "patience=2"])
    cfg = from_arguments(EstimatorBenchConfig, args)
    assert (cfg.target, cfg.epochs, cfg.patience, cfg.variants) == ("sr", 7, 2, ("frozen", "bayes"))
    # one split: a test file and a held-out share together are refused, before any work
    assert main(["bench", "estimator", "--config", str(child), "--test", "t.parquet", "--holdout-fraction", "0.3"]) == 2
    assert "not both" in capsys.readouterr().err


SHARED = shared_data_dir()


@pytest.mark.shared
@pytest.mark.skipif(SHARED is None, reason="../shared/data not present (real success rates are not in the repo)")
def test_quick_bench_on_real_success_rates(tmp_path):
    code = main(["bench", "estimator", "--train", str(SHARED / "math_train_passrates.parquet"), "--target",
                 "sr_qwen2.5-1.5b-instruct_k50_t1.0", "--quick", "--variants", "frozen", "--out", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["meta"]["test_rows"] == 60
    assert results["level_mean"]["spearman"] > 0.0  # MATH levels carry difficulty


def test_an_estimator_with_a_predictive_distribution_is_scored_on_its_own_zero_variance_probability():
    from depo.bench.estimator import predictive_zero_var

    class Predictive:
        def __init__(self, tau: float):
            self.tau = tau

        def predict_distribution(self, texts):
            n = len(texts)
            return {"mean": np.zeros((n, 1)), "var": np.zeros((n, 1)), "tau": np.array([self.tau])}

    certain = predictive_zero_var(Predictive(0.0), ["a", "b"], 8)
    assert certain == pytest.approx([2 * 0.5**8] * 2, rel=1e-3)  # p = 0.5 exactly: the plug-in value
    unsure = predictive_zero_var(Predictive(3.0), ["a"], 8)
    assert unsure[0] > 0.3  # a spread of pass rates around 0.5 makes an all-equal group likely
    assert predictive_zero_var(object(), ["a"], 8) is None  # point predictors: the plug-in is used
