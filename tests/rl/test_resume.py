"""Resume: a run stopped after k steps and resumed logs the same metrics as an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from depo.errors import DepoError
from depo.rl import checkpoint as ckpt
from depo.rl.config import load_config
from depo.rl.metrics_log import read_metrics
from depo.rl.trainer import Trainer


def _comparable(records):
    """Everything but timings and the estimator's embedding-cache counters (a cache is rebuilt
    after a resume, not checkpointed: it changes speed, never a prediction)."""
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "estimator/cache_", "estimator/precompute_"))} for r in records]


def _weights(run_dir, step):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / ckpt.checkpoint_name(step) / "policy" / "model.safetensors"))


DEPO_FAST = {
    "selector": "depo",
    "selector_options.warmup_steps": 2,
    "estimator_options.freeze_encoder": True,
    "estimator_options.width": 32,
    "estimator_options.feature_width": 16,
}


DEPO_SAMPLED_REPLAY = {  # replay minibatches are drawn at random: a resumed run must draw the same
    **DEPO_FAST,
    "estimator_options.replay_size": 8,
    "estimator_options.update_batch_size": 6,
    "estimator_options.updates_per_step": 2,
    "estimator_precompute": True,
}


DEPO_BAYES_RANK = {  # the Bayesian learner's Thompson draws and keep-by-rank: both must resume exactly
    "selector": "depo",
    "selector_options.warmup_steps": 2,
    "estimator_options.kind": "bayes",
    "estimator_options.encoder_weight": 0.0,  # lexical features only: no encoder to load
    "selection": "rank",
    "oversample": 2.0,
}
MOPPS_RANK = {"selector": "mopps", "selection": "rank", "oversample": 2.0}
DEPO_DEMO_SHAPE = {**DEPO_SAMPLED_REPLAY, "selection": "rank", "oversample": 2.7}  # configs/demo.yaml's stream and update


@pytest.mark.parametrize(
    "extra",
    [{}, {"num_iterations": 2, "steps_per_generation": 2, "beta": 0.05}, DEPO_FAST, DEPO_SAMPLED_REPLAY,
     DEPO_BAYES_RANK, MOPPS_RANK, DEPO_DEMO_SHAPE],
    ids=["grpo", "epochs-minibatches-kl", "depo", "depo-sampled-replay-precomputed", "depo-bayes-rank", "mopps-rank",
         "depo-rank-sampled-replay"],
)
def test_resume_matches_uninterrupted_run(tiny_overrides, toy_tasks, extra, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPO_CACHE", str(tmp_path / "cache"))  # the precomputed vectors' disk cache
    tasks = (toy_tasks(24), toy_tasks(4, prefix="h"))  # 24 prompts: the 4-step run crosses an epoch
    full_cfg = load_config(None, tiny_overrides("full", max_steps=8, eval_steps=3, save_steps=4, **extra))
    full = Trainer(full_cfg, tasks=tasks).train()

    part_cfg = load_config(None, tiny_overrides("part", max_steps=5, eval_steps=3, save_steps=2, **extra))
    part = Trainer(part_cfg, tasks=tasks).train()  # checkpoints at 4 and 5 (end)
    # Simulate a crash after step 5's checkpoint was lost: keep step 4 only, with a torn metrics line.
    import shutil

    shutil.rmtree(part / "checkpoints" / "step_000005")
    with open(part / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 6, "reward/me')
    resumed = Trainer.resume(part, ["max_steps=8"], tasks=tasks)
    assert resumed.step == 4
    resumed.train()

    a, b = read_metrics(full / "metrics.jsonl"), read_metrics(part / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(9))
    assert _comparable(a) == _comparable(b)
    wa, wb = _weights(full, 8), _weights(part, 8)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_refuses_changes_that_would_alter_the_run(tiny_overrides, toy_tasks):
    cfg = load_config(None, tiny_overrides(max_steps=1))
    run = Trainer(cfg, tasks=(toy_tasks(8), [])).train()
    with pytest.raises(DepoError, match="--set learning_rate: cannot change it when resuming"):
        Trainer.resume(run, ["learning_rate=1"], tasks=(toy_tasks(8), []))
    with pytest.raises(DepoError, match="not a run directory"):
        Trainer.resume(run / "plots")


def test_partial_checkpoint_is_ignored_and_cleaned(tiny_overrides, toy_tasks):
    cfg = load_config(None, tiny_overrides(max_steps=2, save_steps=1))
    run = Trainer(cfg, tasks=(toy_tasks(8), [])).train()
    root = run / "checkpoints"
    (root / ".tmp-step_000003-999").mkdir()
    (root / "step_000009").mkdir()  # no state file: never completed
    assert ckpt.latest_checkpoint(root)[0] == 2
    resumed = Trainer.resume(run, ["max_steps=3"], tasks=(toy_tasks(8), []))
    assert resumed.step == 2
    assert not (root / ".tmp-step_000003-999").exists()


def test_a_run_killed_before_its_first_checkpoint_restarts_from_step_zero(tiny_overrides, toy_tasks, caplog):
    tasks = (toy_tasks(8), [])
    whole = Trainer(load_config(None, tiny_overrides("whole", max_steps=2)), tasks=tasks)
    whole.train()
    run = Trainer(load_config(None, tiny_overrides("killed", max_steps=2, save_steps=0)), tasks=tasks).train()
    for child in (run / "checkpoints").iterdir():  # as if killed at step 2, before any checkpoint was written
        child.rename(run / "checkpoints" / f".tmp-{child.name}-1")
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"step": 3, "trunca')  # a torn line
    resumed = Trainer.resume(run, tasks=tasks)
    assert resumed.step == 0 and "starting the run from step 0" in caplog.text
    resumed.train()
    assert _comparable(read_metrics(run / "metrics.jsonl")) == _comparable(whole.read_metrics())


class _RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_checkpoint_is_refused_with_one_line_and_runs_nothing(tiny_overrides, toy_tasks, tmp_path):
    tasks = (toy_tasks(8), [])
    run = Trainer(load_config(None, tiny_overrides("run", max_steps=1, heldout_size=0)), tasks=tasks).train()
    step = run / "checkpoints" / ckpt.checkpoint_name(1)
    for name in ("trainer_state.json", "trainer_state.safetensors"):
        (step / name).unlink()
    marker = tmp_path / "pwned"
    torch.save({"step": _RunsCode(marker)}, step / "trainer_state.pt")  # what an older depo wrote, made hostile
    with pytest.raises(DepoError, match=r"^\S+step_000001 holds a pickled trainer_state.pt, which depo does not load"):
        Trainer.resume(run, tasks=tasks)
    assert not marker.exists()
