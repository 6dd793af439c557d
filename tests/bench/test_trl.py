"""The TRL benchmark's pieces: its settings and its table."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")

from depo.bench.trl import format_table, parse_args  # noqa: E402
from depo.errors import DepoError  # noqa: E402


def test_settings_take_trl_names_older_flags_and_nested_options() -> None:
    opts = parse_args(["--max-steps", "5", "--lr", "1e-3", "--runs", "grpo,uniform",
                       "--set", "selector_options.warmup_steps=3", "--set", "estimator_options.freeze_encoder=true"])
    assert (opts.max_steps, opts.learning_rate, opts.runs) == (5, 1e-3, ("grpo", "uniform"))
    assert opts.selector_options == {"warmup_steps": 3} and opts.estimator_options == {"freeze_encoder": True}
    assert parse_args(["--steps", "7", "--out", "x"]).max_steps == 7
    with pytest.raises(DepoError, match="unknown run"):
        parse_args(["--runs", "grpo,nosuch"])
    with pytest.raises(DepoError, match="did you mean 'max_steps'"):
        parse_args(["--set", "max_step=3"])


def test_format_table_has_one_column_per_run() -> None:
    base = {
        "frac_reward_zero_std": 0.5, "frac_reward_zero_std_last_half": 0.4, "effective_rate": 0.5, "rollouts": 64,
        "informative_groups": 4.0, "trained_informative_groups": 4.0, "rollouts_per_informative_group": 16.0,
        "train_wall_s": 3.0,
        "heldout_before": {"eval/avg@8": 0.1}, "heldout_after": {"eval/avg@8": 0.2},
    }  # fmt: skip
    table = format_table([{**base, "run": "grpo"}, {**base, "run": "depo", "scanned_total": 9.0, "select_s_total": 0.5}], 8)
    lines = table.splitlines()
    assert lines[0] == "| metric | TRL GRPOTrainer | DEPOGRPOTrainer (depo) |"
    assert "| candidates scanned | - | 9 |" in lines
    assert "| held-out Avg@8 after | 0.200 | 0.200 |" in lines


@pytest.mark.slow
def test_dynamic_sampling_runs_count_every_round(tmp_path) -> None:
    import json

    from depo.bench.trl import main
    from tests.integrations.trl.trl_support import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "bench"
    assert main(["--model", str(model), "--max-steps", "2", "--batch-prompts", "2", "--num-generations", "4",
                 "--train-size", "64", "--heldout-size", "0", "--runs", "grpo,dapo,dapo+depo", "--threads", "1",
                 "--output-dir", str(out), "--max-num-gen-batches", "3", "--set", "selector_options.warmup_steps=1",
                 "--set", "estimator_options.freeze_encoder=true", "--set", "estimator_options.max_length=32"]) == 0
    grpo, dapo, dapo_depo = json.loads((out / "results.json").read_text())
    assert grpo["rollouts"] == 2 * 2 * 4  # plain TRL: one generation batch per step
    rounds = [h["select/ds_rounds"] for h in json.loads((out / "dapo" / "log_history.json").read_text())
              if "select/ds_rounds" in h]
    assert dapo["rollouts"] == sum(rounds) * 2 * 4  # every round's completions are rollouts
    assert dapo["trained_informative_groups"] <= 2 * 2 and dapo["trained_informative_groups"] <= dapo["informative_groups"]
    assert dapo_depo["run"] == "dapo+depo" and dapo_depo["scanned_total"] >= 2 * 2  # the selector's options reached it
