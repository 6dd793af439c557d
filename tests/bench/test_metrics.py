"""The offline benchmarks' prediction metrics (depo.bench.metrics), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from depo.bench.metrics import keep_top_effective_rate, prediction_metrics
from depo.metrics import expected_calibration_error


def test_zero_variance_probability_and_calibration_by_hand():
    pred = np.array([0.1, 0.1, 0.9, 0.9])
    true = np.array([0.0, 0.2, 1.0, 0.6])
    # bin 1: |0.1 - 0.1| = 0; bin 9: |0.9 - 0.8| = 0.1 with half the rows -> 0.05
    assert expected_calibration_error(pred, true) == pytest.approx(0.05)
    # keep the top half by score: rows 0 and 2 with true 0.5 (P_zv 0.5) and 1.0 (P_zv 1): mean informative 0.25
    rates = np.array([0.5, 0.5, 1.0, 0.0])
    assert keep_top_effective_rate(np.array([3.0, 1.0, 2.0, 0.0]), rates, 0.5, 2) == 0.25
    assert keep_top_effective_rate(np.array([3.0, 2.0, 0.0, 1.0]), rates, 0.5, 2) == 0.5
    # a constant score keeps every prompt equally: the random rate, whatever the row order
    assert keep_top_effective_rate(np.zeros(4), rates, 0.5, 2) == pytest.approx(0.25)


def test_a_perfect_predictor_beats_a_constant_one():
    rng = np.random.default_rng(0)
    true = rng.random(400)
    perfect = prediction_metrics(true, true, group_size=8, seed=0)
    constant = prediction_metrics(np.full(400, true.mean()), true, group_size=8, seed=0)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["mae"] == 0.0
    assert perfect["auc_zero_var_expected"] > 0.8 and constant["auc_zero_var_expected"] == pytest.approx(0.5)
    assert np.isnan(constant["spearman"])
    assert perfect["eff_top30"] > perfect["eff_top70"] > constant["eff_top70"] - 0.05
    # P(zero-var) of a perfect predictor is the true one; a constant rate misstates it per row
    assert perfect["ece_zero_var"] == 0.0 and constant["ece_zero_var"] > 0.1
