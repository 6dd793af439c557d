"""`depo train` / `depo eval` / `depo demo` through the CLI dispatcher: exit codes, one-line errors, resume,
the demo itself and the warm-start recipe of configs/demo_warmstart.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depo.bench.measure import main as measure
from depo.cli import main
from depo.estimator import OnlineEstimator
from depo.rl.config import load_config
from depo.rl.metrics_log import read_metrics
from depo.rl.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_train_then_resume_then_eval(random_policy_dir, tmp_path, capsys):
    run = tmp_path / "run"
    common = [f"model={random_policy_dir}", "train_size=32", "heldout_size=4", "batch_size=4", "num_generations=2",
              "max_completion_length=2", "progress=false", "eval_k=2"]
    args = ["train"] + [a for kv in [*common, "max_steps=1", f"output_dir={run}"] for a in ("--set", kv)]
    assert main(args) == 0
    assert "run directory" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--set", "max_steps=2"]) == 0
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [0, 1, 2]
    assert main(["eval", "--model", random_policy_dir, "--n", "3", "--k", "2", "--max-completion-length", "2"]) == 0
    assert "avg@2" in capsys.readouterr().out


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    cases = [
        ["train", "--set", "bogus=1"],
        ["train", "--set", "num_generations=1"],
        ["train", "--config", str(tmp_path / "missing.yaml")],
        ["train", "--resume", str(tmp_path)],
        ["train", "--resume", str(tmp_path), "--config", "x.yaml"],
        ["eval", "--model", str(tmp_path), "--n", "2"],
        ["eval", "--k", "0"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("depo: error: ") and "\n" not in err, (argv, err)


def test_the_bench_only_p_oracle_is_refused_before_the_run_directory_is_made(random_policy_dir, tmp_path, capsys):
    """The p-oracle needs the bench's binding to a policy: `depo train` refuses it up front,
    pointing to `depo bench train`, and leaves it out of its --help list."""
    small = [f"model={random_policy_dir}", "train_size=8", "heldout_size=2", "batch_size=2", "num_generations=2",
             "max_steps=1", "max_completion_length=2", "progress=false", f"output_dir={tmp_path / 'run'}"]
    assert main(["train", "--selector", "p-oracle"] + [a for kv in small for a in ("--set", kv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("depo: error: config selector: selector 'p-oracle' runs only in a benchmark") and "\n" not in err
    assert "depo bench train --methods p-oracle" in err and not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    listed = capsys.readouterr().out.replace("\n", " ")
    assert "depo-paper" in listed and "p-oracle" not in listed


def test_demo_skips_predicted_zero_variance_prompts_after_warm_up_and_reports_it(random_policy_dir, tmp_path,
                                                                                   monkeypatch, capsys):
    """The demo's own config (keep by rank, frozen MiniLM vectors precomputed) at a few steps."""
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "demo"
    small = [f"model={random_policy_dir}", "train_size=24", "heldout_size=4", "batch_size=4", "num_generations=2",
             "max_steps=3", "max_completion_length=2", "eval_steps=3", "eval_k=2", "save_steps=0",
             "selector_options.warmup_steps=1"]
    assert main(["demo", "--output-dir", str(run)] + [a for kv in small for a in ("--set", kv)]) == 0
    out = capsys.readouterr().out
    steps = [r for r in read_metrics(run / "metrics.jsonl") if r.get("step", 0) >= 1]
    assert [r["select/survival_rate"] == 1.0 for r in steps] == [True, False, False]  # warm-up keeps everything
    assert all(r["select/scanned"] > r["rollout/prompts"] for r in steps[1:])  # then skips before the rollout
    skipped = int(steps[-1]["select/total_skipped"])
    assert "prompts skipped before rollout" in out and f" {skipped} ({2 * skipped} responses not generated)" in out
    assert "share of the p-oracle" in out and "demo wall time" in out
    assert (run / "summary.md").is_file() and (run / "plots" / "heldout_accuracy.png").is_file()


def test_the_warm_start_recipe_of_configs_demo_warmstart_runs_as_written(random_policy_dir, tmp_path, monkeypatch):
    """Its three commands, small: pass rates measured and dumped, an estimator trained offline on
    them and saved, then a run that starts from that estimator and filters from step 1."""
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))
    rates, saved = tmp_path / "rates.jsonl", tmp_path / "estimator"
    assert measure(["--policy", random_policy_dir, "--n", "60", "--group-size", "2", "--max-new-tokens", "2",
                    "--seed", "7", "--dump", str(rates)]) == 0
    assert main(["bench", "estimator", "--train", str(rates), "--target", "pass_rate", "--text-column", "text",
                 "--variants", "frozen", "--quick", "--out", str(tmp_path / "bench"), "--save", str(saved),
                 "--figures-dir", ""]) == 0
    small = [f"estimator_init={saved}", f"model={random_policy_dir}", "train_size=24", "heldout_size=0", "batch_size=4",
             "num_generations=2", "max_steps=2", "max_completion_length=2", "save_steps=0", "progress=false",
             f"output_dir={tmp_path / 'run'}"]
    trainer = Trainer(load_config(CONFIGS / "demo_warmstart.yaml", small))
    texts = [t.text for t in trainer.train_tasks[:5]]
    np.testing.assert_array_equal(trainer.selector.estimator.predict(texts), OnlineEstimator.load(saved).predict(texts))
    est = trainer.selector.estimator  # the config's estimator_options replace the saved settings
    assert (est.config.lr, est.config.replay_size, est.config.updates_per_step) == (1e-3, 1024, 4)
    assert est.optimizer.param_groups[0]["lr"] == 1e-3
    trainer.train()
    first = next(r for r in trainer.read_metrics() if r.get("step") == 1)
    assert first["select/skipped"] > 0  # no warm-up: the warm-started estimator filters from step 1
