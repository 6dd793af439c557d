"""Crash safety: SIGKILL a training process at a random point, resume, and get the same run.

The killed process may die mid-step, mid-metrics-line or mid-checkpoint; a checkpoint is
complete or absent (atomic rename) and resume drops metrics past it, so the resumed run must
log the same remaining metrics and end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from depo.rl.config import load_config
from depo.rl.metrics_log import read_metrics
from depo.rl.trainer import Trainer

SCRIPT = """
import sys, torch
sys.path.insert(0, {tests_dir!r})
from conftest import make_toy_tasks
from depo.rl.config import load_config
from depo.rl.trainer import Trainer
torch.set_num_threads(1)
cfg = load_config(None, {overrides!r})
Trainer(cfg, tasks=(make_toy_tasks(24), make_toy_tasks(4, prefix="h"))).train()
"""


def _comparable(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def test_sigkill_at_random_point_then_resume(tiny_overrides, toy_tasks):
    tasks = (toy_tasks(24), toy_tasks(4, prefix="h"))
    steps = 8
    full = Trainer(load_config(None, tiny_overrides("full", max_steps=steps, eval_steps=2, save_steps=1)), tasks=tasks).train()

    overrides = tiny_overrides("killed", max_steps=steps, eval_steps=2, save_steps=1)
    run_dir = Path(load_config(None, overrides).output_dir)
    code = SCRIPT.format(tests_dir=str(Path(__file__).parents[1]), overrides=overrides)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rng = random.Random()
    target = rng.randint(1, steps - 2)  # kill once this step's checkpoint exists, after a random delay
    deadline = time.time() + 300
    while not (run_dir / "checkpoints" / f"step_{target:06d}").is_dir():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "training subprocess made no progress"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()

    resumed = Trainer.resume(run_dir, tasks=tasks)
    assert target <= resumed.step <= steps
    resumed.train()
    assert _comparable(read_metrics(full / "metrics.jsonl")) == _comparable(read_metrics(run_dir / "metrics.jsonl"))
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # no torn line survives a resume
    from safetensors.torch import load_file

    final = f"checkpoints/step_{steps:06d}/policy/model.safetensors"
    wa, wb = load_file(str(full / final)), load_file(str(run_dir / final))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
