"""depo.rl.metrics_log: the per-step log a run leaves, and the mean of one metric over a window of it."""

from __future__ import annotations

import math

import numpy as np

from depo.rl.metrics_log import MetricsLog, metric_mean, read_metrics


def test_a_metric_mean_reads_only_the_records_that_hold_a_finite_number():
    records = [{"step": 1, "eff": 0.5}, {"step": 2, "eff": float("nan")}, {"step": 3}, {"step": 4, "eff": np.float64(0.7)},
               {"step": 5, "eff": "n/a"}]
    assert math.isclose(metric_mean(records, "eff"), 0.6)
    assert math.isnan(metric_mean(records[1:3], "eff")) and math.isnan(metric_mean([], "eff"))


def test_the_log_skips_a_torn_last_line_and_truncates_to_a_step(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(3):
        log.append({"step": step, "loss": 1.0 / (step + 1)})
    with open(log.path, "a", encoding="utf-8") as fh:
        fh.write('{"step": 3, "lo')  # a crash mid-write
    assert [r["step"] for r in read_metrics(log.path)] == [0, 1, 2]
    log.truncate(1)
    assert [r["step"] for r in log.read()] == [0, 1]
    log.truncate(0)
    assert log.read() == []
