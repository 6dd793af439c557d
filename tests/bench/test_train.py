"""`depo bench train --quick`: every method trains, and the rollout counts add up."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from depo.bench.train import DEFAULT_METHODS, METHODS, estimator_flops_projection, method_config, run_summary
from depo.cli import main
from depo.config import read_yaml
from depo.errors import DepoError
from depo.paths import find_config


def test_run_summary_counts_and_warmup():
    records = [
        {"step": 0, "eval/avg@8": 0.30, "eval/pass@8": 0.5, "time/estimator_precompute_s": 4.0},
        {"step": 1, "rollout/responses": 16.0, "rollout/total_responses": 16.0, "select/effective_rate": 0.25,
         "time/total_s": 2.0, "time/estimator_s": 0.5},
        {"step": 2, "rollout/responses": 16.0, "rollout/total_responses": 32.0, "select/effective_rate": 0.75,
         "time/total_s": 2.0, "time/estimator_s": 0.5, "eval/avg@8": 0.40, "eval/pass@8": 0.6, "time/elapsed_s": 9.0},
    ]
    s = run_summary(records, warmup=1, eval_k=8)
    assert s["rollouts"] == 32.0 and s["rollouts_per_step"] == 16.0
    assert s["effective_rate"] == pytest.approx(0.5)
    assert s["effective_rate_after_warmup"] == pytest.approx(0.75)  # only step 2 is past warm-up
    assert s["avg_gain"] == pytest.approx(0.10)
    assert s["gain_per_1k_rollouts"] == pytest.approx(1000 * 0.10 / 32)
    assert s["estimator_share"] == pytest.approx(0.25)
    assert s["precompute_s"] == 4.0 and s["run_s"] == 9.0
    assert s["estimator_share_with_precompute"] == pytest.approx((1.0 + 4.0) / (4.0 + 4.0))


def test_flops_projection_arithmetic():
    p = estimator_flops_projection(encoder_params=1e6, prompt_tokens=10, policy_params=1e9, group_size=2, response_tokens=5)
    assert p["rollout_flops"] == 2 * 1e9 * 2 * 5
    assert p["estimator_flops"] > 2 * 1e6 * 10
    assert p["ratio"] == pytest.approx(p["rollout_flops"] / p["estimator_flops"])


@pytest.mark.slow
def test_bench_train_quick_runs_every_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert main(["bench", "train", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    default = list(DEFAULT_METHODS)  # the peers and the p-oracle (it samples every candidate) are opt-in
    assert set(default) == set(results) - {"meta"}
    steps = results["meta"]["steps"]
    batch, group = 8, 8
    for method in default:
        r = results[method]
        assert r["steps"] == steps
        if method in ("dapo", "dapo+depo"):  # dynamic sampling: at least one generation batch per step
            assert r["rollouts"] >= steps * batch * group
        else:  # one batch of `batch` prompts x G responses per step, every rollout counted
            assert r["rollouts"] == steps * batch * group
    assert "paired_se" not in results["grpo"]  # the reference itself
    warmup = results["meta"]["warmup"]
    for method in ("grpo", "depo"):  # every method read over the same steps, after the DEPO rows' warm-up
        recs = [json.loads(line) for line in (out / "runs" / method / "seed0" / "metrics.jsonl").read_text().splitlines()]
        after = [r["select/effective_rate"] for r in recs if r.get("step", 0) > warmup and "rollout/responses" in r]
        assert results[method]["effective_rate_after_warmup"] == pytest.approx(np.mean(after))
    # The paired difference and its SE from the per-prompt Avg@8 each final policy scored on the
    # same 32 held-out prompts (quick mode: one seed).
    def per_prompt(method):
        return np.array(json.loads((out / "runs" / method / "seed0" / "paired_eval_32x8.json").read_text()))

    grpo = per_prompt("grpo")
    assert len(grpo) == 32 and results["grpo"]["paired_avg"] == pytest.approx(grpo.mean())
    for method in default[1:]:
        diff = per_prompt(method) - grpo
        assert results[method]["paired_diff_vs_grpo"] == pytest.approx(diff.mean())
        assert results[method]["paired_se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(32))
    for name in ("accuracy_vs_step", "estimator_vs_actual", "survival_rate", "accuracy_vs_rollouts"):
        assert plt.imread(out / f"{name}.png").std() > 0.01  # drawn, not blank

    # A second call reuses the finished runs; one with other settings refuses to mix them in.
    assert main(["bench", "train", "--quick", "--out", str(out), "--methods", "grpo"]) == 0
    assert json.loads((out / "results.json").read_text())["grpo"]["rollouts"] == results["grpo"]["rollouts"]
    assert main(["bench", "train", "--quick", "--out", str(out), "--methods", "grpo", "--set", "learning_rate=0.5"]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_the_help_names_the_default_methods(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "train", "--help"])
    assert ",".join(DEFAULT_METHODS) in "".join(capsys.readouterr().out.split())
    assert set(DEFAULT_METHODS) <= set(METHODS)


def test_our_selectors_and_the_p_oracle_keep_by_rank_the_paper_rule_refills(tmp_path):
    """The base config's stream (keep the best 1 / oversample by rank) is DEPO's and the p-oracle's,
    so both are compared at one survival; the paper's threshold rule and the peers refill."""
    base = read_yaml(find_config(None, "demo.yaml"))  # what the command reads
    assert base["selection"] == "rank" and base["oversample"] > 1
    stream = {m: method_config(m, preset="mixed", seed=0, steps=2, out=tmp_path, warmup=1, base=base)
              for m in METHODS}
    for method in ("depo", "depo+dapo", "dapo+depo", "p-oracle"):
        assert (stream[method].selection, stream[method].oversample) == ("rank", base["oversample"])
    for method in ("grpo", "dapo", "depo-paper", "history"):
        assert stream[method].selection == "refill"
    # the paper's window reads p_hat's level: its estimator updates on the whole replay
    assert stream["depo-paper"].estimator_options["update_batch_size"] == 0
    assert stream["depo"].estimator_options["update_batch_size"] == base["estimator_options"]["update_batch_size"] > 0


