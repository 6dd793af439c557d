"""A run's summary rows from its metrics records: effective rates, the probed share of the
p-oracle's gain, and train time without the probe's measuring."""

from __future__ import annotations

from depo.rl.config import TrainConfig
from depo.rl.report import summary_rows


def _records(probe: bool) -> list[dict]:
    recs = [{"step": 0, "eval/avg@8": 0.30}]
    for step in (1, 2, 3, 4):
        r = {"step": step, "rollout/prompts": 4, "rollout/total_responses": 32 * step, "rollout/total_tokens": 100 * step,
             "select/effective_rate": 0.4 if step <= 2 else 0.6, "time/total_s": 2.0, "time/rollout_s": 1.0,
             "time/estimator_s": 0.5}
        if probe:
            r.update({"time/probe_s": 0.25, "probe/eff_random": 0.4, "probe/eff_kept": 0.55,
                      "probe/eff_p_oracle": 0.7, "probe/survival": 0.35})
        recs.append(r)
    recs.append({"step": 4, "eval/avg@8": 0.36})
    return recs


def test_summary_rows_with_and_without_the_probe():
    cfg = TrainConfig.build({"selector": "depo", "eval_k": 8, "num_generations": 8})
    plain = dict(summary_rows(_records(False), cfg, {"warmup_steps": 2}))
    assert plain["effective rate: after warm-up"] == "0.600 (1.50x)"
    assert "share of the p-oracle's gain (probed pool)" not in plain
    assert plain["train time"] == "8 s (50% rollout, 25.0% selection/estimator)"
    probed = dict(summary_rows(_records(True), cfg, {"warmup_steps": 2}))
    # (0.55 - 0.40) / (0.70 - 0.40) = 0.5, over the steps after the warm-up
    assert probed["share of the p-oracle's gain (probed pool)"].startswith("0.50 (effective rate 0.550; random 0.400")
    # the probe's 1 s of measuring is neither train time nor the estimator's: (2 - 1) / 7 s
    assert probed["train time"] == "7 s (57% rollout, 14.3% selection/estimator)"
