"""examples/trl_depo.py, the runnable example the README and docs/trl.md point to, runs as documented."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "trl_depo.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}


def run_example(policy: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(EXAMPLE), "--model", policy, "--steps", "2", "--batch-prompts", "4",
            "--num-generations", "2", "--max-completion-length", "2", "--train-size", "16", "--output-dir", str(out),
            *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=ENV, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_the_example_trains_with_depo_and_checkpoints_the_selector(random_policy_dir, tmp_path):
    out = tmp_path / "run"
    proc = run_example(random_policy_dir, out)
    assert "16 prompts from the mixed preset" in proc.stdout
    last = ast.literal_eval(proc.stdout.strip().splitlines()[-1])  # the last step's selection figures
    assert set(last) == {"frac_reward_zero_std", "select/survival_rate", "select/effective_rate_total"}
    assert (out / "checkpoint-2" / "depo_selector.json").is_file()  # the selector is saved with TRL's checkpoint


def test_the_example_trains_on_a_math_file(random_policy_dir, tmp_path):
    rows = [{"problem": f"What is {a} + {a}?", "answer": str(2 * a)} for a in range(6)] + [{"problem": "No gold.", "answer": ""}]
    data = tmp_path / "math.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "run"
    proc = run_example(random_policy_dir, out, "--data", str(data))
    assert f"6 prompts from {data}" in proc.stdout  # the row without a gold answer cannot be rewarded
    assert (out / "checkpoint-2" / "depo_selector.json").is_file()