@pytest.mark.parametrize(("override", "why"), [("selector=nosuch", "set per method"), ("max_steps=3", "use --max-steps"),
                                               ("output_dir=x", "use --output-dir")])
def test_a_set_of_a_key_the_command_controls_is_refused(override, why, capsys):
    assert main(["bench", "train", "--quick", "--set", override]) == 2
    err = capsys.readouterr().err
    assert f"--set {override.split('=')[0]}: {why}" in err and "Traceback" not in err


def test_the_p_oracle_measures_every_scanned_candidate_without_charging_rollouts(tmp_path, monkeypatch):
    from depo.bench.p_oracle import SAMPLES

    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    assert main(["bench", "train", "--quick", "--out", str(out), "--methods", "p-oracle"]) == 0
    result = json.loads((out / "results.json").read_text())["p-oracle"]
    steps = result["steps"]
    assert result["rollouts"] == steps * 8 * 8  # its measuring answers are not rollouts
    records = json.loads((out / "records.json").read_text())["p-oracle"][0]
    trained = [r for r in records if "select/scanned" in r]
    assert len(trained) == steps
    scanned = sum(r["select/scanned"] for r in trained)
    # every candidate it decided on was measured: those scanned, and those decided ahead for the next step
    assert trained[-1]["select/p_oracle_measured"] == SAMPLES * (scanned + trained[-1]["select/pending"])


def test_the_table_names_the_evaluation_k_and_the_paired_evaluation_takes_the_last_checkpoint(tmp_path):
    from depo.bench.train import final_policy, results_table

    table = results_table({"grpo": {"avg_at_k": 0.5, "avg_at_k_start": 0.4, "pass_at_k": 0.7}}, k=4)
    assert "Avg@4 start" in table and "pass@4 final" in table and "@8" not in table
    for step in (9, 10):  # step_10 sorts before step_9 as text
        ckpt = tmp_path / "checkpoints" / f"step_{step}"
        (ckpt / "policy").mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text("{}")
    assert final_policy(tmp_path) == tmp_path / "checkpoints" / "step_10" / "policy"
    with pytest.raises(DepoError, match="no complete checkpoint"):
        final_policy(tmp_path / "nothing")


def test_share_of_the_p_oracle_gain_is_measured_from_grpo():
    from depo.bench.train import add_p_oracle_share

    results = {name: {"effective_rate_after_warmup": eff} for name, eff in
               (("grpo", 0.4), ("dapo", 0.4), ("depo", 0.55), ("p-oracle", 0.7))}  # fmt: skip
    add_p_oracle_share(results)
    assert results["depo"]["share_of_p_oracle_gain"] == pytest.approx(0.5)
    assert results["p-oracle"]["share_of_p_oracle_gain"] == pytest.approx(1.0)
    assert "share_of_p_oracle_gain" not in results["grpo"] and "share_of_p_oracle_gain" not in results["dapo"]
    partial = {"depo": {"effective_rate_after_warmup": 0.5}}
    add_p_oracle_share(partial)  # no p-oracle in the run: nothing to compare with
    assert partial == {"depo": {"effective_rate_after_warmup": 0.5}}


def test_paired_differences_by_hand():
    import numpy as np

    from depo.bench.train import add_paired_differences

    grpo = [np.array([0.5, 0.5, 0.0, 1.0]), np.array([0.5, 0.25, 0.0, 1.0])]
    depo = [np.array([0.5, 0.75, 0.0, 0.5]), np.array([0.75, 0.25, 0.0, 1.0])]
    results = {"grpo": {}, "depo": {}}
    add_paired_differences(results, {"grpo": grpo, "depo": depo})
    # per prompt, mean over seeds: (0.125, 0.125, 0, -0.25) -> mean 0, sd 0.1768, SE 0.0884
    assert results["depo"]["paired_diff_vs_grpo"] == pytest.approx(0.0)
    assert results["depo"]["paired_se"] == pytest.approx(np.std([0.125, 0.125, 0.0, -0.25], ddof=1) / 2)
    assert results["grpo"]["paired_avg"] == pytest.approx(np.mean(grpo)) and "paired_se" not in results["grpo"]
