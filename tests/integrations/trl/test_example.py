"""examples/trl_depo.py, the runnable example the README and docs/trl.md point to, runs as documented."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "trl_depo.py"


def test_the_example_trains_with_depo_and_checkpoints_the_selector(random_policy_dir, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, str(EXAMPLE), "--model", random_policy_dir, "--steps", "2", "--batch-prompts", "4",
            "--num-generations", "2", "--max-completion-length", "2", "--train-size", "16", "--output-dir", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = ast.literal_eval(proc.stdout.strip().splitlines()[-1])  # the last step's selection figures
    assert set(last) == {"frac_reward_zero_std", "select/survival_rate", "select/effective_rate_total"}
    assert (out / "checkpoint-2" / "depo_selector.json").is_file()  # the selector is saved with TRL's checkpoint
