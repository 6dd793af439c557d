"""End to end on a tiny random policy: a short run, its run directory, counting, faults, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal

import pytest

from depo.errors import DepoError
from depo.rl.config import load_config
from depo.rl.metrics_log import read_metrics
from depo.rl.trainer import Trainer


def test_smoke_run_writes_run_directory(tiny_overrides, toy_tasks):
    cfg = load_config(None, tiny_overrides(eval_steps=2, save_steps=2))
    trainer = Trainer(cfg, tasks=(toy_tasks(40), toy_tasks(6, prefix="h")))
    run_dir = trainer.train()
    for name in ("config.yaml", "metrics.jsonl", "summary.md", "plots/heldout_accuracy.png"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_000002", "step_000003"]
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert [r["step"] for r in records if "eval/avg@2" in r] == [0, 2, 3]  # step 0, every 2, last
    steps = records[1:]
    for r in steps:
        assert r["rollout/prompts"] == 4 and r["rollout/responses"] == 16
        assert 4 <= r["rollout/tokens"] <= 16 * 4
        assert r["select/effective_rate"] * 4 == pytest.approx(round(r["select/effective_rate"] * 4))  # a share of 4 groups
        phases = [r[f"time/{p}_s"] for p in ("select", "rollout", "reward", "advantage", "update", "observe")]
        assert min(phases) > 0.0 and sum(phases) == pytest.approx(r["time/total_s"])  # the step is its phases
        assert r["time/estimator_s"] <= r["time/total_s"]  # the estimator's time lies inside them
    assert [r["rollout/total_responses"] for r in steps] == [16, 32, 48]
    assert steps[-1]["rollout/total_tokens"] == sum(r["rollout/tokens"] for r in steps)
    assert "held-out Avg@2" in (run_dir / "summary.md").read_text()


def test_update_moves_the_policy_toward_rewarded_responses(tiny_overrides, toy_tasks):
    # With a reward for even first characters, 8 updates at a high learning rate must raise accuracy.
    cfg = load_config(None, tiny_overrides(max_steps=8, learning_rate=1e-2, batch_size=8, loss_type="grpo"))
    trainer = Trainer(cfg, tasks=(toy_tasks(64), []))
    trainer.train()
    acc = [r["reward/accuracy"] for r in trainer.read_metrics() if "reward/accuracy" in r]
    assert sum(acc[-3:]) / 3 > sum(acc[:3]) / 3 + 0.1


def test_max_grad_norm_zero_trains_unclipped_and_still_logs_the_norm(tiny_overrides, toy_tasks):
    norms = {}
    for bound in (0.0, 1e9):  # no clipping, and a bound no gradient reaches: the same steps
        cfg = load_config(None, tiny_overrides(f"run-{bound}", max_steps=2, max_grad_norm=bound))
        trainer = Trainer(cfg, tasks=(toy_tasks(16), []))
        trainer.train()
        norms[bound] = [r["loss/grad_norm"] for r in trainer.read_metrics() if "loss/grad_norm" in r]
    assert len(norms[0.0]) == 2 and min(norms[0.0]) > 0
    assert norms[0.0] == pytest.approx(norms[1e9], rel=1e-5)


def test_refuses_to_overwrite_a_run(tiny_overrides, toy_tasks):
    cfg = load_config(None, tiny_overrides(max_steps=1))
    Trainer(cfg, tasks=(toy_tasks(8), [])).train()
    with pytest.raises(DepoError, match="already holds a run"):
        Trainer(cfg, tasks=(toy_tasks(8), []))


def test_dynamic_sampling_counts_every_rollout(tiny_overrides, toy_tasks):
    cfg = load_config(None, tiny_overrides(max_steps=2, dynamic_sampling=True, max_num_gen_batches=3))
    trainer = Trainer(cfg, tasks=(toy_tasks(64), []))
    trainer.train()
    for r in trainer.read_metrics()[1:]:
        assert 1 <= r["dynamic/gen_batches"] <= 3
        assert r["rollout/prompts"] == r["dynamic/generated"] == 4 * r["dynamic/gen_batches"]
        assert r["train/groups"] == r["dynamic/kept"] <= 4


def test_dynamic_sampling_on_hopeless_data_trains_on_nothing_and_goes_on(tiny_overrides, toy_tasks):
    never = toy_tasks(16, verifier=lambda response, answer: 0.0)
    cfg = load_config(None, tiny_overrides(max_steps=2, dynamic_sampling=True, max_num_gen_batches=2))
    trainer = Trainer(cfg, tasks=(never, []))
    trainer.train()
    for r in trainer.read_metrics()[1:]:
        assert r["dynamic/short"] == 1.0 and r["train/groups"] == 0 and r["update/skipped"] == 1.0
        assert r["rollout/prompts"] == 8 and r["select/effective_rate"] == 0.0


def test_failing_reward_function_drops_groups_and_counts_them(tiny_overrides, toy_tasks):
    def flaky(response: str, answer: str) -> float:
        if answer == "0":
            raise RuntimeError("boom")
        if answer == "1":
            return float("nan")
        return float(bool(response) and ord(response[0]) % 2 == 0)

    cfg = load_config(None, tiny_overrides(max_steps=3, batch_size=8))
    trainer = Trainer(cfg, tasks=(toy_tasks(16, verifier=flaky), []))
    trainer.train()
    steps = trainer.read_metrics()[1:]
    assert sum(r["reward/errors"] for r in steps) >= 1  # prompts 0 and 1 are in the first 16 draws
    for r in steps:
        assert r["train/groups"] == r["rollout/prompts"] - r["reward/errors"]


def test_reward_function_failing_everywhere_is_a_clear_error(tiny_overrides, toy_tasks):
    def broken(response: str, answer: str) -> float:
        raise KeyError("no such field")

    cfg = load_config(None, tiny_overrides(max_steps=1))
    with pytest.raises(DepoError, match="reward function failed on 4 of 4 groups.*KeyError"):
        Trainer(cfg, tasks=(toy_tasks(8, verifier=broken), [])).train()


def test_ctrl_c_finishes_the_step_saves_and_stops(tiny_overrides, toy_tasks, monkeypatch):
    cfg = load_config(None, tiny_overrides(max_steps=5))
    trainer = Trainer(cfg, tasks=(toy_tasks(32), []))
    original = trainer.train_step

    def step_then_interrupt():
        out = original()
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    run_dir = trainer.train()
    assert trainer.interrupted and trainer.step == 2
    assert (run_dir / "checkpoints" / "step_000002" / "trainer_state.json").is_file()
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2


def test_estimator_precompute_encodes_the_pool_once_per_machine(tiny_overrides, toy_tasks, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))
    depo = {"selector": "depo", "estimator_options.freeze_encoder": True, "estimator_options.width": 32,
            "estimator_options.feature_width": 16, "estimator_precompute": True, "max_steps": 1}
    tasks = (toy_tasks(40), toy_tasks(4, prefix="h"))
    first = read_metrics(Trainer(load_config(None, tiny_overrides("a", **depo)), tasks=tasks).train() / "metrics.jsonl")
    second = read_metrics(Trainer(load_config(None, tiny_overrides("b", **depo)), tasks=tasks).train() / "metrics.jsonl")
    assert (first[0]["estimator/precompute_encoded"], first[0]["estimator/precompute_loaded"]) == (40, 0)
    assert (second[0]["estimator/precompute_encoded"], second[0]["estimator/precompute_loaded"]) == (0, 40)
    assert first[0]["time/estimator_precompute_s"] > 0
    assert first[1]["estimator/cache_hit_rate"] == 1.0  # no step encoded a prompt itself


def test_estimator_precompute_needs_a_frozen_encoder(tiny_overrides):
    with pytest.raises(DepoError, match="estimator_precompute needs"):
        load_config(None, tiny_overrides(selector="depo", estimator_precompute=True))


def test_keep_by_rank_with_the_bayesian_estimator(tiny_overrides, toy_tasks):
    depo = {"selector": "depo", "estimator_options.kind": "bayes", "estimator_options.encoder_weight": 0.0,
            "estimator_options.hash_bits": 10, "selector_options.warmup_steps": 1, "selection": "rank", "oversample": 2.5}
    trainer = Trainer(load_config(None, tiny_overrides(**depo)), tasks=(toy_tasks(40), []))
    trainer.train()
    steps = trainer.read_metrics()[1:]
    assert [r["select/scanned"] for r in steps] == [4, 10, 10]  # warm-up scans one batch, then 2.5 x 4
    assert all(r["select/kept"] == 4 and r["rollout/prompts"] == 4 for r in steps)
    assert [r["estimator/observations"] for r in steps] == [4, 8, 12]  # one per rolled-out group
