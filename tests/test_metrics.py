"""depo.metrics against hand-worked values: AUC, calibration, reliability bins, ECE, PR curve, effective rate."""

from __future__ import annotations

import numpy as np
import pytest

from depo.metrics import (
    auc,
    calib_mae,
    effective_rate,
    expected_calibration_error,
    pearson,
    precision_at_recall,
    precision_recall,
    reliability_bins,
    share,
    spearman,
)
from depo.types import GroupOutcome


def test_auc_hand_worked() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert auc([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.75)  # tie counts 1/2
    assert auc([0.9, 0.1], [True, False]) == 1.0 and auc([0.9, 0.1], [False, True]) == 0.0
    assert auc([0.3, 0.4], [True, True]) is None


def test_calibration_mae_and_share() -> None:
    assert calib_mae([0.2, 0.9], [0.0, 1.0]) == pytest.approx(0.15)
    assert calib_mae([], []) is None
    assert share([True, False, False, False]) == 0.25 and share([]) is None


def test_reliability_bins_and_ece_by_hand() -> None:
    pred = [0.05, 0.15, 0.12, 0.95]
    true = [0.0, 0.2, 0.3, 1.0]
    means, rates, counts = reliability_bins(pred, true, bins=10)
    assert counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert means[1] == pytest.approx(0.135) and rates[1] == pytest.approx(0.25)
    assert np.isnan(means[2])
    # ECE = 1/4 * 0.05 + 2/4 * |0.135 - 0.25| + 1/4 * 0.05
    assert expected_calibration_error(pred, true) == pytest.approx(0.25 * 0.05 + 0.5 * 0.115 + 0.25 * 0.05)


def test_precision_recall_over_thresholds_with_ties() -> None:
    recall, precision = precision_recall([0.9, 0.8, 0.8, 0.1], [True, False, True, False])
    points = sorted(zip(np.round(recall, 6), np.round(precision, 6)))  # one point per distinct threshold
    assert points == [(0.5, 1.0), (1.0, 0.5), (1.0, round(2 / 3, 6))]
    assert precision_at_recall([0.9, 0.8, 0.8, 0.1], [True, False, True, False], 0.8) == pytest.approx(2 / 3)
    assert np.isnan(precision_at_recall([0.5], [False], 0.8))


def test_effective_rate_spearman_and_undefined_cases() -> None:
    outcomes = [GroupOutcome("a", "", (1.0, 0.0)), GroupOutcome("b", "", (1.0, 1.0)), GroupOutcome("c", "", (0.3, 0.3))]
    assert effective_rate(outcomes) == pytest.approx(1 / 3)
    assert effective_rate([]) is None
    assert spearman([1, 2, 3], [10, 30, 20]) == pytest.approx(0.5)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])) and np.isnan(pearson([1], [2]))
    assert auc([0.2, 0.4], [True, True]) is None
    assert auc([0.1, 0.9, 0.5], [False, True, True], weights=[1.0, 1.0, 0.0]) == pytest.approx(1.0)
